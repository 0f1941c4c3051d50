"""What RESULTS.md records about how its figures were produced: every model and every stage's command.

Models come from the experiment folders (``final/model.json``: LLM, speech encoder, emotion encoder, the
imported checkpoint), the feature cache (``features.json``: the Whisper and emotion encoder of stage 2), the
stage-5 logs (the text-only LLM) and the scores (the EPITOME encoder). Registry models are identified by the
sha256 in their provenance card, local folders by the sha256 of their config.json.

Paths are given as a reader of any checkout can use them: relative to the recipe folder (where stage 6 runs)
when inside it, ``$RELLM_CACHE/...`` inside the offline model cache, ``~/...`` under the home folder; a model of the
offline kit is ``registry:<name>`` (``python -m rellm.pretrained fetch <name>``). Each speech-LLM's training curves
(``rellm.training.curves``) are copied beside RESULTS.md (``results_figures/<split>_seed<seed>/``) and linked.

Commands, per stage (1, 2a, 2, 3, 4, 5, 6), as icefall's RESULTS.md lists them: the ``command.txt`` that each
stage writes beside its done marker (``rellm.utils.stage``: the recipe command, ``$RELLM_RECIPE_COMMAND``,
and the Python command of every job, a sharded stage's shard jobs then its merge). A stage without one (outputs
of an older version) falls back to the first line of its job logs (the runner writes the exact command there).
Folders are read in sorted order and repeated commands listed once, so the section is deterministic.
"""
import glob
import hashlib
import json
import os
import shutil
from pathlib import Path

from rellm import systems
from rellm.features.cache import read_feature_meta
from rellm.utils.config import config_value, split_overrides
from rellm.utils.experiment_dir import ExperimentDir

# (stage, globs of the folders holding a command.txt, under the recipe folder given the roots)
COMMAND_FOLDERS = (
    ("1 data preparation", ("{data}",)),
    ("2a emotion encoder", ("{exp}/emotion_encoder/{split}",)),
    ("2 features", ("{dump}/*",)),
    ("3 expected responses", ("{exp}/responses/{split}/*",)),
    ("4 training", ("{exp}/*/{split}/seed{seed}",)),
    ("5 inference", ("{exp}/*/{split}/seed{seed}/infer/*",)),
    ("6 scoring", ("{epitome}/*", "{exp}/scores/{split}/seed{seed}/*")),
)

# (stage, glob under the recipe folder given the roots): the fallback for outputs without command.txt
JOB_LOGS = (
    ("2a emotion encoder", "{exp}/emotion_encoder/{split}/train.log"),
    ("2 features", "{dump}/*/log/extract.1.log"),
    ("3 expected responses", "{exp}/responses/{split}/*/log/respond.1.log"),
    ("4 training", "{exp}/*/{split}/seed{seed}/train.log"),
    ("4 import", "{exp}/*/{split}/seed{seed}/import.log"),
    ("5 inference", "{exp}/*/{split}/seed{seed}/infer/*/log/infer.1.log"),
    ("6 EPITOME", "{exp}/scores/log/epitome_train.log"),
)


def display_path(path, root=None):
    """How RESULTS.md names a file or folder: relative to ``root`` (the recipe folder, default the current one)
    when inside it, ``$RELLM_CACHE/...`` inside the model cache, ``~/...`` under the home folder, else absolute."""
    from rellm.pretrained.fetch import cache_root

    root = Path(root or Path.cwd()).resolve()
    target = Path(os.path.expanduser(str(path)))
    target = (target if target.is_absolute() else root / target).resolve()
    for base, shown in ((root, None), (cache_root().resolve(), "$RELLM_CACHE"), (Path.home().resolve(), "~")):
        if target == base or base in target.parents:
            relative = target.relative_to(base).as_posix()
            if shown is None:
                return relative
            return f"{shown}/{relative}" if relative != "." else shown
    return target.as_posix()


