#!/usr/bin/env python3
"""Create egs/NAME from egs/TEMPLATE (called by tools/new_recipe.sh; standard library only).

    tools/new_recipe.sh NAME corpus=CORPUS [VAR=VALUE ...]
    e.g. tools/new_recipe.sh esd_zh corpus=esd        then: cd egs/esd_zh && ./run.sh --dry_run true

CORPUS names the stage-1 preparer (rellm/data/corpora/CORPUS.py). The recipe gets:
- run.sh: egs/TEMPLATE/run.sh's settings, each VAR=VALUE replacing one default (its comment kept). When a
  recipe of the corpus exists (egs/CORPUS), its data settings (split and sets) are the starting point.
- links shared with every recipe: stages.sh, cmd.sh, path.sh, db.sh, conf/slurm.conf, utils (-> tools/),
  and conf/epitome.yaml (the paper recipes' EPITOME classifiers, one cache for all).
- copies to tune: egs/TEMPLATE/conf/*.yaml (the paper recipes' settings); conf/prepare.yaml from the corpus's
  recipe when one exists (it holds the preparer's own options), else the template's.
The folder may already exist: a conf/*.yaml already there is kept; run.sh and the links must not exist.
"""
import re
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_NAME = "TEMPLATE"
# recipe path -> link target (relative, so that a recipe folder keeps working wherever the checkout is)
LINKED = {"stages.sh": "../TEMPLATE/stages.sh", "cmd.sh": "../TEMPLATE/cmd.sh", "path.sh": "../TEMPLATE/path.sh",
          "db.sh": "../TEMPLATE/db.sh", "utils": "../../tools", "conf/slurm.conf": "../../TEMPLATE/conf/slurm.conf",
          "conf/epitome.yaml": "../../TEMPLATE/conf/epitome.yaml"}
STAGE_SECTION_START = '. ./stages.sh "$@"'  # run.sh: its settings above this line, the shared stages below
# run.sh settings that describe the corpus's data, taken from the corpus's own recipe when there is one
CORPUS_SETTINGS = ("split", "train_set", "valid_set", "test_sets")


class RecipeError(ValueError):
    pass


def shell_value(value):
    """A value as the right-hand side of a bash assignment: bare when safe, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./:+,@%-]*", value) and value:
        return value
    if any(c in value for c in '"$`\\'):
        return shlex.quote(value)
    return f'"{value}"'


def _settings_end(lines):
    end = next((i for i, line in enumerate(lines) if line.strip() == STAGE_SECTION_START), None)
    if end is None:
        raise RecipeError(f"run.sh has no '{STAGE_SECTION_START}' line separating settings from stages")
    return end


def read_settings(run_sh_text):
    """``{name: value}`` of run.sh's settings (the assignments above ``. ./stages.sh``), values unquoted."""
    lines = run_sh_text.splitlines()
    out = {}
    for line in lines[:_settings_end(lines)]:
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            words = shlex.split(match.group(2), comments=True)
            out[match.group(1)] = words[0] if words else ""
    return out


def set_variables(run_sh_text, assignments):
    """Replace the defaults of ``assignments`` (name -> value) in the settings part of run.sh."""
    lines = run_sh_text.splitlines(keepends=True)
    end = _settings_end(lines)
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


def has_preparer(corpus, root=ROOT):
    return corpus not in ("common", "__init__") and (root / "rellm" / "data" / "corpora" / f"{corpus}.py").is_file()


