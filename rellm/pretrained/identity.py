"""Which model a name stands for, for lineage (``rellm.utils.lineage``): resolved without loading, fetching or
contacting the hub, and added to a stage's ``Inputs`` (``add_model``).

A registry model is its converted folder's ``card.json`` (rewritten by each conversion), a local folder its files,
a locally imported model (``qwen-7b-chat``) its import card, a hub model the snapshot folder of the Hugging Face
cache (named by its revision); a hub model that is not cached is recorded by name only. An experiment folder with
a done marker (a trained emotion encoder, an imported checkpoint) is followed through its marker.
"""
from pathlib import Path

from rellm.utils.lineage import done_marker_of


def resolve_model(name):
    """``(kind, path or None, what)`` for a model named by registry name, local folder or hub name, without
    loading, fetching or contacting the hub: a registry model is its converted folder's ``card.json`` (rewritten
    by each conversion), a hub model the snapshot folder of the Hugging Face cache (named by its revision)."""
    from rellm.pretrained.fetch import model_dir
    from rellm.pretrained.registry import REGISTRY

    name = str(name)
    if name in REGISTRY:
        card = model_dir(name) / "card.json"
        return "file", card, f"registry model {name}"
    path = Path(name).expanduser()
    if path.is_dir():
        return "folder", path, f"model folder {name}"
    from rellm.pretrained.qwen1 import LOCAL_IMPORTS

    if name in LOCAL_IMPORTS:
        # the user's snapshot, converted into the cache on first use: convert it now (as the stage is about to,
        # under the same lock) so that every job of the stage records the same converted model, then follow its
        # import card (rewritten by each conversion, and naming the snapshot it came from)
        from rellm.pretrained.qwen1 import ensure_imported

        folder = Path(ensure_imported(name))
        return "file", folder / "import_card.json", f"imported model {name} ({folder})"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 (not a repo id, no huggingface_hub: the name is all there is)
        cached = None
    if isinstance(cached, str):
        return "folder", Path(cached).parent, f"hub model {name} (cached revision {Path(cached).parent.name})"
    return None, None, f"hub model {name} (not in the local cache: revision unknown)"


def add_model(inputs, name, model):
    """Add the model ``model`` (registry name, local folder or hub name) to ``inputs`` as the input ``name``;
    returns ``inputs``."""
    marker = done_marker_of(model)
    if marker is not None:
        return inputs.marker(name, marker)
    kind, path, what = resolve_model(model)
    return inputs.resolved(name, kind, path if kind is not None else str(model), what=what)