def identify(name):
    """``registry:<name> (source sha256 ...)`` for a model of the offline kit, ``<path> (local folder; config.json
    sha256 ...)`` for a folder (:func:`display_path`), a hub name as it is."""
    name = str(name)
    from rellm.pretrained.fetch import cache_root

    cached = cache_root() / "models" / name
    if (cached / "card.json").is_file():  # a registry model: the sha256 of the file it was converted from
        source = json.loads((cached / "card.json").read_text(encoding="utf-8")).get("source") or {}
        sha = (source.get("file_sha256") or source.get("wheel_sha256")) if isinstance(source, dict) else None
        return f"registry:{name} (source sha256 {sha[:16] if sha else 'n/a'})"
    if (cached / "import_card.json").is_file():  # a local import (qwen-7b-chat from QWEN_7B_CHAT)
        source = json.loads((cached / "import_card.json").read_text(encoding="utf-8")).get("source")
        sha = hashlib.sha256((cached / "config.json").read_bytes()).hexdigest()[:16]
        where = display_path(source) if source else "unknown"
        return f"registry:{name} (imported from {where}; config.json sha256 {sha})"
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        sha = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
        return f"{display_path(folder)} (local folder; config.json sha256 {sha})"
    return f"{name} (hub name)"


def _first_line(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        line = f.readline().strip()
    return line[2:] if line.startswith("# ") else None


def _logged_commands(stage, roots):
    out = []
    for name, pattern in JOB_LOGS:
        if name.split()[0] == stage.split()[0]:
            for path in sorted(glob.glob(pattern.format(**roots))):
                command = _first_line(path)
                if command:
                    out.append(command)
    return out


def _unique(items):
    return list(dict.fromkeys(item for item in items if item))


def data_folder(dump, split, train_set="train"):
    """Stage 1's folder: the one of the manifest stage 2 read (``features.json``), else ``data/<split>``."""
    manifest = read_feature_meta(Path(dump) / train_set).get("manifest")
    if manifest:
        return str(Path(manifest).parent)
    return f"data/{split}"


def epitome_folder(exp, split, seed):
    """The EPITOME classifiers' folder that stage 6 scored with (from ``metrics.json``), or None."""
    for path in sorted(Path(exp).glob(f"scores/{split}/seed{seed}/*/metrics.json")):
        models = json.loads(path.read_text(encoding="utf-8")).get("epitome", {}).get("models")
        if models:
            return models
    return None


def stage_commands(exp, dump, split, seed, train_set="train", data=None, final=()):
    """``[(stage, [recipe commands], [python commands])]`` for the stages with any; ``final``: commands of this
    process to add to stage 6 (``rellm.bin.results``, which writes RESULTS.md and no marker)."""
    from rellm.utils.stage import read_command_file

    roots = {"exp": exp, "dump": dump, "split": split, "seed": seed,
             "data": data or data_folder(dump, split, train_set), "epitome": epitome_folder(exp, split, seed)}
    out = []
    for stage, patterns in COMMAND_FOLDERS:
        recipes, pythons = [], []
        for pattern in patterns:
            if "{epitome}" in pattern and not roots["epitome"]:
                continue
            folders = sorted({Path(p).parent for p in glob.glob(f"{pattern.format(**roots)}/command.txt")})
            for folder in folders:
                recipe, python = read_command_file(folder)
                recipes.append(recipe)
                pythons += python
        if not pythons:
            pythons = _logged_commands(stage, roots)
        if stage.startswith("6"):
            recipes += [r for r, _ in final]
            pythons += [p for _, p in final]
        if pythons or any(recipes):
            out.append((stage, _unique(recipes), _unique(pythons)))
    return out


def models(exp, dump, split, seed, train_set="train"):
    """``[(role, description)]``."""
    out = []
    info = read_feature_meta(Path(dump) / train_set)
    if info:
        out.append(("stage 2 Whisper", identify(info.get("whisper"))))
        out.append(("stage 2 emotion encoder", identify(info.get("emotion_encoder"))))
    # every trained or imported system of this run (any name: blsp_emo, rellm, blsp_emo_ft, ...), in table order
    found = [p.parts[-5] for p in Path(exp).glob(f"*/{split}/seed{seed}/final/model.json")]
    for system in systems.ordered(sorted(found)):
        exp_dir = ExperimentDir(Path(exp) / system / split / f"seed{seed}")
        path = exp_dir.final_config
        if path.is_file():
            meta = json.loads(path.read_text(encoding="utf-8"))
            base = meta.get("base_models", {})
            llm_dtype = meta.get("model", {}).get("llm_dtype")  # "fast" / "auto" resolve per machine
            for role in ("llm", "speech_encoder", "emotion_encoder"):
                if base.get(role):
                    desc = identify(base[role])
                    if role == "llm" and llm_dtype:  # say what training used
                        desc += f"; frozen weights in {llm_dtype} during training"
                    out.append((f"{system} {role}", desc))
            if meta.get("imported_from"):
                src = meta["imported_from"].get("source")
                out.append((f"{system} imported from", display_path(src) if src else "unknown"))
            init = config_value(exp_dir.hyperparams, "init_from") if exp_dir.hyperparams.is_file() else None
            if init:  # e.g. RE-LLM continues the imported BLSP-Emo: what its training data include
                out.append((f"{system} initialised from", str(init)))
    for system in systems.names(modality="text"):  # the text systems' LLM, from their stage-5 job logs
        infer_log = sorted(Path(exp).glob(f"{system}/{split}/seed{seed}/infer/*/log/infer.1.log"))
        if infer_log and _first_line(infer_log[0]):
            args = _first_line(infer_log[0]).split()
            overrides = split_overrides([a for a in args[4:] if a.startswith("--") and "=" in a])
            text_llm = overrides.get("text_llm") or config_value(args[3] if len(args) > 3 else "", "text_llm")
            if text_llm:
                out.append((systems.label(system), identify(text_llm)))
    metrics = sorted(Path(exp).glob(f"scores/{split}/seed{seed}/*/metrics.json"))
    if metrics:
        epitome = json.loads(metrics[0].read_text(encoding="utf-8")).get("epitome", {})
        if epitome.get("encoder"):
            classifiers = display_path(epitome["models"]) if epitome.get("models") else "unknown"
            out.append(("EPITOME encoder", f"{identify(epitome['encoder'])}; classifiers {classifiers}"))
    return out




def training_curves(exp, split, seed, results_dir="."):
    """``[(role, markdown)]``: each trained speech-LLM's ``training_curves.png`` (stage 4), copied to
    ``<results_dir>/results_figures/<split>_seed<seed>/training_curves_<system>.png`` and linked from there."""
    from rellm.utils.experiment_dir import CURVES_PNG, TENSORBOARD_DIR

    out = []
    figures = Path(results_dir) / "results_figures" / f"{split}_seed{seed}"
    for png in sorted(Path(exp).glob(f"*/{split}/seed{seed}/{CURVES_PNG}")):
        system = png.parts[-4]
        copy = figures / f"training_curves_{system}.png"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, copy)
        events = png.parent / TENSORBOARD_DIR
        where = f"; TensorBoard: `tensorboard --logdir {display_path(events)}`" if events.is_dir() else ""
        out.append((f"{system} training curves",
                    f"[{copy.name}]({copy.relative_to(results_dir).as_posix()}) (from {display_path(png)}{where})"))
    return out


def markdown(exp, dump, split, seed, train_set="train", data=None, final=(), results_dir="."):
    """RESULTS.md's models and commands sections; ``results_dir``: the folder RESULTS.md is written to (its figure
    links are relative to it)."""
    lines = ["## Models", "",
             ("Paths are relative to the recipe folder; `registry:NAME` is a model of the offline kit (`python -m "
              "rellm.pretrained fetch NAME`) and `$RELLM_CACHE` its cache (default `~/.cache/rellm`)."), ""]
    found = models(exp, dump, split, seed, train_set) + training_curves(exp, split, seed, results_dir)
    lines += [f"- {role}: {desc}" for role, desc in found] or ["- (none found)"]
    lines += ["", "## Commands per stage", "",
              ("The Python command of every job, then the recipe command that ran it (`command.txt` beside each "
               "stage's outputs)."), "", "```bash"]
    for stage, recipes, pythons in stage_commands(exp, dump, split, seed, train_set, data, final):
        lines += [f"# stage {stage}", *pythons, *(f"# recipe: {r}" for r in recipes)]
    lines += ["```", ""]
    return "\n".join(lines)
