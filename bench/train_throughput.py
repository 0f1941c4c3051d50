"""Stage 4 training throughput: our cached-feature path against the naive path, same model and batch.

    naive          the frozen Whisper encoder runs every step on 30 s of padded log-mel, and its whole
                   output (1500 frames -> 188 speech tokens) goes to the adapter and the LLM: the
                   definition used by ../shared/bench/gpu_anchor.py
    naive_trimmed  encoder on 30 s every step, output trimmed to the real length (the released
                   BLSP-Emo code); reported for reference
    cached_<impl>  what stage 4 does: stage 2's trimmed fp16 encoder states, nothing frozen recomputed,
                   gap-free packing (no padding, SDPA causal kernel), partial LoRA with implementation
                   <impl> (``--plora_impls``, rellm.models.plora.IMPLS), LM head only at the target rows,
                   fused AdamW on CUDA

Every mode is one full optimizer step of the RE-LLM model (fusion adapter with the emotion
embedding, LoRA on all linear layers of the LLM, emotion and A/V/D heads), under bf16 autocast
on GPU. ``--compile`` compiles each decoder layer (rellm.models.compile_layers) before timing.
Prints one JSON object per line; the last has ``speedup_vs_naive`` (the fastest cached impl).

    python bench/train_throughput.py --scale small            # CPU: tiny.en-shaped encoder + SmolLM2-135M
    python bench/train_throughput.py --scale tiny --iters 1   # CPU: toy shapes, seconds (a dry check)
    python bench/train_throughput.py --scale 7b --plora_impls gather,masked,grouped   # GPU: large-v2 + 7B Qwen2
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def emit(**kw):
    kw = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in kw.items()}
    print(json.dumps(kw), flush=True)
    return kw


LORA_TARGETS = {"all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "attn": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def build(scale, device, real_llm, lora_r, lora_targets="all", bf16=False):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.toy_models import toy_tokenizer

    tokenizer = toy_tokenizer()  # chat layout only; the benchmark feeds random token ids of the LLM's vocab
    llm_dtype = torch.bfloat16 if device == "cuda" or bf16 else torch.float32
    if scale == "7b":
        lcfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                           num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096)
        wcfg = WhisperConfig(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                             num_mel_bins=80)
        llm_cls, emotion_dim = Qwen2ForCausalLM, 1024
    elif scale == "tiny":  # dry checks of the benchmark itself: every path, toy sizes
        lcfg = Qwen2Config(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
        wcfg = WhisperConfig(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                             num_mel_bins=80)
        llm_cls, emotion_dim = Qwen2ForCausalLM, 32
    else:
        lcfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                           num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                           tie_word_embeddings=True, rope_theta=100000.0)
        wcfg = WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                             num_mel_bins=80)
        llm_cls, emotion_dim = LlamaForCausalLM, 256
    lcfg._attn_implementation = "sdpa"
    wcfg._attn_implementation = "sdpa"
    t0 = time.time()
    if real_llm and scale == "small":
        from rellm.pretrained import load_causal_lm

        llm, tokenizer = load_causal_lm(real_llm)
    else:
        # Built directly on the device in the target dtype: no CPU initialisation of 7B weights.
        torch.set_default_dtype(llm_dtype)
        with torch.device(device):
            llm = llm_cls(lcfg)
        torch.set_default_dtype(torch.float32)
    torch.set_default_dtype(llm_dtype)
    with torch.device(device):
        encoder = WhisperEncoder(wcfg).eval().requires_grad_(False)
    torch.set_default_dtype(torch.float32)
    model = SpeechLLM(llm, speech_dim=wcfg.d_model, emotion_dim=emotion_dim, tokenizer=tokenizer, lora_r=lora_r,
                      lora_alpha=lora_r, lora_dropout=0.05,
                      lora_target_modules=LORA_TARGETS[lora_targets])
    model.to(device).train()
    build_s = time.time() - t0
    return model, encoder, wcfg, build_s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["tiny", "small", "7b"], default="small")
    ap.add_argument("--batch", type=int, default=None, help="utterances per step (default: 8 on GPU, 4 on CPU)")
    ap.add_argument("--audio_s", type=float, default=4.5)
    ap.add_argument("--prompt_tokens", type=int, default=32)
    ap.add_argument("--response_tokens", type=int, default=64)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--lora_targets", choices=sorted(LORA_TARGETS), default="all",
                    help="all linear layers (our configs, BLSP-Emo) or attention only (gpu_anchor.py)")
    ap.add_argument("--no_prefix_cache", action="store_true", help="recompute the shared prompt every step")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--real_llm", default=None, help="small scale: a registry name (e.g. smollm2-135m-instruct)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip_naive_trimmed", action="store_true")
    ap.add_argument("--skip_naive", action="store_true", help="cached modes only (e.g. a compile run)")
    ap.add_argument("--plora_impls", default=None,
                    help="comma-separated partial-LoRA impls, one cached mode each (default: the model's default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each decoder layer (regional)")
    ap.add_argument("--compile_backend", default="inductor",
                    help="torch.compile backend (aot_eager: capture only, for a quick CPU dry check)")
    ap.add_argument("--cpu_bf16", action="store_true",
                    help="bf16 frozen weights and bf16 autocast on CPU too: the GPU step's ops, countable without a GPU")
    ap.add_argument("--profile", type=int, default=0, metavar="K",
                    help="after timing, profile 2 cached steps and print the K ops with the most device time")
    args = ap.parse_args()

    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.scale == "7b" and device != "cuda":
        sys.exit("--scale 7b needs a CUDA GPU")
    if device == "cpu":
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    B = args.batch or (8 if device == "cuda" else 4)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    emit(what="env", torch=torch.__version__, transformers=transformers.__version__, device=gpu,
         threads=torch.get_num_threads())

    model, encoder, wcfg, build_s = build(args.scale, device, args.real_llm, args.lora_r, args.lora_targets,
                                          bf16=args.cpu_bf16)
    model.cache_prompt_prefix = not args.no_prefix_cache
    impls = args.plora_impls.split(",") if args.plora_impls else [model.plora.impl]
    if args.compile:
        from rellm.models.compile_layers import compile_decoder_layers

        compile_decoder_layers(model, backend=args.compile_backend)
    n_llm = sum(p.numel() for n, p in model.base_llm.named_parameters() if "lora_" not in n)
    trainable = [p for p in model.parameters() if p.requires_grad]
    emit(what="build", scale=args.scale, lora_targets=args.lora_targets, prefix_cache=model.cache_prompt_prefix,
         plora_impls=impls, compile=args.compile,
         llm_params=n_llm, encoder_params=sum(p.numel() for p in encoder.parameters()),
         trainable_params=sum(p.numel() for p in trainable), build_s=build_s)
    opt = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.05, fused=device == "cuda")
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda" or args.cpu_bf16)
    vocab = model.base_llm.config.vocab_size

    frames = int(args.audio_s * 50)
    cached = torch.randn(B, frames, wcfg.d_model, device=device, dtype=torch.float16)  # stage 2 cache: fp16, trimmed
    mel = torch.randn(B, 80, 3000, device=device, dtype=encoder.conv1.weight.dtype)
    emo = torch.randn(B, model.emotion_dim, device=device)
    # One prompt for every row, as in stage 4 (one system prompt, one instruction): the shared prefix
    # that the prefix cache serves.
    prompt = torch.randint(0, vocab, (1, args.prompt_tokens), device=device).expand(B, -1)
    tail = torch.randint(0, vocab, (B, args.response_tokens), device=device)
    p_len = torch.full((B,), args.prompt_tokens, device=device)
    t_len = torch.full((B,), args.response_tokens, device=device)
    label_start = torch.zeros(B, dtype=torch.long, device=device)
    labels = torch.randint(0, 5, (B,), device=device)
    avd = torch.rand(B, 3, device=device)
    seq = {}

    def train_step(states, lengths, name):
        with autocast:
            out = model(states, lengths, emo, prompt, p_len, tail, t_len, label_start)
            loss = (torch.nn.functional.cross_entropy(out["logits"].float(), out["target_ids"])
                    + torch.nn.functional.cross_entropy(out["emotion_logits"].float(), labels)
                    + torch.nn.functional.mse_loss(out["avd"].float(), avd))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        seq[name] = args.prompt_tokens + int(out["speech_tokens"].max()) + args.response_tokens

    def encode_30s():
        with torch.no_grad(), autocast:
            return encoder(mel).last_hidden_state  # [B, 1500, D]: HF Whisper always sees 30 s

    def with_impl(impl, fn):
        def run():
            if model.plora.impl != impl:
                model.plora.set_impl(impl)
            fn()
        return run

    modes = {}
    if not args.skip_naive:  # the naive paths run the first impl (the encoder dominates them)
        modes["naive"] = with_impl(impls[0], lambda: train_step(encode_30s(), torch.full((B,), 1500, device=device),
                                                                "naive"))
    for impl in impls:
        modes[f"cached_{impl}"] = with_impl(impl, lambda name=f"cached_{impl}": train_step(
            cached, torch.full((B,), frames, device=device), name))
    if not (args.skip_naive_trimmed or args.skip_naive):
        modes["naive_trimmed"] = with_impl(impls[0], lambda: train_step(
            encode_30s()[:, :frames], torch.full((B,), frames, device=device), "naive_trimmed"))

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    times = {m: [] for m in modes}
    for i in range(args.warmup + args.iters):
        for m, fn in modes.items():  # interleaved, so load changes on a shared machine hit every mode alike
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if i >= args.warmup:
                times[m].append(time.perf_counter() - t0)
    peak = PEAK_BF16_TFLOPS.get(next((k for k in PEAK_BF16_TFLOPS if k in gpu), ""), None) if device == "cuda" else None
    results = {}
    for m, ts in times.items():
        t = statistics.median(ts)
        # Model FLOPs of the frozen LLM per step, as gpu_anchor.py counts them: 4 N per token
        # (forward 2N + activation-gradient backward 2N; LoRA weight gradients are negligible).
        tflops = 4 * n_llm * B * seq[m] / t / 1e12
        results[m] = emit(what="train_step", mode=m, compile=args.compile, batch=B, audio_s=args.audio_s, seq=seq[m], step_s=t,
                          utt_per_s=B / t, audio_s_per_s=B * args.audio_s / t, llm_model_tflops=tflops,
                          llm_mfu=(tflops / peak) if peak else None,
                          peak_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
                          runs=len(ts))
    best = max((m for m in results if m.startswith("cached_")), key=lambda m: results[m]["utt_per_s"])
    final = {"what": "summary", "scale": args.scale, "device": gpu, "batch": B, "lora_targets": args.lora_targets,
             "compile": args.compile, "fastest_cached": best, "cached_utt_per_s": results[best]["utt_per_s"],
             "cached_llm_mfu": results[best]["llm_mfu"], "target": 2.5}
    if "naive" in results:
        final["naive_utt_per_s"] = results["naive"]["utt_per_s"]
        final["speedup_vs_naive"] = results[best]["utt_per_s"] / results["naive"]["utt_per_s"]
    if "naive_trimmed" in results:
        final["speedup_vs_naive_trimmed"] = results[best]["utt_per_s"] / results["naive_trimmed"]["utt_per_s"]
    if args.profile:
        profile_cached_step(modes[best], device, args.profile)
    emit(**final)


# Leaf ops that only make a view or an empty tensor: no kernel is launched for them.
NO_KERNEL_OPS = {
    "aten::" + n for n in ("view", "_unsafe_view", "as_strided", "slice", "select", "t", "transpose", "expand",
                           "reshape", "_reshape_alias", "unsqueeze", "squeeze", "permute", "alias", "detach",
                           "empty", "empty_strided", "empty_like", "resolve_conj", "resolve_neg", "split", "unbind",
                           "narrow", "lift_fresh", "split_with_sizes", "chunk", "view_as", "expand_as", "flatten",
                           "_has_compatible_shallow_copy_type", "is_nonzero", "item", "_local_scalar_dense")
}


def profile_cached_step(step, device, top_k):
    """Where a cached step spends its time: one JSON line per op, most device (or CPU) time first.

    Then one ``profile_counts`` line: leaf aten ops per step that do work (views excluded),
    and on a GPU the kernels launched per step. A step that is launch-bound gets faster as
    these fall, so the CPU count is a proxy that can be checked without a GPU.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(2):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    for e in events[:top_k]:
        emit(what="profile_cached", op=e.key, calls=e.count, self_ms=getattr(e, key, 0) / 1e3 / 2,
             cpu_ms=e.self_cpu_time_total / 1e3 / 2)
    leaf_ops, kernels = 0, 0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels += 1
        elif (e.name.startswith("aten::") and e.name not in NO_KERNEL_OPS
              and not any(c.name.startswith("aten::") for c in e.cpu_children)):
            leaf_ops += 1
    emit(what="profile_counts", leaf_aten_ops_per_step=leaf_ops / 2,
         kernels_per_step=kernels / 2 if device == "cuda" else None)


if __name__ == "__main__":
    main()
