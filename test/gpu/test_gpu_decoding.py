"""The CUDA-graph decoder (GreedyDecoder, cuda_graphs=True) against the eager static loop and HF generate(), fp32."""
import pytest
import torch

from rellm.generation.decoding import GreedyDecoder
from rellm.testing.reference_decoding import hf_greedy_tokens as _generate_reference
from rellm.testing.reference_decoding import left_padded_batch as _left_padded_batch
from rellm.testing.reference_decoding import tiny_causal_lm


def _model(arch, seed=0):
    return tiny_causal_lm(arch, seed, vocab_size=211, hidden_size=128, num_layers=3, num_heads=8).cuda()


@pytest.fixture(autouse=True)
def _exact_fp32():
    # TF32 matmuls would let the paths round differently; the comparison is at fp32.
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("lengths", [[9, 4, 7], [1]], ids=["batch3", "batch1"])
def test_cuda_graph_decoder_equals_the_eager_loop_and_generate(arch, lengths):
    model = _model(arch)
    embeds, mask = _left_padded_batch(model, lengths)
    stops, new = [1, 2], 40
    graph_decoder = GreedyDecoder(model, stops, backend="static", cuda_graphs=True)
    graph = graph_decoder.generate(embeds, mask, max_new_tokens=new)
    eager = GreedyDecoder(model, stops, backend="static", cuda_graphs=False).generate(embeds, mask, max_new_tokens=new)
    reference = _generate_reference(model, embeds, mask, new, stops)
    assert graph.stats["cuda_graph"] and not eager.stats["cuda_graph"]  # the graph path really ran
    assert graph.tokens == eager.tokens == reference
    assert graph.hit_limit == eager.hit_limit
    # A second batch of the same shape replays the recorded graph with new inputs.
    embeds2, mask2 = _left_padded_batch(model, lengths, seed=7)
    again = graph_decoder.generate(embeds2, mask2, max_new_tokens=new)
    assert again.stats["cuda_graph"]
    assert again.tokens == _generate_reference(model, embeds2, mask2, new, stops)


def test_cuda_graph_decoder_with_partial_lora_in_the_prefill(tokenizer):
    """PLoRA on the prompt's speech positions, frozen weights in the graph-replayed steps: generate()'s tokens."""
    from rellm.generation.inference import lora_prefill_context
    from rellm.testing.reference_decoding import reference_generate
    from rellm.testing.toy_models import toy_speech_llm

    model = toy_speech_llm(tokenizer, emotion_dim=0).cuda()
    E = torch.randn(2, 5, model.base_llm.config.hidden_size, device="cuda")
    M = torch.ones(2, 5, dtype=torch.bool, device="cuda")
    M[1, 3:] = False
    inputs = model.build_generation_inputs("You are a helpful assistant.", ["", ""], speech=(E, M))
    stops = model.layout.stop_token_ids
    reference = reference_generate(model, inputs, max_new_tokens=16, min_new_tokens=1)
    ref_rows = [r[: next((i for i, t in enumerate(r) if t in stops), len(r))] for r in reference.tolist()]
    graph = GreedyDecoder(model.base_llm, stops, backend="static", cuda_graphs=True).generate(
        inputs["inputs_embeds"], inputs["attention_mask"], inputs["position_ids"], max_new_tokens=16,
        prefill_context=lora_prefill_context(model, inputs["lora_mask"]))
    assert graph.stats["cuda_graph"]
    assert graph.tokens == ref_rows
    assert model.plora.state.mask is None
