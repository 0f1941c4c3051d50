"""Checkpoints and trained models load without unpickling; checkpoint pieces restore exactly what they saved."""
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rellm.training.checkpointing import STAGING_PREFIX, AtomicCheckpointer, RNGState, WarmupDecayLR
from rellm.utils.safe_state import UnsafeCheckpointError, load_state, save_state

REPO = Path(__file__).resolve().parents[2]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint does: unpickling calls this
        return (Path.touch, (Path(self.marker),))


def test_state_round_trip_keeps_types_and_values(tmp_path):
    state = {"t": torch.arange(6, dtype=torch.float16).view(2, 3), 0: {"step": torch.tensor(3.0), "n": 2},
             "tup": (1, 2.5, None, "x"), "arr": np.arange(4, dtype=np.uint32), "flag": True, "list": [torch.ones(1)]}
    save_state(state, tmp_path / "s")
    back = load_state(tmp_path / "s")
    assert set(back) == {"t", 0, "tup", "arr", "flag", "list"}  # the int key stays an int
    assert torch.equal(back["t"], state["t"]) and back["t"].dtype == torch.float16
    assert back[0]["n"] == 2 and back[0]["step"].item() == 3.0
    assert back["tup"] == (1, 2.5, None, "x")
    assert back["arr"].dtype == np.uint32 and back["arr"].tolist() == [0, 1, 2, 3]
    assert back["flag"] is True and torch.equal(back["list"][0], torch.ones(1))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickled_checkpoint_is_refused_and_runs_nothing(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "rng.ckpt"
    if writer == "torch.save":
        torch.save({"torch": _RunsCode(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"torch": _RunsCode(marker)}))
    with pytest.raises(UnsafeCheckpointError, match="pickle .* delete the checkpoint folder"):
        RNGState().load(path, end_of_epoch=False)
    with pytest.raises(UnsafeCheckpointError):
        WarmupDecayLR(1e-3, 2, 10).load(path, end_of_epoch=False)
    assert not marker.exists()


def test_a_damaged_state_file_names_itself(tmp_path):
    save_state({"x": torch.ones(100)}, tmp_path / "s.ckpt")
    data = (tmp_path / "s.ckpt").read_bytes()
    (tmp_path / "s.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match=re.escape(str(tmp_path / "s.ckpt"))):
        load_state(tmp_path / "s.ckpt")


def test_rng_state_restores_torch_python_and_numpy_draws(tmp_path):
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    RNGState().save(tmp_path / "rng.ckpt")
    expected = (torch.rand(3), random.random(), np.random.rand(2), random.gauss(0, 1))
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    RNGState().load(tmp_path / "rng.ckpt", end_of_epoch=False)
    got = (torch.rand(3), random.random(), np.random.rand(2), random.gauss(0, 1))
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1] and got[3] == expected[3]
    assert np.array_equal(got[2], expected[2])


def test_warmup_decay_state_resumes_the_schedule(tmp_path):
    sched = WarmupDecayLR(1e-3, warmup_steps=4, total_steps=10)
    assert [round(sched.value(s), 6) for s in (0, 3, 4, 7, 10)] == [0.00025, 0.001, 0.001, 0.0005, 0.0]
    for _ in range(6):
        sched.step()
    sched.save(tmp_path / "lr.ckpt")
    assert (tmp_path / "lr.ckpt").read_text().lstrip().startswith("{")  # plain JSON
    resumed = WarmupDecayLR(1e-3, warmup_steps=4, total_steps=10)
    resumed.load(tmp_path / "lr.ckpt", end_of_epoch=False)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert resumed.step_count == 6 and resumed.apply(opt) == pytest.approx(1e-3 * 4 / 6)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 4 / 6)


class _Boom:
    """A recoverable whose saver fails half way (a crash or a full disk during a checkpoint write)."""

    fail = False

    def save(self, path):
        Path(path).write_text("partial")
        if self.fail:
            raise OSError(28, "No space left on device")

    def load(self, path, end_of_epoch):
        pass


def test_atomic_checkpointer_keeps_the_previous_checkpoint_and_saves_the_optimizer_safely(tmp_path):
    boom = _Boom()
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([param], lr=0.1)
    param.grad = torch.ones(3)
    opt.step()
    ckpt = AtomicCheckpointer(tmp_path, recoverables={"boom": boom},
                              custom_save_hooks={"boom": _Boom.save}, custom_load_hooks={"boom": _Boom.load})
    ckpt.add_recoverable("optimizer", opt)
    first = ckpt.save_checkpoint(meta={"n": 1})
    assert load_state(first.path / "optimizer.ckpt")["state"][0]["step"].item() == 1.0  # safetensors, int key
    boom.fail = True
    with pytest.raises(OSError):
        ckpt.save_and_keep_only(meta={"n": 2}, num_to_keep=1)
    assert [c.path for c in ckpt.list_checkpoints()] == [first.path]  # the old one is still there, complete
    assert list(tmp_path.glob(STAGING_PREFIX + "*"))  # the broken attempt stays hidden in staging ...
    AtomicCheckpointer(tmp_path)  # ... and the next run removes it
    assert not list(tmp_path.glob(STAGING_PREFIX + "*"))
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=0.5)
    again = AtomicCheckpointer(tmp_path, recoverables={"boom": boom},
                               custom_save_hooks={"boom": _Boom.save}, custom_load_hooks={"boom": _Boom.load})
    again.add_recoverable("optimizer", opt2)
    assert again.recover_if_possible().path == first.path
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.param_groups[0]["betas"] == (0.9, 0.999)


def test_nothing_in_the_package_unpickles():
    """Every torch.load passes weights_only=True, and nothing imports pickle or uses np.load(allow_pickle)."""
    offenders = []
    for path in sorted((REPO / "rellm").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path}: {m.group(0)}")
        if re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.MULTILINE):
            offenders.append(f"{path}: imports a pickler")
        if "allow_pickle=True" in text:
            offenders.append(f"{path}: allow_pickle=True")
    assert offenders == []
