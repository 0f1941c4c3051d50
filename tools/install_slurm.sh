#!/usr/bin/env bash
# Install Slurm's controller, node daemon, client tools and munge from the distribution (Debian/Ubuntu).
# Used by .ci/run and by the test fixture that starts a one-node cluster (test/jobs/conftest.py).
# Nothing is configured or started here; exits 0 at once when everything is already installed.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)
programs=(slurmctld slurmd sbatch squeue munged)

missing=()
for program in "${programs[@]}"; do
    if ! command -v "${program}" > /dev/null && [ ! -x "/usr/sbin/${program}" ]; then
        missing+=("${program}")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "Slurm and munge are installed"
    exit 0
fi

if ! command -v apt-get > /dev/null; then
    echo "ERROR: ${missing[*]} missing and apt-get not found: install Slurm (${packages[*]}) with your" \
        "system's package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
        sudo=(sudo -n)
    else
        echo "ERROR: ${missing[*]} missing; installing ${packages[*]} needs root (or password-less sudo)" >&2
        exit 1
    fi
fi
echo "Installing ${packages[*]} with apt-get"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
