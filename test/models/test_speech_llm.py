import torch

from rellm.models.heads import masked_mean
from rellm.models.packing import segment_batch
from rellm.models.speech_llm import SpeechLLM
from rellm.testing.reference_decoding import reference_generate
from rellm.training.losses import avd_loss, ccc

SYSTEM = "You are a helpful assistant."


def _segments(model, responses, early_stop=False, instructions=None):
    layout = model.layout
    prompts = [layout.prompt_ids(SYSTEM, ins) for ins in (instructions or ["Say: "] * len(responses))]
    tails = [layout.response_ids(r, early_stop)[0] for r in responses]
    p_ids, p_lens = segment_batch(prompts, "cpu")
    t_ids, t_lens = segment_batch(tails, "cpu")
    return p_ids, p_lens, t_ids, t_lens, torch.full((len(responses),), len(layout.header_ids))


def test_pack_is_gapless_with_contiguous_positions_and_targets(make_model):
    model = make_model(emotion_dim=0)
    E, M = model.encode_speech(torch.randn(2, 80, 24), torch.tensor([80, 30]))  # 10 and 4 speech tokens
    p_ids, p_lens, t_ids, t_lens, label_start = _segments(model, ["That sounds wonderful.", "Sorry."])
    packed = model.pack(p_ids, p_lens, (E, M), t_ids, t_lens, label_start)
    totals = p_lens + M.sum(1) + t_lens
    assert packed.attention_mask.sum(1).tolist() == totals.tolist()
    for b in range(2):  # right padding: one run of real positions from 0, positions 0..L-1
        n = int(totals[b])
        assert packed.attention_mask[b, :n].all() and not packed.attention_mask[b, n:].any()
        assert packed.position_ids[b, :n].tolist() == list(range(n))
        speech_pos = packed.lora_mask[b].nonzero().flatten().tolist()
        assert speech_pos == list(range(int(p_lens[b]), int(p_lens[b]) + int(M[b].sum())))
        assert torch.equal(packed.inputs_embeds[b, speech_pos], E[b, : int(M[b].sum())])
    # Targets: the response tokens (and the end token), predicted from the position before each.
    b_idx, pos = packed.predict_index
    expected = torch.cat([t_ids[b, int(label_start[b]): int(t_lens[b])] for b in range(2)])
    assert torch.equal(packed.target_ids, expected)
    assert model.tokenizer.decode(packed.target_ids[b_idx == 1]) == "Sorry.<|im_end|>"
    first = int(p_lens[0] + M[0].sum() + label_start[0]) - 1
    assert int(pos[0]) == first  # the last header token predicts the first response token


def test_generation_inputs_are_left_padded(make_model):
    model = make_model(emotion_dim=0)
    E, M = model.encode_speech(torch.randn(2, 80, 24), torch.tensor([80, 30]))
    inp = model.build_generation_inputs(SYSTEM, ["", "A longer instruction here: "], speech=(E, M))
    attn = inp["attention_mask"]
    assert attn[:, -1].all()  # every row ends at the assistant header
    header = torch.tensor(model.layout.header_ids)
    emb = model.base_llm.get_input_embeddings()(header)
    for b in range(2):
        n = int(attn[b].sum())
        assert inp["position_ids"][b, -n:].tolist() == list(range(n))
        assert torch.equal(inp["inputs_embeds"][b, -len(header):], emb)
    assert inp["lora_mask"].sum(1).tolist() == M.sum(1).tolist()


def test_forward_returns_target_logits_and_head_outputs(make_model):
    model = make_model(emotion_dim=8)
    p_ids, p_lens, t_ids, t_lens, label_start = _segments(model, ["Fine.", "That sounds wonderful."])
    out = model(torch.randn(2, 60, 24).half(), torch.tensor([60, 40]), torch.randn(2, 8), p_ids, p_lens, t_ids,
                t_lens, label_start)
    n_targets = int((t_lens - label_start).sum())
    assert out["logits"].shape == (n_targets, len(model.tokenizer))
    assert out["emotion_logits"].shape == (2, 5) and out["avd"].shape == (2, 3)
    assert out["speech_tokens"].tolist() == [8, 5]


def test_masked_mean_ignores_padding_and_heads_have_no_bias(make_model):
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0
    model = make_model()
    assert model.emotion_head.proj.bias is None and model.avd_head.proj.bias is None


def test_avd_losses():
    target = torch.tensor([[0.2, 0.4, 0.6], [0.8, 0.6, 0.4]])
    assert avd_loss(target, target).item() == 0.0
    assert abs(avd_loss(target + 0.1, target).item() - 0.01) < 1e-6
    assert torch.allclose(ccc(target, target), torch.ones(3))
    assert abs(avd_loss(target, target, "ccc").item()) < 1e-6


