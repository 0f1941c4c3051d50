"""The dimensional emotion encoder: audeering checkpoint compatibility, A/V/D order, pooling, format."""
import json

import pytest
import torch

from rellm.models.emotion_encoder import (
    AVD,
    EmotionEncoder,
    load_emotion_encoder,
    normalize_waveform,
    save_emotion_encoder,
    small_emotion_config,
)

LAYERS = 2


def audeering_like_config(**kw):
    """A small config written the way audeering's config.json is (no category head, A/D/V labels)."""
    return small_emotion_config(hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
                                intermediate_size=48, conv_dim=16, num_categories=0, **kw)


def audeering_key_names(num_layers):
    """The parameter names of audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim's checkpoint,
    written out independently of the model code (layer count aside)."""
    names = ["wav2vec2.masked_spec_embed"]
    for i in range(7):
        names += [f"wav2vec2.feature_extractor.conv_layers.{i}.conv.weight",
                  f"wav2vec2.feature_extractor.conv_layers.{i}.conv.bias",
                  f"wav2vec2.feature_extractor.conv_layers.{i}.layer_norm.weight",
                  f"wav2vec2.feature_extractor.conv_layers.{i}.layer_norm.bias"]
    names += ["wav2vec2.feature_projection.layer_norm.weight", "wav2vec2.feature_projection.layer_norm.bias",
              "wav2vec2.feature_projection.projection.weight", "wav2vec2.feature_projection.projection.bias",
              "wav2vec2.encoder.pos_conv_embed.conv.weight_g", "wav2vec2.encoder.pos_conv_embed.conv.weight_v",
              "wav2vec2.encoder.pos_conv_embed.conv.bias",
              "wav2vec2.encoder.layer_norm.weight", "wav2vec2.encoder.layer_norm.bias"]
    for i in range(num_layers):
        p = f"wav2vec2.encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            names += [p + f"attention.{proj}.weight", p + f"attention.{proj}.bias"]
        names += [p + "layer_norm.weight", p + "layer_norm.bias",
                  p + "feed_forward.intermediate_dense.weight", p + "feed_forward.intermediate_dense.bias",
                  p + "feed_forward.output_dense.weight", p + "feed_forward.output_dense.bias",
                  p + "final_layer_norm.weight", p + "final_layer_norm.bias"]
    names += ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
              "classifier.out_proj.bias"]
    return names


def to_audeering_names(state_dict):
    """Our state dict renamed to the checkpoint's (old weight-norm names), plus masked_spec_embed."""
    out = {}
    for k, v in state_dict.items():
        k = k.replace("conv.parametrizations.weight.original0", "conv.weight_g")
        k = k.replace("conv.parametrizations.weight.original1", "conv.weight_v")
        out[k] = v.clone()
    out["wav2vec2.masked_spec_embed"] = torch.rand(state_dict["wav2vec2.feature_projection.projection.weight"].shape[0])
    return out


@pytest.fixture
def audeering_folder(tmp_path):
    """A folder laid out like the downloaded model: config.json + pytorch_model.bin with its key names."""
    torch.manual_seed(0)
    model = EmotionEncoder(audeering_like_config()).eval()
    state = to_audeering_names(model.state_dict())
    assert sorted(state) == sorted(audeering_key_names(LAYERS))
    config = model.config.to_dict()
    config.pop("num_categories")
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.save(state, tmp_path / "pytorch_model.bin")
    return tmp_path, model


def test_checkpoint_with_audeering_key_names_loads_strictly(audeering_folder):
    folder, reference = audeering_folder
    loaded = load_emotion_encoder(folder)
    assert not hasattr(loaded, "category_head")
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        a, b = reference(wave), loaded(wave)
    assert torch.allclose(a["embedding"], b["embedding"], atol=1e-6)
    assert torch.allclose(a["avd"], b["avd"], atol=1e-6)
    assert b["embedding"].shape == (2, 32) and "category_logits" not in b


def test_missing_or_foreign_keys_are_named(audeering_folder):
    folder, _ = audeering_folder
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["classifier.dense.bias"]
    state["classifier.extra.weight"] = torch.zeros(1)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"1 missing .*classifier.dense.bias.*1 unexpected .*classifier.extra"):
        load_emotion_encoder(folder)


