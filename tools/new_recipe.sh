#!/usr/bin/env bash
# Create a recipe from egs/TEMPLATE:  tools/new_recipe.sh NAME corpus=CORPUS [VAR=VALUE ...]
# e.g. tools/new_recipe.sh esd_zh corpus=esd   (see tools/new_recipe.py for what is copied and linked;
# it prints what to edit next)
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/new_recipe.py" "$@"
