"""The package's layers point one way: a module imports only its own layer or lower ones (DEVELOPING.md#layers).

Every ``import`` of a ``rellm`` module is read from the source (lazy imports inside functions too), so a new
module that reaches up fails here with the offending import named. Stage 6 (``rellm.scoring``) also imports
nothing of the pipeline it scores (features, models, training, generation).
"""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rellm"

# sub-package (or top-level module) -> layer; lower numbers are further down
LAYERS = {
    "utils": 0, "jobs": 0, "systems": 0,
    "data": 1,
    "pretrained": 2,
    "models": 3,
    "features": 4,
    "training": 5,
    "generation": 6,
    "scoring": 7,
    "recipes": 8, "export": 8, "model_folder": 8, "responder": 8, "responder_audio": 8, "responder_vad": 8,
    "responder_cli": 8,
    "bin": 9, "demo": 9, "testing": 9,
}
ENTRY_POINT = 9  # a package's __main__.py (python -m rellm.<package>) is a command line, like rellm/bin
INDEPENDENT = {"scoring": ("features", "models", "training", "generation")}
# The only imports allowed against the order, each for a path users import.
COMPAT = {
    # rellm.pretrained.blsp_emo.import_blsp_emo, the importer's earlier home, forwards to its new one on first use
    ("rellm.pretrained.blsp_emo", "rellm.training.blsp_emo_import"),
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lazy_root_names():
    """``from rellm import Responder``: the names the package root imports on first use, and from where."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def imported_modules(path, name):
    """``[(line, imported module)]`` of every ``rellm`` import in the file (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    lazy = lazy_root_names()
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - (node.level - (1 if is_package else 0))]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "rellm":  # from rellm import x: the submodule x, or what the root imports lazily
                for alias in node.names:
                    if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file():
                        out.append((node.lineno, f"rellm.{alias.name}"))
                    elif alias.name in lazy:
                        out.append((node.lineno, lazy[alias.name]))
                    # else the package root itself (__version__): imported by every rellm module anyway
            else:
                out.append((node.lineno, module))
    return [(line, m) for line, m in out if m.startswith("rellm.")]


def layer_of(module):
    parts = module.split(".")
    if parts[-1] == "__main__":
        return ENTRY_POINT
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = sorted({module_name(p) for p in sources() if module_name(p) != "rellm"
                      and layer_of(module_name(p)) is None})
    assert not missing, f"modules without a layer (add them to LAYERS here and to DEVELOPING.md#layers): {missing}"


def violations(paths):
    found = []
    for path in paths:
        name = module_name(path)
        own = layer_of(name) if name != "rellm" else 0
        for line, target in imported_modules(path, name):
            if (name, target) in COMPAT:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            other = layer_of(target)
            if other is None:
                found.append(f"{where} (no layer known for it)")
            elif other > own:
                found.append(f"{where} (layer {other} above its own {own})")
            top, target_top = name.split(".")[1:2], target.split(".")[1]
            if top and target_top in INDEPENDENT.get(top[0], ()):
                found.append(f"{where} (rellm.{top[0]} must not depend on rellm.{target_top})")
    return found


def test_layers_point_one_way():
    found = violations(sources())
    assert not found, "imports against the layer order:\n" + "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from rellm.training.align import train_two_steps\n", "imports rellm.training.align (layer 5"),
    ("from rellm.generation import inference\n", "imports rellm.generation (layer 6"),
    ("from ..features.cache import FeatureCache\n", "imports rellm.features.cache (layer 4"),
])
def test_an_import_upward_is_named(tmp_path, monkeypatch, source, expected):
    """The check itself: a lazy, a package-relative and a relative import up from rellm/models are each caught and
    named with their line."""
    fake = tmp_path / "rellm"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "models" / "__init__.py").write_text("")
    module = fake / "models" / "probe.py"
    module.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = violations([module])
    assert len(found) == 1 and found[0].startswith("rellm/models/probe.py:") and expected in found[0]


def test_scoring_depends_on_no_pipeline_code(tmp_path, monkeypatch):
    """Stage 6 reads stage-5 outputs, never the code that made them: even a lower layer's pipeline module is refused."""
    fake = tmp_path / "rellm"
    (fake / "scoring").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "scoring" / "__init__.py").write_text("")
    module = fake / "scoring" / "probe.py"
    module.write_text("from rellm.models.heads import ccc\nfrom rellm.data.ser_metrics import ser_metrics\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations([module]) == [("rellm/scoring/probe.py:1 imports rellm.models.heads (rellm.scoring must not "
                                     "depend on rellm.models)")]