def test_head_order_arousal_dominance_valence_is_mapped_to_avd():
    model = EmotionEncoder(audeering_like_config()).eval()
    assert [model.config.id2label[i] for i in range(3)] == ["arousal", "dominance", "valence"]
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        model.classifier.out_proj.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))  # arousal, dominance, valence
        out = model(torch.randn(1, 8000))
    assert AVD == ("arousal", "valence", "dominance")
    assert out["head_logits"][0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert out["avd"][0].tolist() == pytest.approx([0.1, 0.3, 0.2])


def test_generic_labels_fall_back_to_the_audeering_order():
    config = audeering_like_config(id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
                                   label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2})
    model = EmotionEncoder(config)
    assert model.avd_from_logits(torch.tensor([[1.0, 2.0, 3.0]])).tolist() == [[1.0, 3.0, 2.0]]


def test_padded_batch_pools_only_real_frames():
    torch.manual_seed(0)
    model = EmotionEncoder(audeering_like_config()).eval()
    long, short = torch.randn(24000), torch.randn(12000)
    batch = torch.zeros(2, 24000)
    batch[0], batch[1, :12000] = long, short
    with torch.no_grad():
        together = model(batch, torch.tensor([24000, 12000]))["embedding"]
        alone = model(short[None])["embedding"]
    assert torch.allclose(together[1], alone[0], atol=1e-5)


def test_input_is_normalised_per_utterance():
    wave = torch.zeros(2, 10)
    wave[0] = torch.arange(10.0)
    wave[1, :4] = torch.tensor([1.0, 3.0, 1.0, 3.0])
    out = normalize_waveform(wave, torch.tensor([10, 4]))
    assert out[0].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out[0].var(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert out[1, :4].tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0], abs=1e-4)
    assert out[1, 4:].abs().sum().item() == 0.0
    torch.manual_seed(0)
    model = EmotionEncoder(audeering_like_config()).eval()
    x = torch.randn(1, 16000)
    with torch.no_grad():  # loudness does not reach the model (as with audeering's processor)
        assert torch.allclose(model(x)["embedding"], model(5 * x + 0.1)["embedding"], atol=1e-4)


def test_an_encoder_saved_without_waveform_normalisation_hears_loudness(tmp_path):
    """``normalize_waveform: false`` (the mini encoder) is kept in config.json and used by every caller."""
    from rellm.features.emotion import EmotionEmbedder

    torch.manual_seed(0)
    save_emotion_encoder(EmotionEncoder(small_emotion_config(normalize_waveform=False)).eval(), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["normalize_waveform"] is False
    loaded = load_emotion_encoder(tmp_path)
    x = torch.randn(1, 16000)
    with torch.no_grad():
        quiet, loud = loaded(0.1 * x)["embedding"], loaded(0.5 * x)["embedding"]
        assert (quiet - loud).abs().max() > 1e-2  # loudness reaches the model
        assert torch.allclose(loaded(0.1 * x, normalize=True)["embedding"], loaded(0.5 * x, normalize=True)["embedding"],
                              atol=1e-4)
    embedder = EmotionEmbedder(loaded)  # stage 2 and the responder go through this
    emb_quiet, _ = embedder([0.1 * x[0].numpy()])
    assert torch.allclose(torch.from_numpy(emb_quiet), quiet, atol=1e-5)


def test_self_trained_format_round_trips_with_category_head(tmp_path):
    torch.manual_seed(0)
    model = EmotionEncoder(small_emotion_config()).eval()
    save_emotion_encoder(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_emotion_encoder(tmp_path)
    wave = torch.randn(1, 16000)
    with torch.no_grad():
        a, b = model(wave), loaded(wave)
    assert b["category_logits"].shape == (1, 5)
    assert torch.allclose(a["category_logits"], b["category_logits"], atol=1e-6)
    assert torch.allclose(a["avd"], b["avd"], atol=1e-6)


def test_missing_folder_says_where_to_get_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="audeering"):
        load_emotion_encoder(tmp_path / "nothing")


def test_forward_matches_the_hf_wav2vec2_model():
    """Our split forward (conv features, then the rest) equals HF's Wav2Vec2Model on one utterance."""
    torch.manual_seed(0)
    model = EmotionEncoder(audeering_like_config()).eval()
    wave = torch.randn(1, 20000)
    with torch.no_grad():
        ours = model(wave)["embedding"]
        hf = model.wav2vec2(normalize_waveform(wave)).last_hidden_state.mean(1)
    assert torch.allclose(ours, hf, atol=1e-5)
