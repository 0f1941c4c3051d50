"""What RESULTS.md records about how its figures were produced: every model and every stage's command.

Models come from the experiment folders (``final/model.json``: LLM, speech encoder, emotion encoder, the
imported checkpoint), the feature cache (``features.json``: the Whisper and emotion encoder of stage 2), the
stage-5 logs (the text-only LLM) and the scores (the EPITOME encoder). Registry models are identified by the
sha256 in their provenance card, local folders by the sha256 of their config.json. Commands are the first
line of each job log (the runner writes the exact command there), per stage.
"""
import hashlib
import json
from pathlib import Path

from rellm.utils.config import split_overrides

# (stage, glob under the recipe folder given the roots)
JOB_LOGS = (
    ("2a emotion encoder", "{exp}/emotion_encoder/{split}/train.log"),
    ("2 features", "{dump}/*/log/extract.1.log"),
    ("3 expected responses", "{exp}/responses/{split}/*/log/respond.1.log"),
    ("4 training", "{exp}/*/{split}/seed{seed}/train.log"),
    ("4 import", "{exp}/*/{split}/seed{seed}/import.log"),
    ("5 inference", "{exp}/*/{split}/seed{seed}/infer/*/log/infer.1.log"),
    ("6 EPITOME", "{exp}/scores/log/epitome_train.log"),
)


def identify(name):
    """``name (where; sha256 ...)`` for a registry name or a local folder; a hub name as it is."""
    name = str(name)
    from rellm.pretrained.fetch import cache_root

    cached = cache_root() / "models" / name
    if (cached / "card.json").is_file():  # a registry model: the sha256 of the file it was converted from
        source = json.loads((cached / "card.json").read_text(encoding="utf-8")).get("source") or {}
        sha = (source.get("file_sha256") or source.get("wheel_sha256")) if isinstance(source, dict) else None
        return f"{name} ({cached}; source sha256 {sha[:16] if sha else 'n/a'})"
    if (cached / "import_card.json").is_file():  # a local import (qwen-7b-chat from QWEN_7B_CHAT)
        source = json.loads((cached / "import_card.json").read_text(encoding="utf-8")).get("source")
        sha = hashlib.sha256((cached / "config.json").read_bytes()).hexdigest()[:16]
        return f"{name} ({cached}, imported from {source}; config.json sha256 {sha})"
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        sha = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
        return f"{name} (local folder {folder.resolve()}; config.json sha256 {sha})"
    return f"{name} (hub name)"


def _first_line(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        line = f.readline().strip()
    return line[2:] if line.startswith("# ") else None


def stage_commands(exp, dump, split, seed):
    """``[(stage, command)]`` from the job logs that exist."""
    out = []
    for stage, pattern in JOB_LOGS:
        for path in sorted(Path(".").glob(pattern.format(exp=exp, dump=dump, split=split, seed=seed))):
            command = _first_line(path)
            if command:
                out.append((stage, command))
    return out


def models(exp, dump, split, seed, train_set="train"):
    """``[(role, description)]``."""
    out = []
    features = Path(dump) / train_set / "features.json"
    if features.is_file():
        info = json.loads(features.read_text(encoding="utf-8"))
        out.append(("stage 2 Whisper", identify(info.get("whisper"))))
        out.append(("stage 2 emotion encoder", identify(info.get("emotion_encoder"))))
    for system in ("blsp_emo", "rellm"):
        path = Path(exp) / system / split / f"seed{seed}" / "final" / "model.json"
        if path.is_file():
            meta = json.loads(path.read_text(encoding="utf-8"))
            base = meta.get("base_models", {})
            for role in ("llm", "speech_encoder", "emotion_encoder"):
                if base.get(role):
                    out.append((f"{system} {role}", identify(base[role])))
            if meta.get("imported_from"):
                src = meta["imported_from"].get("source")
                out.append((f"{system} imported from", str(src)))
    infer_log = sorted(Path(exp).glob(f"text_only/{split}/seed{seed}/infer/*/log/infer.1.log"))
    if infer_log and _first_line(infer_log[0]):
        args = _first_line(infer_log[0]).split()
        overrides = split_overrides([a for a in args[4:] if a.startswith("--") and "=" in a])
        text_llm = overrides.get("text_llm") or _conf_value(args[3] if len(args) > 3 else "", "text_llm")
        if text_llm:
            out.append(("text-only LLM", identify(text_llm)))
    metrics = sorted(Path(exp).glob(f"scores/{split}/seed{seed}/*/metrics.json"))
    if metrics:
        epitome = json.loads(metrics[0].read_text(encoding="utf-8")).get("epitome", {})
        if epitome.get("encoder"):
            out.append(("EPITOME encoder", f"{identify(epitome['encoder'])}; classifiers {epitome.get('models')}"))
    return out


def _conf_value(conf, key):
    import yaml

    path = Path(conf)
    if not path.is_file():
        return None
    from rellm.bin.train import _TagTolerantLoader

    return (yaml.load(path.read_text(encoding="utf-8"), Loader=_TagTolerantLoader) or {}).get(key)


def markdown(exp, dump, split, seed, train_set="train"):
    lines = ["## Models", ""]
    lines += [f"- {role}: {desc}" for role, desc in models(exp, dump, split, seed, train_set)] or ["- (none found)"]
    lines += ["", "## Commands per stage (from the job logs)", "", "```bash"]
    lines += [f"# stage {stage}\n{command}" for stage, command in stage_commands(exp, dump, split, seed)]
    lines += ["```", ""]
    return "\n".join(lines)
