"""egs/TEMPLATE/db.sh: corpus roots from the environment or db.local.sh, and rellm_db_root's errors."""
import os
import shutil
import subprocess

import pytest

CORPORA = {"iemocap": ("IEMOCAP", "Session1"), "esd": ("ESD", "0011"), "msp_podcast": ("MSP_PODCAST", "Audios")}


@pytest.fixture
def recipe(tmp_path, repo_root):
    folder = tmp_path / "recipe"
    folder.mkdir()
    shutil.copy(repo_root / "egs" / "TEMPLATE" / "db.sh", folder / "db.sh")
    return folder


def db_root(recipe, corpus, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("IEMOCAP", "ESD", "MSP_PODCAST")}
    return subprocess.run(["bash", "-c", 'set -euo pipefail; . ./db.sh; root=$(rellm_db_root "$1"); echo "[${root}]"',
                           "_", corpus], cwd=recipe, env={**clean, **env}, capture_output=True, text=True, check=False)


def test_mini_needs_no_corpus(recipe):
    result = db_root(recipe, "mini")
    assert result.returncode == 0 and result.stdout == "[]\n"


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_unset_corpus_stops_with_how_to(recipe, corpus):
    var = CORPORA[corpus][0]
    result = db_root(recipe, corpus)
    assert result.returncode != 0 and result.stdout == ""  # set -e stopped the caller
    assert f"{var} is not set" in result.stderr
    assert "Expected layout:" in result.stderr and "Get the corpus from: http" in result.stderr
    assert f"{var}=/path/to/corpus" in result.stderr


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_root_from_environment_is_checked(recipe, tmp_path, corpus):
    # db.sh only checks "set and a folder"; the preparer validates the layout (it accepts variants).
    var, _marker = CORPORA[corpus]
    root = tmp_path / f"corpus {corpus}"
    result = db_root(recipe, corpus, **{var: str(root)})
    assert result.returncode != 0 and f"{var}={root} is not a folder" in result.stderr
    root.mkdir()
    result = db_root(recipe, corpus, **{var: str(root)})
    assert result.returncode == 0 and result.stdout == f"[{root}]\n"


def test_db_local_sh_and_environment_precedence(recipe, tmp_path):
    for name in ("site", "env"):
        (tmp_path / name / "Session1").mkdir(parents=True)
    (recipe / "db.local.sh").write_text(f"IEMOCAP={tmp_path / 'site'}\n")
    assert db_root(recipe, "iemocap").stdout == f"[{tmp_path / 'site'}]\n"
    assert db_root(recipe, "iemocap", IEMOCAP=str(tmp_path / "env")).stdout == f"[{tmp_path / 'env'}]\n"


def test_unknown_corpus(recipe):
    result = db_root(recipe, "gigaspeech")
    assert result.returncode != 0 and "unknown corpus 'gigaspeech'" in result.stderr
