#!/usr/bin/env bash
# Create tools/venv with the verified stack, install rellm editable, write tools/activate_python.sh.
# Needs only Python >= 3.10 with venv and pip. Called by 'make install'; safe to run again: a stamp
# holding a hash of setup.py and this script makes a second run do nothing.
#
# Environment:
#   PYTHON=python3.11         interpreter that creates the venv (default: python3)
#   TORCH_INDEX_URL=URL       index for the torch/torchaudio wheels, e.g. https://download.pytorch.org/whl/cpu
#                             (default: pip's configured index; pip's own config applies as usual)
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
venv=${root}/tools/venv
stamp=${venv}/.rellm-install.stamp
activate=${root}/tools/activate_python.sh
python=${PYTHON:-python3}

# The verified stack (see DEVELOPING.md); the rest comes from setup.py and its dev and demo extras.
torch_pins=("torch==2.14.1" "torchaudio==2.11.0")
stack_pins=("speechbrain==1.1.2" "transformers>=5,<6" "peft==0.21.*")

write_activate() {
    cat > "${activate}" <<'EOF'
# Written by tools/install_venv.sh ('make install'); sourced by every recipe's path.sh.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/venv/bin/activate"
EOF
}

# one install at a time (two 'make test' started together would otherwise both build the venv)
if command -v flock > /dev/null; then
    exec 9> "${TMPDIR:-/tmp}/rellm-install-$(echo "${root}" | sha256sum | cut -c1-16).lock"
    flock 9
fi

wanted=$(cat "${root}/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [ -x "${venv}/bin/python" ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${wanted}" ]; then
    [ -f "${activate}" ] || write_activate
    echo "tools/venv is up to date (remove ${stamp} to force a reinstall)"
    exit 0
fi

if ! command -v "${python}" > /dev/null; then
    echo "ERROR: ${python} not found; install Python >= 3.10 with venv and pip, or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "${python}" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "ERROR: ${python} is Python $("${python}" -c 'import platform; print(platform.python_version())');" \
        "rellm needs >= 3.10 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

if [ ! -x "${venv}/bin/python" ]; then
    echo "Creating ${venv} with $("${python}" --version)"
    "${python}" -m venv "${venv}"
fi
pip=("${venv}/bin/python" -m pip install)

torch_index=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    torch_index=(--index-url "${TORCH_INDEX_URL}")
fi
"${pip[@]}" "${torch_index[@]}" "${torch_pins[@]}"
# torch is pinned again so that nothing below can replace the verified build
"${pip[@]}" "${stack_pins[@]}" "${torch_pins[@]}"
"${pip[@]}" -e "${root}[dev,demo]" "${torch_pins[@]}"

write_activate
"${venv}/bin/python" "${root}/tools/check_install.py" --brief
echo "${wanted}" > "${stamp}"
echo "Installed: tools/venv (activate with '. tools/activate_python.sh')"
