"""The bi-encoder trains (loss falls), caches once, reloads for scoring, and matches the full forward."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scoring_fixtures import tiny_encoder

from rellm.scoring.epitome import training_loop
from rellm.scoring.epitome.batching import EncodedSplit, encode_split, predict
from rellm.scoring.epitome.data import load_pairs, stratified_split, tokenize_texts
from rellm.scoring.epitome.encoders import EncoderStates
from rellm.scoring.epitome.model import EmpathyBiEncoder, bottom_states, epitome_loss, run_top_layers
from rellm.scoring.epitome.options import OPTION_DEFAULTS, response_max_len, train_options
from rellm.scoring.epitome.process_pool import parallel_jobs, plan_groups, training_cost
from rellm.scoring.epitome.scorer import EpitomeScorer
from rellm.scoring.epitome.training import train_all
from rellm.scoring.epitome.training_loop import average_states, selection_score, train_classifier
from rellm.utils.stage import OptionsChangedError


def test_model_shapes_and_frozen_seeker(tiny_text_encoder):
    base, tok = tiny_text_encoder
    model = EmpathyBiEncoder(base, tiny_encoder(seed=1)[0])
    seeker = tok(["my dog died", "i feel alone today"], padding=True, return_tensors="pt")
    response = tok(["so sorry", "are you okay ?"], padding=True, return_tensors="pt")
    states = model.encode_seeker(seeker["input_ids"], seeker["attention_mask"])
    levels, rationale = model(states, seeker["attention_mask"], response["input_ids"], response["attention_mask"])
    assert levels.shape == (2, 3) and rationale.shape == (2, response["input_ids"].shape[1], 2)
    assert not any(p.requires_grad for p in model.seeker_encoder.parameters())
    assert all(not k.startswith("seeker_encoder.") for k in model.trainable_state_dict())


def test_seeker_padding_does_not_change_the_prediction(tiny_text_encoder):
    """Pad keys are masked, so a pair scores the same alone or beside a longer post."""
    base, tok = tiny_text_encoder
    model = EmpathyBiEncoder(base, tiny_encoder(seed=1)[0]).eval()
    alone = tok(["my dog died"], return_tensors="pt")
    padded = tok(["my dog died", "i have been feeling sad alone today again"], padding=True, return_tensors="pt")
    response = tok(["so sorry", "so sorry"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a, _ = model(model.encode_seeker(alone["input_ids"], alone["attention_mask"]), alone["attention_mask"],
                     response["input_ids"][:1], response["attention_mask"][:1])
        b, _ = model(model.encode_seeker(padded["input_ids"], padded["attention_mask"]), padded["attention_mask"],
                     response["input_ids"], response["attention_mask"])
    torch.testing.assert_close(a[0], b[0])


@pytest.mark.parametrize("start", [0, 1, 2])
def test_cached_bottom_plus_top_layers_equals_the_full_encoder(tiny_text_encoder, start):
    base, tok = tiny_text_encoder
    enc = tok(["hope it gets better", "so sorry"], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = base(**enc).last_hidden_state
        split = run_top_layers(base, bottom_states(base, enc["input_ids"], enc["attention_mask"], start),
                               enc["attention_mask"], start)
    mask = enc["attention_mask"].bool()
    torch.testing.assert_close(split[mask], full[mask])


def test_freezing_keeps_only_the_top_blocks_trainable(tiny_text_encoder):
    base, _ = tiny_text_encoder
    model = EmpathyBiEncoder(base, tiny_encoder(seed=1)[0])
    assert model.set_responder_trainable_layers(1) == 1
    trainable = {n for n, p in model.responder_encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("encoder.layer.1.") for n in trainable)
    assert model.set_responder_trainable_layers(None) == 0
    assert all(p.requires_grad for p in model.responder_encoder.parameters())
    with pytest.raises(ValueError, match="0..2"):
        model.set_responder_trainable_layers(5)


def test_loss_weights_and_mask():
    level_logits = torch.tensor([[2.0, 0.0, 0.0]])
    rationale_logits = torch.tensor([[[0.0, 3.0], [5.0, -5.0]]])
    levels, labels = torch.tensor([0]), torch.tensor([[1, 1]])
    total, level_loss, rat_loss = epitome_loss(level_logits, rationale_logits, levels, labels,
                                               torch.tensor([[1, 0]]), 1.0, 0.5)
    # the second token is padding: only the first (correct, margin 3) enters the rationale loss
    assert rat_loss.item() == pytest.approx(np.log1p(np.exp(-3.0)), rel=1e-5)
    assert total.item() == pytest.approx(level_loss.item() + 0.5 * rat_loss.item(), rel=1e-6)


def test_selection_score():
    metrics = {"accuracy": 0.9, "macro_f1": 0.6, "iou_f1": 0.5}
    assert selection_score(metrics, "macro_f1") == 0.6
    assert selection_score(metrics, "accuracy+macro_f1") == pytest.approx(1.5)
    with pytest.raises(ValueError, match="select_on"):
        selection_score(metrics, "loss")


def _ex_classifier_setup(tiny_text_encoder, epitome_csv_dir):
    """A fresh fully trainable bi-encoder, the EX train and test parts, and the seeker states."""
    base, tok = tiny_text_encoder
    model = EmpathyBiEncoder(base, tiny_encoder(seed=1)[0], dropout=0.0)
    model.set_responder_trainable_layers(None)
    pairs = load_pairs("EX", epitome_csv_dir)
    split = stratified_split(pairs, seed=12)
    train, _ = encode_split(pairs.subset(split["train"]), tok, 24)
    test, _ = encode_split(pairs.subset(split["test"]), tok, 24)
    seekers = EncoderStates()
    seekers.add(model.seeker_encoder, tok, pairs.seeker, 24, progress=False)
    return model, tok, train, test, seekers


def test_training_loss_falls_and_dev_is_learned(tiny_text_encoder, epitome_csv_dir, tiny_epitome_conf):
    model, tok, train, test, seekers = _ex_classifier_setup(tiny_text_encoder, epitome_csv_dir)
    history, best = train_classifier(model, train, test, seekers, tok, {**tiny_epitome_conf, "epochs": 8},
                                       progress=False)
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.5 * losses[0]
    assert best["accuracy"] >= 0.8  # well above the majority level (4 of 7 responses); the response decides it


def test_train_all_caches_and_is_idempotent(tiny_text_encoder, epitome_csv_dir, tiny_epitome_conf, tmp_path):
    encoders = tiny_text_encoder
    # train from the cached frozen bottom (block 0): the scorer below runs the whole encoder instead
    tiny_epitome_conf["responder_trainable_layers"] = 1
    metrics = train_all(tiny_epitome_conf, epitome_csv_dir, tmp_path, progress=False, encoders=encoders)
    root = tmp_path / "epitome" / "tiny-test-encoder"
    assert set(metrics) == {"ER", "IP", "EX"}
    for mech in ("ER", "IP", "EX"):
        for name in ("model.safetensors", "config.json", "split.json", "metrics.json", "train_log.txt", ".done.train"):
            assert (root / mech / name).is_file(), (mech, name)
        split = json.loads((root / mech / "split.json").read_text())
        assert split["seed"] == 12 and len(split["train"]) + len(split["dev"]) + len(split["test"]) == 120
        assert 0.0 <= metrics[mech]["iou_f1"] <= 1.0
    assert json.loads((root / "training_time.json").read_text())["cpu_seconds"] > 0
    stamp = (root / "ER" / "model.safetensors").stat().st_mtime_ns
    # same options: reused, nothing retrained
    assert train_all(tiny_epitome_conf, epitome_csv_dir, tmp_path, progress=False, encoders=encoders) == metrics
    assert (root / "ER" / "model.safetensors").stat().st_mtime_ns == stamp
    # other options: a clear error unless overwrite
    with pytest.raises(OptionsChangedError, match="lr"):
        train_all({**tiny_epitome_conf, "lr": 1e-3}, epitome_csv_dir, tmp_path, progress=False, encoders=encoders)

    # a per-mechanism value retrains only that mechanism (with overwrite, since IP's options change);
    # IP also keeps fewer response tokens than the seeker post's max_len
    ip_stamp = (root / "IP" / "model.safetensors").stat().st_mtime_ns
    per_mech = {**tiny_epitome_conf, "lr": {"ER": tiny_epitome_conf["lr"], "IP": 1e-3, "EX": tiny_epitome_conf["lr"]},
                "response_max_len": {"ER": None, "IP": 8, "EX": None}}
    metrics = train_all(per_mech, epitome_csv_dir, tmp_path, overwrite=True, progress=False, encoders=encoders)
    assert (root / "ER" / "model.safetensors").stat().st_mtime_ns == stamp
    assert (root / "IP" / "model.safetensors").stat().st_mtime_ns != ip_stamp
    assert json.loads((root / "IP" / "metrics.json").read_text())["options"]["lr"] == 1e-3
    assert train_options(per_mech, "EX")["lr"] == tiny_epitome_conf["lr"]
    with pytest.raises(ValueError, match="not for EX"):
        train_options({**tiny_epitome_conf, "lr": {"ER": 1e-3}}, "EX")

    # the scorer reloads the cached models and reproduces the test predictions (full forward = cached bottom + top)
    scorer = EpitomeScorer(root, encoders=encoders)
    pairs = load_pairs("ER", epitome_csv_dir)
    test_ids = json.loads((root / "ER" / "split.json").read_text())["test"]
    test = pairs.subset(test_ids)
    levels = scorer.score(test.seeker, test.response, progress=False)
    accuracy = float(np.mean(levels["ER"]["level"] == test.level))
    assert accuracy == pytest.approx(metrics["ER"]["accuracy"])
    # IP's responses are cut to its own 8 tokens, the way it was trained
    assert scorer.response_max_len == {"ER": 24, "IP": 8, "EX": 24}
    probs = {}
    for n in (8, 24):
        data = EncodedSplit(list(test.ids), list(test.seeker), list(test.response),
                              tokenize_texts(scorer.tokenizer, test.response, n), None, test.level)
        probs[n] = predict(scorer.models["IP"], data, scorer.seeker_states, scorer.tokenizer.pad_token_id)[1]
    np.testing.assert_allclose(levels["IP"]["probs"], probs[8], rtol=1e-5, atol=1e-6)
    assert not np.allclose(probs[8], probs[24], rtol=1e-5, atol=1e-6)
    assert levels["EX"]["probs"].shape == (len(test), 3)
    np.testing.assert_allclose(levels["IP"]["probs"].sum(axis=1), 1.0, rtol=1e-5)


def test_scorer_explains_a_missing_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="rellm.bin.epitome train"):
        EpitomeScorer(tmp_path / "nothing")


def test_average_states_is_the_elementwise_mean():
    states = [{"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([3])},
              {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([3])}]
    out = average_states(states)
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and torch.equal(out["ids"], torch.tensor([3]))
    assert out["ids"].dtype == torch.long


def test_average_best_keeps_the_mean_of_the_best_dev_evaluations(tiny_text_encoder, epitome_csv_dir,
                                                                 tiny_epitome_conf, monkeypatch):
    model, tok, train, dev, seekers = _ex_classifier_setup(tiny_text_encoder, epitome_csv_dir)
    snapshots = []  # the weights at every dev evaluation, in order
    evaluate = training_loop.evaluate

    def spy(m, data, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in m.trainable_state_dict().items()})
        return evaluate(m, data, *args, **kwargs)

    monkeypatch.setattr(training_loop, "evaluate", spy)
    hp = {**tiny_epitome_conf, "epochs": 6, "select_on": "accuracy+macro_f1", "average_best": 3}
    history, kept = train_classifier(model, train, dev, seekers, tok, hp, progress=False)
    assert len(history) == 6 and len(snapshots) == 7  # 6 evaluations, then the averaged model's
    scores = [selection_score(h["dev"], "accuracy+macro_f1") for h in history]
    best3 = sorted(range(6), key=lambda i: (-scores[i], i))[:3]
    assert kept["averaged_evaluations"] == sorted(history[i]["step"] for i in best3)
    expected = average_states([snapshots[i] for i in best3])
    for name, value in model.trainable_state_dict().items():
        torch.testing.assert_close(value, expected[name])
    assert kept["accuracy"] == pytest.approx(training_loop.evaluate(model, dev, seekers, tok)["accuracy"])


def test_a_config_without_the_later_options_trains_as_before(tiny_epitome_conf):
    old = {k: v for k, v in tiny_epitome_conf.items() if k not in OPTION_DEFAULTS}
    options = train_options(old, "IP")
    assert options["average_best"] == 1 and response_max_len(options) == old["max_len"]
    with pytest.raises(KeyError, match="lacks 'lr'"):
        train_options({k: v for k, v in old.items() if k != "lr"})


def test_plan_groups_balances_the_costs():
    costs = {"ER": 512, "IP": 2048, "EX": 1024}  # the shipped options' training_cost
    assert plan_groups(costs, 2) == [["IP"], ["EX", "ER"]]
    assert plan_groups(costs, 3) == [["IP"], ["EX"], ["ER"]]
    assert plan_groups(costs, 1) == [["IP", "EX", "ER"]]
    assert parallel_jobs(8, 3, 1) == 3 and parallel_jobs(2, 3, 1) == 2 and parallel_jobs(None, 1, 1) == 1
    assert training_cost({"epochs": 4, "max_len": 64, "response_max_len": 128,
                            "responder_trainable_layers": 4}) == 2048


def test_parallel_processes_train_the_same_models(tiny_text_encoder, epitome_csv_dir, tiny_epitome_conf, tmp_path):
    conf = {**tiny_epitome_conf, "epochs": 2, "responder_trainable_layers": 1,
            "lr": {"ER": 3e-3, "IP": 1e-3, "EX": 3e-3}, "seed": {"ER": 3, "IP": 4, "EX": 5}}
    one = train_all(conf, epitome_csv_dir, tmp_path / "one", progress=False, encoders=tiny_text_encoder)
    two = train_all({**conf, "num_jobs": 2}, epitome_csv_dir, tmp_path / "two", progress=False,
                      encoders=tiny_text_encoder)
    assert one == two
    roots = [tmp_path / name / "epitome" / "tiny-test-encoder" for name in ("one", "two")]
    timing = json.loads((roots[1] / "training_time.json").read_text())
    assert len(timing["groups"]) == 2 and sorted(m for group in timing["groups"] for m in group) == ["ER", "EX", "IP"]
    assert timing["cpu_seconds"] > 0
    for mech in ("ER", "IP", "EX"):
        states = [load_file(str(root / mech / "model.safetensors")) for root in roots]
        assert states[0].keys() == states[1].keys()
        for name in states[0]:
            assert torch.equal(states[0][name], states[1][name]), (mech, name)
        assert (roots[1] / mech / ".done.train").is_file()
        if mech == "ER":
            states_er = states
    # another seed draws other heads: the models do depend on the seed
    train_all({**conf, "seed": 9, "mechanisms": ["ER"]}, epitome_csv_dir, tmp_path / "three", progress=False,
                encoders=tiny_text_encoder)
    other = load_file(str(tmp_path / "three" / "epitome" / "tiny-test-encoder" / "ER" / "model.safetensors"))
    assert not torch.equal(other["level_head.4.weight"], states_er[0]["level_head.4.weight"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown where there is no GPU")
def test_a_gpu_asked_for_without_one_fails_before_training(tiny_text_encoder, epitome_csv_dir, tiny_epitome_conf,
                                                           tmp_path):
    with pytest.raises(RuntimeError, match="no CUDA GPU; use --device=cpu"):
        train_all({**tiny_epitome_conf, "device": "cuda"}, epitome_csv_dir, tmp_path, progress=False,
                    encoders=tiny_text_encoder)
    assert not (tmp_path / "epitome").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_classifiers_trained_on_a_gpu_score_on_the_cpu(tiny_text_encoder, epitome_csv_dir, tiny_epitome_conf,
                                                       tmp_path):
    conf = {**tiny_epitome_conf, "device": "cuda", "responder_trainable_layers": 1}
    try:
        metrics = train_all(conf, epitome_csv_dir, tmp_path, progress=False, encoders=tiny_text_encoder)
    finally:
        tiny_text_encoder[0].to("cpu")  # training moved the shared base encoder (the seeker) to the GPU
    root = tmp_path / "epitome" / "tiny-test-encoder"
    saved = load_file(str(root / "ER" / "model.safetensors"))  # as saved
    assert {t.device.type for t in saved.values()} == {"cpu"}
    scorer = EpitomeScorer(root, encoders=tiny_text_encoder)  # the scorer runs on the CPU
    test = load_pairs("ER", epitome_csv_dir).subset(json.loads((root / "ER" / "split.json").read_text())["test"])
    levels = scorer.score(test.seeker, test.response, progress=False)
    # the CPU forward of the GPU-trained weights gives the GPU's test accuracy (up to float rounding)
    assert float(np.mean(levels["ER"]["level"] == test.level)) == pytest.approx(metrics["ER"]["accuracy"], abs=0.05)
