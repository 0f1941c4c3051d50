"""Under DDP every rank runs SpeechBrain's checkpoint save hooks: only rank 0 may write, or rank 1's files
(and their temporary files) race rank 0's in the same staging folder."""
import pytest
import torch

from rellm.training.checkpointing import AtomicCheckpointer, RNGState, TrainableParameters, WarmupDecayLR


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)

    def own_state_dict(self):  # the part of SpeechLLM's interface TrainableParameters saves
        return self.state_dict()


def _writers(tmp_path):
    optimizer = torch.optim.AdamW(_Tiny().parameters(), lr=1e-3)
    checkpointer = AtomicCheckpointer(tmp_path / "ckpt")
    checkpointer.add_recoverable("optimizer", optimizer)  # as speechbrain.Brain adds it
    return {"rng": RNGState().save, "lr_schedule": WarmupDecayLR(1e-3, 2, 10).save,
            "optimizer": lambda path: checkpointer.custom_save_hooks["optimizer"](optimizer, path)}


@pytest.mark.parametrize("rank, writes", [("0", True), ("1", False)])
def test_only_rank_0_writes_checkpoint_files(tmp_path, monkeypatch, rank, writes):
    # a DDP rank without starting a process group: SpeechBrain reads the rank from $RANK once a group exists,
    # and its main_process_only shares rank 0's result through ddp_broadcast
    from speechbrain.utils import distributed

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(distributed, "is_distributed_initialized", lambda: True)
    monkeypatch.setattr(distributed, "ddp_broadcast", lambda obj, src=0: obj)
    for name, save in _writers(tmp_path).items():
        save(tmp_path / f"{name}.ckpt")
        assert (tmp_path / f"{name}.ckpt").is_file() == writes, name
    model = _Tiny()
    model.config = {"speech_dim": 3}
    TrainableParameters(model).save(tmp_path / "model.ckpt")
    assert (tmp_path / "model.ckpt").is_file() == writes
