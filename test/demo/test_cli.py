"""rellm-demo's command line: --compare (sibling experiment or explicit folder), one-line errors before any model
loads, and the page's parts for the flags given."""
import socket
import subprocess
import sys

import pytest

from rellm.demo import cli
from rellm.demo.systems import Baseline, DemoError, parse_compare, sibling_experiment


def _experiment(root, model, split="official", seed=1):
    exp = root / "exp" / model / split / f"seed{seed}"
    (exp / "final").mkdir(parents=True)
    (exp / "final" / "model.json").write_text("{}")
    (exp / "final" / "trainable.safetensors").write_bytes(b"")
    return exp


def test_blsp_emo_is_the_sibling_experiment_of_the_same_split_and_seed(tmp_path):
    rellm = _experiment(tmp_path, "rellm", "fold3", 2)
    blsp = _experiment(tmp_path, "blsp_emo", "fold3", 2)
    _experiment(tmp_path, "blsp_emo", "fold3", 1)
    assert sibling_experiment(rellm, "blsp_emo") == blsp.resolve()
    assert parse_compare("blsp_emo,text_only", rellm) == [Baseline("blsp_emo", blsp.resolve()),
                                                          Baseline("text_only", None)]
    assert parse_compare(" text_only ", rellm) == [Baseline("text_only", None)]
    assert parse_compare("", rellm) == []


def test_an_explicit_blsp_emo_folder_wins_and_works_for_any_layout(tmp_path):
    export = tmp_path / "models" / "my_export"
    other = _experiment(tmp_path / "elsewhere", "blsp_emo")
    export.mkdir(parents=True)
    assert parse_compare(f"text_only,blsp_emo={other}", export) == [Baseline("text_only", None),
                                                                    Baseline("blsp_emo", other)]
    assert parse_compare(f"blsp_emo={other}", _experiment(tmp_path, "rellm")) == [Baseline("blsp_emo", other)]


@pytest.mark.parametrize("spec, message", [
    ("blsp", "unknown baseline 'blsp'; choose from blsp_emo, text_only"),
    ("text_only,text_only", "names text_only twice"),
    ("text_only=/x", "text_only takes no path"),
    ("blsp_emo", ("holds no trained model (no final/model.json); train it (stage 4) or give another folder: "
                  "--compare blsp_emo=PATH")),
    ("blsp_emo=/no/such/folder", "no such folder"),
])
def test_bad_compare_lists_are_one_line_errors(tmp_path, spec, message):
    with pytest.raises(DemoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_compare(spec, _experiment(tmp_path, "rellm"))


def test_blsp_emo_of_a_folder_outside_the_recipe_layout_asks_for_its_path(tmp_path):
    export = tmp_path / "my_export"
    export.mkdir()
    with pytest.raises(DemoError, match="is not an exp/<model>/<split>/seed<k> folder, so its blsp_emo sibling is "
                                        "unknown; give the folder: --compare blsp_emo=PATH"):
        parse_compare("blsp_emo", export)


def test_the_main_model_is_not_its_own_baseline(tmp_path):
    rellm = _experiment(tmp_path, "rellm")
    with pytest.raises(DemoError, match="is the model the demo runs"):
        parse_compare(f"blsp_emo={rellm}", rellm)


def test_cli_errors_are_one_line_and_come_before_any_model_loads(tmp_path, capsys, monkeypatch):
    rellm = _experiment(tmp_path, "rellm")
    monkeypatch.setattr(cli, "load_systems", lambda *a: pytest.fail("no model may load before the checks pass"))
    for argv, message in [
        ([str(tmp_path / "nope")], f"ERROR: {tmp_path / 'nope'}: no such folder; give an experiment folder"),
        ([str(rellm), "--compare", "blsp_emo"], "ERROR: --compare blsp_emo: "),
        ([str(rellm), "--port", "70000"], "ERROR: --port 70000 is not a port number (1-65535)"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.cli(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith(message) and err.count("\n") == 1, err


def test_a_busy_port_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    rellm = _experiment(tmp_path, "rellm")
    monkeypatch.setattr(cli, "load_systems", lambda *a: pytest.fail("no model may load on a busy port"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit):
            cli.cli([str(rellm), "--port", str(port)])
    assert capsys.readouterr().err.startswith(f"ERROR: cannot listen on 127.0.0.1:{port} (")


def test_missing_gradio_is_one_line_saying_what_to_install(tmp_path, capsys, monkeypatch):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "gradio" else real(name))
    with pytest.raises(SystemExit):
        cli.cli([str(_experiment(tmp_path, "rellm"))])
    assert capsys.readouterr().err == ("ERROR: the demo needs Gradio, an optional extra: pip install 'rellm[demo]' "
                                       "(make install includes it)\n")


def test_help_explains_both_ways_to_name_blsp_emo():
    out = subprocess.run([sys.executable, "-m", "rellm.demo", "--help"], capture_output=True, text=True, check=True)
    text = " ".join(out.stdout.split())
    assert "usage: rellm-demo [-h] [--compare LIST] [--port PORT] [--host HOST]" in text
    assert "blsp_emo the BLSP-Emo experiment beside this one: exp/blsp_emo/<split>/seed<k> for " \
           "exp/rellm/<split>/seed<k>" in text
    assert "blsp_emo=PATH a BLSP-Emo model in any other folder" in text
    assert "ssh -L 7860:localhost:7860 USER@HOST" in text
