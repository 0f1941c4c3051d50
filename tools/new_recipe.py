#!/usr/bin/env python3
"""Create egs/NAME from egs/TEMPLATE (called by tools/new_recipe.sh; standard library only).

    tools/new_recipe.sh NAME [VAR=VALUE ...]

Copies run.sh, cmd.sh and conf/slurm.conf; links path.sh and db.sh to ../TEMPLATE and utils to
../../tools, so recipes share the template's environment and tools. Each VAR=VALUE replaces the
default of a variable in run.sh's settings (the lines above ``. ./path.sh``), keeping its comment.
The folder may already exist (e.g. with conf/*.yaml); files the template provides must not.
"""
import re
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "egs" / "TEMPLATE"
COPIED = ["run.sh", "cmd.sh", "conf/slurm.conf"]
LINKED = {"path.sh": "../TEMPLATE/path.sh", "db.sh": "../TEMPLATE/db.sh", "utils": "../../tools"}
STAGE_SECTION_START = ". ./path.sh"  # run.sh from this line down is the template's, in every recipe


class RecipeError(ValueError):
    pass


def shell_value(value):
    """A value as the right-hand side of a bash assignment: bare when safe, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./:+,@%-]*", value) and value:
        return value
    if any(c in value for c in '"$`\\'):
        return shlex.quote(value)
    return f'"{value}"'


def set_variables(run_sh_text, assignments):
    """Replace the defaults of ``assignments`` (name -> value) in the settings part of run.sh."""
    lines = run_sh_text.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if line.strip() == STAGE_SECTION_START), None)
    if end is None:
        raise RecipeError(f"run.sh has no '{STAGE_SECTION_START}' line separating settings from stages")
    pending = dict(assignments)
    for i in range(end):
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=", lines[i])
        if not match or match.group(1) not in pending:
            continue
        name = match.group(1)
        comment = re.search(r"\s#\s?.*$", lines[i].rstrip("\n"))
        new = f"{name}={shell_value(pending.pop(name))}"
        if comment:
            column = comment.start()
            new = new.ljust(column) + comment.group(0) if len(new) < column else new + " " + comment.group(0).lstrip()
        lines[i] = new + "\n"
    if pending:
        raise RecipeError(f"run.sh has no setting(s) {', '.join(sorted(pending))} above '{STAGE_SECTION_START}'")
    return "".join(lines)


def new_recipe(name, assignments, egs=None):
    egs = Path(egs) if egs else ROOT / "egs"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or name == "TEMPLATE":
        raise RecipeError(f"bad recipe name {name!r} (letters, digits, _ . -; not TEMPLATE)")
    recipe = egs / name
    existing = [p for p in [*COPIED, *LINKED] if (recipe / p).exists() or (recipe / p).is_symlink()]
    if existing:
        raise RecipeError(f"{recipe} already has {', '.join(existing)}; remove them to recreate the recipe")
    run_sh = set_variables((TEMPLATE / "run.sh").read_text(encoding="utf-8"), assignments)
    (recipe / "conf").mkdir(parents=True, exist_ok=True)
    for rel in COPIED:
        shutil.copy2(TEMPLATE / rel, recipe / rel)
    (recipe / "run.sh").write_text(run_sh, encoding="utf-8")
    for rel, target in LINKED.items():
        (recipe / rel).symlink_to(target)
    return recipe


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, assignments = argv[0], {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            print(f"ERROR: expected VAR=VALUE, got {arg!r}", file=sys.stderr)
            return 2
        assignments[key] = value
    try:
        recipe = new_recipe(name, assignments)
    except RecipeError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(f"Created {recipe.relative_to(ROOT)}: edit the settings at the top of run.sh and add conf/*.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
