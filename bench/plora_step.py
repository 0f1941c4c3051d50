"""One forward + backward of a LoRA-wrapped decoder under each partial-LoRA implementation.

Times ``base_llm`` forward and backward (LoRA on all linear layers, the mask of a cached stage 4
step: prompt prefix cached, so the step sees speech + response positions with LoRA on the speech
ones) for every ``rellm.models.plora.IMPLS``, interleaved in one process, and counts the leaf aten
ops per step (the kernel launches a GPU would wait on). Prints one JSON object per line; the last
(``what: summary``) names the fastest impl.

    python bench/plora_step.py                       # CPU: SmolLM2-135M-wide, 4 layers, fp32, 1 thread
    python bench/plora_step.py --cpu_bf16            # CPU: bf16 weights under bf16 autocast (the GPU op structure)
    python bench/plora_step.py --scale 7b --layers 4 # GPU: Qwen2-7B-wide layers, bf16 autocast
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(**kw):
    kw = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in kw.items()}
    print(json.dumps(kw), flush=True)
    return kw


def build(scale, layers, device, dtype, lora_r):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from rellm.models.plora import PartialLoRA, add_lora

    if scale == "7b":
        cfg = Qwen2Config(vocab_size=1024, hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers,
                          num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096)
        cls = Qwen2ForCausalLM
    else:
        cfg = LlamaConfig(vocab_size=1024, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                          num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048)
        cls = LlamaForCausalLM
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(dtype)
    with torch.device(device):
        llm = cls(cfg)
    torch.set_default_dtype(torch.float32)
    peft_model = add_lora(llm, r=lora_r, alpha=lora_r, dropout=0.05,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model.to(device).train()
    return peft_model, PartialLoRA(peft_model)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["small", "7b"], default="small")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=None, help="rows (default: 8 on GPU, 4 on CPU)")
    ap.add_argument("--speech_tokens", type=int, default=29, help="LoRA positions per row (4.5 s of speech)")
    ap.add_argument("--response_tokens", type=int, default=64, help="positions after the speech (LoRA off)")
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpu_bf16", action="store_true", help="bf16 weights and bf16 autocast on CPU")
    ap.add_argument("--impls", default=None, help="comma-separated subset of rellm.models.plora.IMPLS")
    args = ap.parse_args()

    from rellm.models.plora import IMPLS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.scale == "7b" and device != "cuda":
        sys.exit("--scale 7b needs a CUDA GPU")
    if device == "cpu":
        torch.set_num_threads(args.threads)
    bf16 = device == "cuda" or args.cpu_bf16
    torch.manual_seed(0)
    B = args.batch or (8 if device == "cuda" else 4)
    model, plora = build(args.scale, args.layers, device, torch.bfloat16 if bf16 else torch.float32, args.lora_r)
    T = args.speech_tokens + args.response_tokens
    hidden = model.config.hidden_size
    embeds = torch.randn(B, T, hidden, device=device, dtype=torch.bfloat16 if bf16 else torch.float32)
    mask = torch.zeros(B, T, dtype=torch.bool, device=device)
    mask[:, : args.speech_tokens] = True
    backbone = model.get_base_model().get_decoder()
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
    impls = args.impls.split(",") if args.impls else list(IMPLS)
    emit(what="env", torch=torch.__version__, device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
         threads=torch.get_num_threads(), scale=args.scale, layers=args.layers, batch=B, seq=T,
         lora_rows=args.speech_tokens, lora_layers=len(plora.layers), dtype="bf16" if bf16 else "fp32")

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def step():
        x = embeds.detach().requires_grad_()
        plora.set_mask(mask)
        with autocast:
            out = backbone(inputs_embeds=x, use_cache=False).last_hidden_state
        plora.set_mask(None)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    times = {impl: [] for impl in impls}
    for i in range(args.warmup + args.iters):
        for impl in impls:  # interleaved: load changes on a shared machine hit every impl alike
            plora.set_impl(impl)
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            if i >= args.warmup:
                times[impl].append(time.perf_counter() - t0)
    medians = {}
    for impl in impls:
        plora.set_impl(impl)
        medians[impl] = statistics.median(times[impl])
        emit(what="plora_step", impl=impl, step_ms=medians[impl] * 1e3, runs=len(times[impl]),
             leaf_aten_ops_per_step=count_ops(step, device))
    best = min(medians, key=medians.get)
    emit(what="summary", fastest=best, **{f"{impl}_vs_gather": medians["gather"] / medians[impl]
                                          for impl in impls if "gather" in medians})


def count_ops(step, device):
    """Leaf aten ops that launch work (views excluded), per step: what a launch-bound GPU step waits on."""
    from torch.profiler import ProfilerActivity, profile

    from bench.train_throughput import NO_KERNEL_OPS

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
    return sum(1 for e in prof.events()
               if e.name.startswith("aten::") and e.name not in NO_KERNEL_OPS
               and not any(c.name.startswith("aten::") for c in e.cpu_children))


if __name__ == "__main__":
    main()
