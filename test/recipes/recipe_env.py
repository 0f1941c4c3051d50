"""What the whole-recipe tests share: a private model cache linking the small offline models, and
synthetic EPITOME annotations (the Reddit CSVs are not needed)."""
import sys
from pathlib import Path

import pytest

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
            pytest.skip(f"{name} is not cached: python -m rellm.pretrained fetch {' '.join(SMALL_MODELS)}")
        (cache / name).symlink_to(src)
    write_epitome_csvs(root / "epitome", n_pairs=60)
