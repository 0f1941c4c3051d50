"""Stage 4 writes its training curves: TensorBoard events and a PNG per epoch, holding the logged figures."""
import re
import struct
import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_train_stage import _args

from rellm.training.curves import TrainingCurves, read_png_curves


def _train_log_losses(path):
    """``{(step, epoch): (train loss, valid loss)}`` from train_log.txt (SpeechBrain's FileTrainLogger lines)."""
    out = {}
    for line in path.read_text().splitlines():
        step = re.search(r"step: (\w+), epoch: (\d+)", line)
        losses = re.findall(r"(train|valid) loss: ([-\d.e]+)", line)
        if step and losses:
            out[(step.group(1), int(step.group(2)))] = {split: v for split, v in losses}
    return out


def _matches_printed(value, printed):
    """Whether ``value`` rounds to ``printed`` (FileTrainLogger writes 3 significant digits: 7.97, 6.25e-01)."""
    mantissa, _, exponent = printed.partition("e")
    decimals = len(mantissa.partition(".")[2])
    half_unit = 0.5 * 10 ** (-decimals) * 10 ** int(exponent or 0)
    return abs(value - float(printed)) <= half_unit * 1.001


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_toy_training_writes_event_files_and_a_png_of_the_logged_losses(toy_recipe, tmp_path, repo_root, tool_env):
    out = tmp_path / "blsp_emo" / "toy" / "seed1"
    # as run.sh runs stage 4: through the job runner, tqdm bars on (step 1: one epoch, step 2: two)
    args = _args(toy_recipe, "blsp_emo", out, noprogressbar="false")
    result = subprocess.run([sys.executable, str(repo_root / "tools" / "run.py"), str(out / "train.log"),
                             sys.executable, "-m", "rellm.bin.train", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, check=False, env=dict(tool_env, RELLM_PROGRESS_INTERVAL="0.3"))
    assert result.returncode == 0, result.stdout + result.stderr
    # the runner's progress line follows the steps and epochs (rellm.jobs.progress reads the markers below)
    shown = re.findall(r"step 2/2 \(step2_behaviour\), epoch (\d)/2, (?:training|validation): (\d+)/(\d+) it",
                       result.stdout)
    assert shown and all(int(n) <= int(total) for _, n, total in shown), result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"train {out}: 1/1 jobs done | elapsed ")

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    logged = _train_log_losses(out / "train_log.txt")
    assert set(logged) == {("step1_semantic", 1), ("step2_behaviour", 1), ("step2_behaviour", 2)}
    for (step, epoch), losses in logged.items():
        for split, value in losses.items():
            (event_value,) = [v for e, v in scalars[f"{step}/{split}/loss"] if e == epoch]
            assert _matches_printed(event_value, value), (step, epoch, split, event_value, value)
    assert [e for e, _ in scalars["step2_behaviour/valid/ser_acc"]] == [1, 2]

    png = out / "training_curves.png"
    width, height = _png_size(png)
    assert width > 500 and height > 400  # two rows of panels, one per step
    plotted = read_png_curves(png)
    assert set(plotted) == {"step1_semantic", "step2_behaviour"}

    def same(points, event_points):  # the events hold float32 copies of the plotted values
        return ([e for e, _ in points] == [e for e, _ in event_points]
                and all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for (_, a), (_, b) in zip(points, event_points)))

    for step, series in plotted.items():
        assert set(series["loss"]) == {"train", "valid"}
        for split, points in series["loss"].items():
            assert same(points, scalars[f"{step}/{split}/loss"]), (step, split)
            assert all(_matches_printed(v, logged[(step, e)][split]) for e, v in points)
            history = TrainingCurves(out).history()[step]
            assert [v for _, v in points] == [history[str(e)][split]["loss"] for e, _ in points]
    ser_acc = plotted["step2_behaviour"]["metrics"]["valid ser_acc"]
    assert same(ser_acc, scalars["step2_behaviour/valid/ser_acc"])
    history = TrainingCurves(out).history()["step2_behaviour"]
    assert [v for _, v in ser_acc] == [history[str(e)]["valid"]["ser_acc"] for e in (1, 2)]

    # what the job runner's progress line reads: one marker per epoch and phase
    log = (out / "log.txt").read_text()
    assert "progress: step 1/2 (step1_semantic), epoch 1/1, training" in log
    assert "progress: step 2/2 (step2_behaviour), epoch 2/2, validation" in log
