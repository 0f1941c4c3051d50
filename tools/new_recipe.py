#!/usr/bin/env python3
"""Create egs/NAME from egs/TEMPLATE (called by tools/new_recipe.sh; standard library only).

    tools/new_recipe.sh NAME corpus=CORPUS [VAR=VALUE ...]
    e.g. tools/new_recipe.sh esd_zh corpus=esd        then: cd egs/esd_zh && ./run.sh --dry_run true

CORPUS names the stage-1 preparer (rellm/data/corpora/CORPUS.py). The recipe gets:
- run.sh: egs/TEMPLATE/run.sh, which runs ./stages.sh with the recipe's settings as flags; each VAR=VALUE sets
  one (any flag of ./run.sh --help). When a recipe of the corpus exists (egs/CORPUS), its data settings (split
  and sets) are the starting point.
- links shared with every recipe: stages.sh, cmd.sh, path.sh, db.sh, utils (-> tools/), conf/slurm.conf, and
  every stage config of egs/TEMPLATE/conf but the ones the recipe keeps a copy of.
- conf/overlay.yaml: what the recipe puts over the template's configs, the corpus's recipe's when one exists
  (e.g. ESD's avd_source), else the template's; and a copy of each file it lists under own: conf/prepare.yaml
  from the corpus's recipe when one exists (it holds the preparer's own options), conf/score.yaml (RESULTS.md's
  notes on the corpus) from the template.
The folder may already exist: a conf file already there is kept; run.sh and the links must not exist.
"""
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_NAME = "TEMPLATE"
# recipe path -> link target (relative, so that a recipe folder keeps working wherever the checkout is); the
# template's stage configs are linked too, but for the recipe's own copies (conf/overlay.yaml, own:)
LINKED = {"stages.sh": "../TEMPLATE/stages.sh", "cmd.sh": "../TEMPLATE/cmd.sh", "path.sh": "../TEMPLATE/path.sh",
          "db.sh": "../TEMPLATE/db.sh", "utils": "../../tools", "conf/slurm.conf": "../../TEMPLATE/conf/slurm.conf"}
OVERLAY = "conf/overlay.yaml"
# run.sh: `exec ./stages.sh \`, one `    --flag value \` line per setting, then this line: the command as typed
RUN_SH_END = '    -- "$0" "$@"'
# run.sh settings that describe the corpus's data, taken from the corpus's own recipe when there is one
CORPUS_SETTINGS = ("split", "train_set", "valid_set", "test_sets")
# The conf/*.yaml a recipe made from the template alone keeps a copy of (own: in egs/TEMPLATE/conf/overlay.yaml);
# one made from a corpus's recipe keeps a copy of the files that recipe has its own copy of.
TEMPLATE_OWN = ("prepare.yaml", "score.yaml")
# an own file that starts from the template's even when the corpus's recipe has its own: its notes are about that
# recipe's results
FROM_TEMPLATE = ("score.yaml",)


class RecipeError(ValueError):
    pass


