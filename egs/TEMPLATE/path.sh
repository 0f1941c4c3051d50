# Environment for recipe scripts: the toolkit's Python, thread and encoding defaults.
# Every recipe's path.sh is a symlink to egs/TEMPLATE/path.sh.

rellm_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
if [ ! -f "${rellm_root}/tools/activate_python.sh" ]; then
    echo "ERROR: ${rellm_root}/tools/activate_python.sh not found: the Python environment is not installed." >&2
    echo "       Run 'make install' in ${rellm_root} (it creates tools/venv and writes that file)." >&2
    return 1
fi
. "${rellm_root}/tools/activate_python.sh"   # puts the venv first on PATH: python and python3 are the venv's
export PATH="${rellm_root}/tools:${PATH}"

export OMP_NUM_THREADS=1          # one thread per job: the runners start many jobs at once
export PYTHONIOENCODING=UTF-8     # transcripts and responses are UTF-8 whatever the locale
export PYTHONUNBUFFERED=1         # job logs show progress as it happens