def new_recipe(name, assignments, egs=None):
    """Create ``egs/name``; returns ``(recipe folder, the corpus's recipe folder or None, kept conf files)``."""
    egs = Path(egs) if egs else ROOT / "egs"
    template = egs / TEMPLATE_NAME
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or name == TEMPLATE_NAME:
        raise RecipeError(f"bad recipe name {name!r} (letters, digits, _ . -; not {TEMPLATE_NAME})")
    corpus = assignments.get("corpus", "")
    if not corpus:
        raise RecipeError("say which preparer stage 1 runs: corpus=CORPUS (rellm/data/corpora/CORPUS.py, e.g. esd)")
    recipe = egs / name
    existing = [p for p in ["run.sh", *LINKED] if (recipe / p).exists() or (recipe / p).is_symlink()]
    if existing:
        raise RecipeError(f"{recipe} already has {', '.join(existing)}; remove them to recreate the recipe")
    corpus_recipe = egs / corpus
    if corpus == TEMPLATE_NAME or not (corpus_recipe / "run.sh").is_file():
        corpus_recipe = None
    settings = {}
    if corpus_recipe:
        theirs = read_settings((corpus_recipe / "run.sh").read_text(encoding="utf-8"))
        settings = {k: theirs[k] for k in CORPUS_SETTINGS if k in theirs}
    settings.update(assignments)
    run_sh = set_variables((template / "run.sh").read_text(encoding="utf-8"), settings)

    (recipe / "conf").mkdir(parents=True, exist_ok=True)
    (recipe / "run.sh").write_text(run_sh, encoding="utf-8")
    shutil.copymode(template / "run.sh", recipe / "run.sh")
    for rel, target in LINKED.items():
        (recipe / rel).symlink_to(target)
    kept = []
    for conf in sorted((template / "conf").glob("*.yaml")):
        rel = f"conf/{conf.name}"
        if rel in LINKED:
            continue
        if (recipe / rel).exists():
            kept.append(rel)
            continue
        source = corpus_recipe / rel if corpus_recipe and conf.name == "prepare.yaml" else conf
        shutil.copy2(source, recipe / rel)
    return recipe, corpus_recipe, kept


def corpus_root_variable(corpus, root=ROOT):
    """The db.sh variable holding the corpus root (rellm_db_root), or None (a corpus the recipe makes itself)."""
    db_sh = (root / "egs" / TEMPLATE_NAME / "db.sh").read_text(encoding="utf-8")
    match = re.search(rf"^\s*{re.escape(corpus)}\)\s*\n\s*var=(\w+)", db_sh, re.MULTILINE)
    return match.group(1) if match else None


def next_steps(recipe, corpus, corpus_recipe, kept, root=ROOT):
    """What the user edits next, as lines to print."""
    where = recipe.relative_to(root) if recipe.is_relative_to(root) else recipe
    lines = [f"Created {where} for corpus {corpus}."]
    if kept:
        lines.append(f"Kept the existing {', '.join(kept)}.")
    if corpus_recipe:
        lines.append(f"Split, sets and conf/prepare.yaml come from {corpus_recipe.name}'s recipe.")
    lines.append("Next:")
    if not has_preparer(corpus, root):
        lines += [(f"  - write rellm/data/corpora/{corpus}.py with prepare_{corpus}(data_folder, save_folder, split, ...)"
                   " (see rellm/data/corpora/esd.py), add it to PREPARERS in rellm/data/corpora/__init__.py,"),
                  f"    and its root variable to egs/TEMPLATE/db.sh (rellm_db_root {corpus})"]
    elif var := corpus_root_variable(corpus, root):
        lines.append(f"  - say where the corpus is: {var}=/path/to/it ./run.sh ..., or {var}=... in the recipe's db.local.sh")
    lines += [
        "  - run.sh: the recipe settings (split, sets, step1_data, blsp_emo_source, nj, ngpu)",
        "  - conf/prepare.yaml: the preparer's options; conf/score.yaml: notes for RESULTS.md",
        "  - conf/train_*.yaml: avd_source: encoder if the corpus has no arousal/valence/dominance labels",
        "  - README.md: the corpus, its licence and the recipe's results",
        f"Then check the whole recipe on small models: cd {where} && ./run.sh --dry_run true",
    ]
    return lines


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
        recipe, corpus_recipe, kept = new_recipe(name, assignments)
    except RecipeError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print("\n".join(next_steps(recipe, assignments["corpus"], corpus_recipe, kept)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