def test_own_state_dict_holds_no_frozen_weights(make_model):
    model = make_model()
    own = model.own_state_dict()
    assert own and all(k.startswith(("adapter.", "emotion_head.", "avd_head.")) or "lora_" in k for k in own)
    base_names = {n for n, _ in model.base_llm.named_parameters() if "lora_" not in n}
    assert not any(k.removeprefix("llm.") in base_names for k in own)
    assert sum(v.numel() for v in own.values()) < 0.5 * sum(p.numel() for p in model.parameters())


def test_save_final_and_from_pretrained_dir_roundtrip(make_model, tmp_path, tokenizer):
    from rellm.testing.toy_models import save_toy_llm

    llm_dir = save_toy_llm(tmp_path / "llm")
    model = SpeechLLM(str(llm_dir), speech_dim=24, emotion_dim=8, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                      lora_target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "emotion_head" in name:
                p.normal_()
    model.save_final(tmp_path / "exp" / "final", extra={"prompts": {"system_prompt": SYSTEM}})
    loaded = SpeechLLM.from_pretrained_dir(tmp_path / "exp")
    assert loaded.prompts == {"system_prompt": SYSTEM}
    whisper, lengths, emo = torch.randn(1, 50, 24), torch.tensor([50]), torch.randn(1, 8)
    model.eval()
    E1, M1 = model.encode_speech(whisper, lengths, emo)
    E2, M2 = loaded.encode_speech(whisper, lengths, emo)
    assert torch.equal(E1, E2) and torch.equal(model.classify_emotion(E1, M1), loaded.classify_emotion(E2, M2))
    i1 = model.build_generation_inputs(SYSTEM, ["Hi "], speech=(E1, M1))
    i2 = loaded.build_generation_inputs(SYSTEM, ["Hi "], speech=(E2, M2))
    assert torch.equal(reference_generate(model, i1, max_new_tokens=4),
                       reference_generate(loaded, i2, max_new_tokens=4))


def test_cached_prompt_prefix_gives_the_same_logits_and_gradients(make_model):
    """The shared system prompt + instruction is computed once (keys/values) and reused: same maths."""
    model = make_model(emotion_dim=8).train()
    p_ids, p_lens, t_ids, t_lens, label_start = _segments(model, ["Fine.", "That sounds wonderful."])
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, 60, 24, generator=g), torch.tensor([60, 40]), torch.randn(2, 8, generator=g),
              p_ids, p_lens, t_ids, t_lens, label_start)
    results = []
    for use_cache in (False, True, True):  # the second cached run reuses the stored keys/values
        model.cache_prompt_prefix = use_cache
        out = model(*inputs)
        out["logits"].logsumexp(-1).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        results.append((out["logits"].detach(), grads))
    assert len(model.prefix_cache) == 1
    ref_logits, ref_grads = results[0]
    for logits, grads in results[1:]:
        assert torch.allclose(logits, ref_logits, atol=1e-5)
        assert grads.keys() == ref_grads.keys() and any("lora_" in n for n in grads)
        for n in grads:
            assert torch.allclose(grads[n], ref_grads[n], atol=1e-5, rtol=1e-4), n


def test_rows_with_different_prompts_share_their_common_prefix(make_model):
    """SER question turns mixed with behaviour turns: only the common start is cached, the maths is unchanged."""
    model = make_model(emotion_dim=8).train()
    instructions = ["Say: ", "Which emotion do you hear in the speech below? "]
    p_ids, p_lens, t_ids, t_lens, label_start = _segments(model, ["Fine.", "It is sad."], instructions=instructions)
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, 60, 24, generator=g), torch.tensor([60, 40]), torch.randn(2, 8, generator=g),
              p_ids, p_lens, t_ids, t_lens, label_start)
    E, M = model.encode_speech(*inputs[:3])
    packed = model.pack(p_ids, p_lens, (E, M), t_ids, t_lens, label_start)
    common = len(packed.shared_prefix)
    assert 0 < common < int(p_lens.min())  # the system turn, not the instructions
    assert packed.shared_prefix == tuple(p_ids[1, :common].tolist()) and p_ids[0, common] != p_ids[1, common]
    results = []
    for use_cache in (False, True):
        model.cache_prompt_prefix = use_cache
        out = model(*inputs)
        out["logits"].logsumexp(-1).sum().backward()
        results.append((out["logits"].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                 if p.grad is not None}))
        model.zero_grad()
    (ref_logits, ref_grads), (logits, grads) = results
    assert torch.allclose(logits, ref_logits, atol=1e-5) and grads.keys() == ref_grads.keys()
    for n in grads:
        assert torch.allclose(grads[n], ref_grads[n], atol=1e-5, rtol=1e-4), n
