"""Hub names on an offline node: the HF cache is used without contacting the hub, else one clear line."""
import time

import pytest

from rellm.pretrained import loaders


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_an_uncached_hub_name_offline_fails_at_once_naming_what_to_do(hf_cache):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        loaders.resolve("someorg/some-model")
    assert time.monotonic() - start < 2  # no retry storm
    message = str(err.value)
    assert "\n" not in message
    assert "huggingface-cli download someorg/some-model" in message and "--dry_run true" in message


def test_a_cached_hub_name_resolves_to_its_snapshot_folder(hf_cache):
    snapshot = hf_cache / "models--someorg--some-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (hf_cache / "models--someorg--some-model" / "refs").mkdir()
    (hf_cache / "models--someorg--some-model" / "refs" / "main").write_text("abc123")
    assert loaders.resolve("someorg/some-model") == str(snapshot)


def test_hub_reachable_is_false_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loaders.hub_reachable() is False
