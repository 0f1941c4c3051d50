"""Decode speed of rellm's greedy decoder against plain ``generate()``, one JSON object per line.

    python bench/decode_speed.py --scale small            # CPU, SmolLM2-135M shape, batch 1 and 8, seconds
    python bench/decode_speed.py --scale 7b               # GPU, Qwen2-7B shape, bf16, batch 1 and 32

Per-token decode time is measured as the anchor does (shared/bench/gpu_decode_anchor.py): the time of
``long`` new tokens minus that of ``short`` new tokens, divided by the difference, so the prompt's
prefill cancels out. Every row is forced to generate all tokens (``min_new_tokens``), the median of
``--repeats`` timed runs after one warm-up run is kept. Keys: ``mode``, ``batch``, ``ms_per_token``
(one decode step for the whole batch), ``tok_per_s`` (batch / step time) and, on a GPU,
``ratio_to_bound`` = step time / (weight bytes / HBM bandwidth).

Modes: ``generate`` (plain HF, the anchor), ``static`` (our static-KV-cache loop, eager),
``static_graph`` (the same step recorded as a CUDA graph), ``static_compile_graph`` (compiled, then
recorded). A mode that fails prints an ``error`` row and the run goes on.

Weights are random (speed does not depend on their values), so nothing needs fetching; the 7B model
is built directly on the GPU in bf16 (no CPU initialisation of 7B weights).
"""
import argparse
import json
import statistics
import sys
import time

import torch

SCALES = {
    # SmolLM2-135M-Instruct (the mini recipe's LLM)
    "small": {"arch": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                  "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 2048, "rope_theta": 100000.0,
                  "tie_word_embeddings": True},
    # Qwen2-7B (the shape of shared/bench/gpu_decode_anchor.py)
    "7b": {"arch": "qwen2", "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
               "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 4096},
}
# HBM bandwidth by device name (bytes/s); the anchor uses 3.35 TB/s for an H100 SXM.
BANDWIDTH = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100", 2.0e12), ("L40S", 0.864e12))


def emit(**row):
    print(json.dumps(row), flush=True)


def build_model(scale, device, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SCALES[scale])
    arch = spec.pop("arch")
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(**spec)
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # allocate (and randomly initialise) on the target device directly
            model = model_cls(config).eval()
    finally:
        torch.set_default_dtype(previous)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def bandwidth(device, override_gbps):
    if override_gbps:
        return override_gbps * 1e9, "given"
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, bw in BANDWIDTH:
        if key in name:
            return bw, name
    return None, name


def timer(device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return sync


def make_runner(model, mode, new_tokens_cap):
    """``run(embeds, mask, new)`` for a mode; raises if the mode cannot be set up here."""
    from rellm.generation.decoding import GreedyDecoder

    if mode == "generate":
        def run(embeds, mask, new):
            model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, num_beams=1, pad_token_id=0)
        return run
    graphs = mode in ("static_graph", "static_compile_graph")
    decoders = {}

    def run(embeds, mask, new):
        # min_new_tokens = new forces every row to the full length (as the anchor does).
        if new not in decoders:
            decoders[new] = GreedyDecoder(model, [0], pad_token_id=0, backend="static", cuda_graphs=graphs,
                                          compile=mode == "static_compile_graph", min_new_tokens=new,
                                          check_stop_every=new_tokens_cap)
        decoders[new].generate(embeds, mask, max_new_tokens=new)
        if graphs and decoders[new]._graph_failed:
            raise RuntimeError("CUDA graph capture failed (see the warning above)")
    return run


def measure(run, embeds, mask, short, long, repeats, sync):
    def timed(new):
        ts = []
        for i in range(repeats + 1):  # the first run warms up (and records graphs / compiles)
            sync()
            t0 = time.perf_counter()
            run(embeds, mask, new)
            sync()
            if i:
                ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    t_short, t_long = timed(short), timed(long)
    return max(t_long - t_short, 1e-9) / (long - short), t_short, t_long


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--device", default="auto", help="auto: cuda if available (7b needs it), else cpu")
    parser.add_argument("--batches", default=None, help="comma-separated (default: 1,8 small; 1,32 7b)")
    parser.add_argument("--modes", default=None,
                        help="comma-separated of generate,static,static_graph,static_compile_graph "
                             "(default: generate,static on CPU; generate,static_graph,static_compile_graph on GPU)")
    parser.add_argument("--prompt_len", type=int, default=None, help="default: 40 small, 128 7b (the anchor's)")
    parser.add_argument("--short", type=int, default=None, help="new tokens of the short run (default 8 small, 16 7b)")
    parser.add_argument("--long", type=int, default=None, help="new tokens of the long run (default 40 small, 80 7b)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per length (default 1 small, 2 7b)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared 2-core box)")
    parser.add_argument("--hbm_gbps", type=float, default=None, help="HBM bandwidth override for the bound, GB/s")
    args = parser.parse_args(argv)

    big = args.scale == "7b"
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    if big and device.type != "cuda":
        sys.exit("ERROR: --scale 7b needs a CUDA GPU (15 GiB of bf16 weights); use --scale small on CPU")
    torch.set_num_threads(max(1, args.threads))
    batches = [int(b) for b in (args.batches or ("1,32" if big else "1,8")).split(",")]
    # GPU default: the anchor, our graph-replayed step, and the compiled variant (about 3 min in all
    # at 7B on an H100, most of it torch.compile); add "static" for the eager loop.
    default_modes = "generate,static_graph,static_compile_graph" if device.type == "cuda" else "generate,static"
    modes = (args.modes or default_modes).split(",")
    prompt_len = args.prompt_len or (128 if big else 40)
    short, long = args.short or (16 if big else 8), args.long or (80 if big else 40)
    repeats = args.repeats or (2 if big else 1)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    t0 = time.perf_counter()
    model = build_model(args.scale, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bw, device_name = bandwidth(device, args.hbm_gbps)
    bound = weight_bytes / bw if bw else None
    emit(what="build", scale=args.scale, device=str(device), device_name=device_name, dtype=str(dtype).split(".")[-1],
         params=params, weight_bytes=weight_bytes, hbm_bytes_per_s=bw,
         bound_ms_per_step=round(bound * 1e3, 3) if bound else None, build_s=round(time.perf_counter() - t0, 1),
         torch=torch.__version__, threads=torch.get_num_threads())

    sync = timer(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    for batch in batches:
        ids = torch.randint(1, SCALES[args.scale]["vocab_size"], (batch, prompt_len), generator=gen).to(device)
        mask = torch.ones_like(ids)
        with torch.no_grad():
            embeds = model.get_input_embeddings()(ids)
        for mode in modes:
            try:
                run = make_runner(model, mode, long)
                with torch.no_grad():
                    step, t_short, t_long = measure(run, embeds, mask, short, long, repeats, sync)
                row = {"what": "decode", "scale": args.scale, "mode": mode, "batch": batch, "prompt_len": prompt_len,
                           "ms_per_token": round(step * 1e3, 3), "tok_per_s": round(batch / step, 1),
                           "s_short": round(t_short, 3), "s_long": round(t_long, 3), "new_tokens": [short, long]}
                if bound:
                    row["ratio_to_bound"] = round(step / bound, 2)
                emit(**row)
            except Exception as err:  # noqa: BLE001 (report any failure and go on with the next mode)
                emit(what="decode", scale=args.scale, mode=mode, batch=batch, error=repr(err)[:400])
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
