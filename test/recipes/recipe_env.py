"""What the whole-recipe tests share: a private model cache linking the small offline models, synthetic
EPITOME annotations (the Reddit CSVs are not needed), and a checkout in tmp to create recipes in."""
import shutil
import sys
from pathlib import Path

from rellm.testing.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test" / "scoring"))
SMALL_MODELS = ("whisper-tiny.en", "smollm2-135m-instruct", "minilm-l6")


def private_cache_and_epitome(root):
    """``root/cache/models/<name>`` links to the cached small models (skip when one is not fetched) and
    ``root/epitome`` holds 60 synthetic annotated pairs per mechanism."""
    from scoring_fixtures import write_epitome_csvs

    from rellm.pretrained.fetch import cache_root

    cache = root / "cache" / "models"
    cache.mkdir(parents=True)
    for name in SMALL_MODELS:
        src = cache_root() / "models" / name
        if not src.is_dir():
            missing(f"{name} is not cached: python -m rellm.pretrained fetch {' '.join(SMALL_MODELS)}")
        (cache / name).symlink_to(src)
    write_epitome_csvs(root / "epitome", n_pairs=60)


def checkout_for_new_recipes(root):
    """``root`` made a checkout in which ``tools/new_recipe.sh`` creates recipes under ``root/egs``: rellm/ and
    each egs/ folder link to this checkout's, tools/ links each of its entries but copies new_recipe.sh and
    new_recipe.py (they find the checkout from their own path). Returns the path of root/tools/new_recipe.sh."""
    root = Path(root)
    (root / "egs").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "rellm").symlink_to(REPO / "rellm")
    for recipe in (REPO / "egs").iterdir():
        (root / "egs" / recipe.name).symlink_to(recipe)
    for entry in (REPO / "tools").iterdir():
        if entry.name in ("new_recipe.sh", "new_recipe.py"):
            shutil.copy2(entry, root / "tools" / entry.name)
        else:
            (root / "tools" / entry.name).symlink_to(entry)
    return root / "tools" / "new_recipe.sh"