def shell_value(value):
    """A value as one word of a bash command: bare when safe, else quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./:+,@%-]*", value) and value:
        return value
    if any(c in value for c in '"$`\\'):
        return shlex.quote(value)
    return f'"{value}"'


def stages_arguments(run_sh):
    """The arguments a recipe's run.sh gives ./stages.sh, as bash makes them: it runs against a stand-in
    stages.sh that prints them (no second parser of its text)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(run_sh, Path(tmp) / "run.sh")
        stub = Path(tmp) / "stages.sh"
        stub.write_text("#!/usr/bin/env bash\nprintf '%s\\0' \"$@\"\n", encoding="utf-8")
        stub.chmod(0o755)
        result = subprocess.run(["bash", "run.sh"], cwd=tmp, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RecipeError(f"{run_sh} did not run: {result.stderr.decode(errors='replace').strip()}")
    return [a.decode("utf-8") for a in result.stdout.split(b"\0")[:-1]]


def read_settings(run_sh):
    """``{flag: value}``: the recipe's settings, the flags its run.sh gives ./stages.sh before ``--``."""
    args = stages_arguments(run_sh)
    args = args[:args.index("--")] if "--" in args else args
    out, i = {}, 0
    while i < len(args):
        name, sep, value = args[i].partition("=")
        if not name.startswith("--"):
            raise RecipeError(f"{run_sh}: expected --flag value, got {args[i]!r}")
        if not sep:
            i += 1
            value = args[i] if i < len(args) else ""
        out[name[2:].replace("-", "_")] = value
        i += 1
    return out


def check_flags(settings, template):
    """Stop on a setting that stages.sh does not take: its own parser answers (./stages.sh ... --help)."""
    args = [a for name, value in settings.items() for a in (f"--{name}", value)]
    result = subprocess.run(["bash", "stages.sh", *args, "--help"], cwd=template, capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise RecipeError(result.stderr.strip().removeprefix("ERROR: "))


def set_variables(run_sh_text, assignments):
    """Set the flags of ``assignments`` (name -> value) in run.sh's call of ./stages.sh: a flag already there gets
    the new value, another is added after the last one."""
    lines = run_sh_text.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if line.rstrip("\n") == RUN_SH_END), None)
    if end is None:
        raise RecipeError(f"run.sh has no line '{RUN_SH_END.strip()}' ending its call of ./stages.sh")
    pending = dict(assignments)
    for i in range(end):
        match = re.match(r"^    --([A-Za-z_][A-Za-z0-9_]*) ", lines[i])
        if match and match.group(1) in pending:
            lines[i] = f"    --{match.group(1)} {shell_value(pending.pop(match.group(1)))} \\\n"
    lines[end:end] = [f"    --{name} {shell_value(value)} \\\n" for name, value in pending.items()]
    return "".join(lines)


def own_files(corpus_recipe):
    """The conf/*.yaml a new recipe keeps a copy of: those the corpus's recipe has its own copy of (files, not
    links) when it links the template's (it has a conf/overlay.yaml), else the template's list."""
    if corpus_recipe is None or not (corpus_recipe / OVERLAY).is_file():
        return set(TEMPLATE_OWN)
    return {p.name for p in (corpus_recipe / "conf").glob("*.yaml")
            if p.is_file() and not p.is_symlink() and f"conf/{p.name}" != OVERLAY}


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
        theirs = read_settings(corpus_recipe / "run.sh")
        settings = {k: theirs[k] for k in CORPUS_SETTINGS if k in theirs}
    settings.update(assignments)
    check_flags(settings, template)
    run_sh = set_variables((template / "run.sh").read_text(encoding="utf-8"), settings)
    overlay_source = corpus_recipe if corpus_recipe and (corpus_recipe / OVERLAY).is_file() else template
    own = own_files(corpus_recipe)

    (recipe / "conf").mkdir(parents=True, exist_ok=True)
    (recipe / "run.sh").write_text(run_sh, encoding="utf-8")
    shutil.copymode(template / "run.sh", recipe / "run.sh")
    for rel, target in LINKED.items():
        (recipe / rel).symlink_to(target)
    kept = []
    for conf in sorted((template / "conf").glob("*.yaml")):
        rel = f"conf/{conf.name}"
        if (recipe / rel).exists() or (recipe / rel).is_symlink():
            kept.append(rel)
        elif rel == OVERLAY:
            shutil.copy2(overlay_source / OVERLAY, recipe / rel)
        elif conf.name not in own:
            (recipe / rel).symlink_to(f"../../{TEMPLATE_NAME}/conf/{conf.name}")
        elif corpus_recipe and conf.name not in FROM_TEMPLATE and (corpus_recipe / rel).is_file():
            shutil.copy2(corpus_recipe / rel, recipe / rel)
        else:
            shutil.copy2(conf, recipe / rel)
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
        lines.append(f"Split, sets, conf/prepare.yaml and conf/overlay.yaml come from {corpus_recipe.name}'s recipe.")
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
        "  - conf/overlay.yaml: this corpus's values for the linked configs, e.g. avd_source: encoder for",
        "    train_*.yaml if the corpus has no arousal/valence/dominance labels",
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
