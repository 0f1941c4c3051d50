"""Stage 2a: metrics, the training command, and that the small encoder learns the mini corpus."""
import json

import numpy as np
import pytest
import torch

from rellm.data.ser_metrics import unweighted_accuracy
from rellm.models.emotion_encoder import load_emotion_encoder
from rellm.testing.prerequisites import require_module
from rellm.training.emotion_encoder_training import validation_ccc, validation_ua
from rellm.training.losses import ccc


def test_concordance_correlation():
    x = np.array([0.1, 0.4, 0.5, 0.9])
    assert validation_ccc(x, x) == pytest.approx(1.0)
    assert validation_ccc(2 * x.mean() - x, x) == pytest.approx(-1.0)  # mirrored about the mean
    assert validation_ccc(np.full(4, 0.5), x) == 0.0
    assert validation_ccc(np.full(4, 0.5), np.full(4, 0.5)) == 0.0  # nothing to agree on
    assert validation_ccc(x[:1], x[:1]) == 0.0
    # a shift lowers CCC (unlike Pearson's r): 2*cov / (var + var + shift^2)
    assert validation_ccc(x + 0.2, x) == pytest.approx(2 * x.var() / (2 * x.var() + 0.04))


def test_one_ccc_for_the_loss_and_the_validation_metric():
    rng = np.random.default_rng(0)
    pred, gold = rng.random((50, 3)).astype(np.float32), rng.random((50, 3)).astype(np.float32)
    # the formula stage 2a used before it called rellm.training.losses.ccc: same float64 numbers, bit for bit
    for d in range(3):
        p, g = pred[:, d].astype(np.float64), gold[:, d].astype(np.float64)
        cov = np.mean((p - p.mean()) * (g - g.mean()))
        assert validation_ccc(pred[:, d], gold[:, d]) == float(2 * cov / (p.var() + g.var() + (p.mean() - g.mean()) ** 2))
    # the loss's torch CCC (per column, eps 1e-8) agrees with the metric
    loss_ccc = ccc(torch.from_numpy(pred).double(), torch.from_numpy(gold).double()).tolist()
    assert loss_ccc == pytest.approx([validation_ccc(pred[:, d], gold[:, d]) for d in range(3)], rel=1e-6)


def test_unweighted_accuracy_is_mean_class_recall():
    gold = [0, 0, 0, 0, 1, 2, -100]  # -100: unlabelled, left out
    pred = [0, 0, 0, 0, 0, 2, 3]
    assert validation_ua(pred, gold) == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert validation_ua(pred, gold) == unweighted_accuracy(["neutral"] * 4 + ["happy", "angry"],
                                                            ["neutral"] * 5 + ["angry"])
    assert validation_ua([7, 1], [1, 1]) == 0.5  # an id past the five emotions is a wrong answer
    assert validation_ua([0], [-100]) == 0.0


def mini_corpus(folder, **kw):
    require_module("espeakng_loader")
    from rellm.data.corpora.mini import prepare_mini

    save = folder / "data" / "official"
    prepare_mini(folder / "audio", save, **kw)
    return save


def train_args(repo_root, data, out, *extra):
    return [str(repo_root / "egs" / "mini" / "conf" / "emotion_encoder.yaml"),
            "--train_manifest", str(data / "train.json"), "--valid_manifest", str(data / "valid.json"),
            "--output_folder", str(out), *extra]


def test_command_saves_a_frozen_encoder_in_checkpoint_format(tmp_path, repo_root):
    from rellm.bin.train_emotion_encoder import main

    data = mini_corpus(tmp_path, num_sentences=6, valid_sentences=1, test_sentences=1)
    out = tmp_path / "exp" / "emotion_encoder"
    args = train_args(repo_root, data, out, "--epochs", "2", "--hidden_size", "32", "--conv_dim", "16")
    summary = main(args)
    assert summary["train_utterances"] == 40 and summary["valid_utterances"] == 10
    assert {"config.json", "model.safetensors", "train_log.txt", "metrics.json", "hyperparams.yaml"} <= {
        p.name for p in out.iterdir()}
    assert len((out / "train_log.txt").read_text().strip().splitlines()) == 2
    metrics = json.loads((out / "metrics.json").read_text())["valid"]
    assert {"ccc_arousal", "ccc_valence", "ccc_dominance", "ccc_mean", "ua"} <= set(metrics)
    model = load_emotion_encoder(out)
    assert model.num_categories == 5 and model.config.hidden_size == 32
    assert main(args) is None  # done with these options: skipped


@pytest.mark.parametrize("train_feature_encoder", [True, False])
def test_feature_encoder_trains_only_when_asked(tmp_path, repo_root, train_feature_encoder):
    """The conv front-end is updated with --train_feature_encoder true and left at its initialisation otherwise."""
    import torch

    from rellm.bin.train_emotion_encoder import main
    from rellm.models.emotion_encoder import EmotionEncoder

    data = mini_corpus(tmp_path, num_sentences=4, valid_sentences=1, test_sentences=1)
    out = tmp_path / "exp"
    main(train_args(repo_root, data, out, "--epochs", "1", "--hidden_size", "32", "--conv_dim", "16",
                    "--train_feature_encoder", str(train_feature_encoder).lower()))
    trained = load_emotion_encoder(out)
    torch.manual_seed(1)  # the trainer's seed: the same initialisation
    initial = EmotionEncoder(trained.config)
    front = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    moved = not torch.equal(trained.state_dict()[front], initial.state_dict()[front])
    assert moved == train_feature_encoder
    head = "classifier.out_proj.weight"
    assert not torch.equal(trained.state_dict()[head], initial.state_dict()[head])  # the rest always trains


@pytest.mark.slow
def test_small_encoder_beats_chance_on_unseen_mini_sentences(tmp_path, repo_root):
    """A frozen front-end (its output cached: minutes, not the recipe's quarter hour) on 48 mini sentences: valid
    UA above chance (0.2) and positive CCC. The recipe's trained front-end is checked by the fast mini run
    (test/recipes/test_mini_fast.py)."""
    from rellm.bin.train_emotion_encoder import main

    data = mini_corpus(tmp_path, num_sentences=48, valid_sentences=6, test_sentences=6)
    summary = main(train_args(repo_root, data, tmp_path / "ee", "--train_feature_encoder", "false", "--conv_dim", "32",
                              "--epochs", "30", "--lr", "0.005", "--max_seconds", "6.0"))
    valid = summary["valid"]
    assert valid["ua"] > 0.3, valid
    assert valid["ccc_mean"] > 0.2, valid
