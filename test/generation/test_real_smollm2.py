"""Stage 3 with the real SmolLM2-135M-Instruct teacher (slow): sharding and batching never change a reply."""
import json
from pathlib import Path

import pytest
import torch

from rellm.bin import respond
from rellm.utils.io import read_jsonl

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf" / "respond.yaml"
UTTS = {
    "a1": ("Can you set a timer for twenty minutes?", "happy"),
    "a2": ("My sister is coming over for dinner tonight.", "sad"),
    "a3": ("I just got a message from my landlord.", "angry"),
    "a4": ("The package arrived at the front door.", "surprise"),
    "a5": ("I will be working from home tomorrow.", "neutral"),
}


def _manifest(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({u: {"wav": f"{{data_root}}/{u}.wav", "duration": 2.0, "transcript": t, "emotion": e,
                                    "arousal": None, "valence": None, "dominance": None, "speaker": "s",
                                    "gender": "F"} for u, (t, e) in UTTS.items()}), encoding="utf-8")
    return path


def test_teacher_output_is_independent_of_sharding_and_batching(tmp_path, smollm2_dir):
    manifest = _manifest(tmp_path / "data" / "train.json")
    common = [str(CONF), f"--manifest={manifest}", f"--teacher_llm={smollm2_dir}", "--max_new_tokens=24",
              "--tasks=[expected]"]
    # sharding: the batches are planned over the whole set, so 1 or 3 shards give the same bytes, in fp32 and in
    # bf16 (the mini recipe's "fast" on a CPU with hardware bf16)
    for dtype in ("float32", "bfloat16"):
        one, three = tmp_path / f"one_{dtype}", tmp_path / f"three_{dtype}"
        respond.main(common + [f"--output_dir={one}", "--batch_size=4", f"--dtype={dtype}"])
        respond.main(common + [f"--output_dir={one}", "--batch_size=4", "--merge=true", f"--dtype={dtype}"])
        for j in (1, 2, 3):
            respond.main(common + [f"--output_dir={three}", "--batch_size=4", f"--shard={j}", "--num_shards=3",
                                   f"--dtype={dtype}"])
        respond.main(common + [f"--output_dir={three}", "--batch_size=4", "--merge=true", "--num_shards=3",
                               f"--dtype={dtype}"])
        assert (one / "raw" / "expected.jsonl").read_bytes() == (three / "raw" / "expected.jsonl").read_bytes()
    # batch composition, in fp32: every utterance alone (batch 1) gives the same greedy reply as in a padded
    # batch (in bf16 the rounding of a row can depend on its batch, so the recipe fixes the batches)
    common.append("--dtype=float32")
    respond.main(common + [f"--output_dir={tmp_path / 'single'}", "--batch_size=1"])
    respond.main(common + [f"--output_dir={tmp_path / 'single'}", "--batch_size=1", "--merge=true"])
    batched = {r["utt_id"]: r["output"] for r in read_jsonl(tmp_path / "one_float32" / "raw" / "expected.jsonl")}
    single = {r["utt_id"]: r["output"] for r in read_jsonl(tmp_path / "single" / "raw" / "expected.jsonl")}
    assert batched == single
    assert all(len(o) > 10 for o in batched.values())  # real sentences, not empty replies


def test_static_decoder_matches_generate_on_smollm2(smollm2_dir):
    from rellm.generation.decoding import GreedyDecoder
    from rellm.generation.runtime import load_llm, stop_ids_for
    from rellm.generation.teacher import left_pad

    llm, tok, layout = load_llm(str(smollm2_dir), "float32", torch.device("cpu"), 1)
    prompts = [list(layout.prefix_ids("You are a helpful assistant.")) + layout.encode_content(t)
               + list(layout.header_ids) for t, _ in UTTS.values()][:3]
    ids, mask = left_pad(prompts, tok.pad_token_id)
    embeds = llm.get_input_embeddings()(ids)
    stops = stop_ids_for(tok, layout)
    static = GreedyDecoder(llm, stops, pad_token_id=tok.pad_token_id, backend="static").generate(embeds, mask, None, 20)
    hf = GreedyDecoder(llm, stops, pad_token_id=tok.pad_token_id, backend="hf").generate(embeds, mask, None, 20)
    assert static.tokens == hf.tokens
