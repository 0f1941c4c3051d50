"""Stage 4 itself at paper scale: a few optimizer steps of ``rellm.bin.train`` on generated data.

The recipe's own training entry point and config (``--config``, default the IEMOCAP paper config), with
random weights of the 7B Qwen2 shape saved as a local HF folder, and generated stage 1-3 outputs
(``rellm.testing.toy_recipe.write_toy_recipe_data``: random Whisper-large-v2-wide states and emotion embeddings,
1-1.75 s utterances). Both training steps run one epoch of ``--utts / --batch`` batches (step 1
semantic with its text-LLM teacher, step 2 behaviour). Each ``fit_batch`` is timed (synchronised);
prints one JSON line per training step with the median batch time after the first (CUDA and allocator
warm-up), utterances per second and the peak GPU memory, so the benchmark runs what the recipe runs.

    python bench/train_stage_smoke.py --scale 7b --work /tmp/smoke7b      # GPU (about 15 GB of weights on disk)
    python bench/train_stage_smoke.py --scale tiny --work /tmp/smoke       # CPU dry check, seconds
"""
import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {  # speech_dim, emotion_dim: Whisper-large-v2 and the wav2vec2 emotion encoder of the paper configs
    "7b": {"speech_dim": 1280, "emotion_dim": 1024},
    "tiny": {"speech_dim": 24, "emotion_dim": 8},
}


def emit(**kw):
    kw = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in kw.items()}
    print(json.dumps(kw), flush=True)


def write_random_llm(folder, scale, device):
    """A causal LM folder with random weights (7B: Qwen2-7B's shape, built on the GPU in bf16) and the toy
    ChatML tokenizer (its ids are a subset of the vocabulary)."""
    from rellm.testing.toy_models import save_toy_llm, toy_tokenizer

    if scale == "tiny":
        return save_toy_llm(folder)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096,
                      tie_word_embeddings=False)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(folder)
    toy_tokenizer().save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return Path(folder)


def time_batches():
    """Wrap ``AlignBrain.fit_batch`` to record each batch's wall time (device-synchronised) by training step."""
    from rellm.training.brain import AlignBrain

    times = {}
    original = AlignBrain.fit_batch

    def fit_batch(self, batch):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original(self, batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.setdefault(self.hparams.step_name, []).append((time.perf_counter() - t0, len(batch.id)))
        return out

    AlignBrain.fit_batch = fit_batch
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--work", required=True, help="scratch folder (removed first)")
    ap.add_argument("--config", default=str(REPO / "egs" / "iemocap" / "conf" / "train_rellm.yaml"))
    ap.add_argument("--utts", type=int, default=32, help="training utterances (valid: 8)")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.scale == "7b" and device != "cuda":
        sys.exit("--scale 7b needs a CUDA GPU")
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    from rellm.testing.toy_recipe import write_toy_recipe_data

    t0 = time.time()
    dims = SHAPES[args.scale]
    write_toy_recipe_data(work, num_utts=args.utts, **dims)
    write_toy_recipe_data(work, num_utts=8, sets=("valid",), seed=1, **dims)
    llm = write_random_llm(work / "llm", args.scale, device)
    emit(what="smoke_setup", scale=args.scale, device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
         config=str(Path(args.config).resolve().relative_to(REPO)), setup_s=time.time() - t0)

    overrides = {
        "ngpu": 1 if device == "cuda" else 0, "seed": 1, "data_dir": work / "data", "feats_dir": work / "dump",
        "responses_dir": work / "responses", "train_set": "train", "valid_set": "valid", "exp_root": work / "exp",
        "split": "smoke", "output_folder": work / "exp" / "rellm" / "smoke" / "seed1", "llm_name": llm,
        "init_from": "null", "step1_epochs": 1, "step2_epochs": 1, "step1_batch_size": args.batch,
        "step2_batch_size": args.batch, "step1_grad_accumulation_factor": 1, "step2_grad_accumulation_factor": 1,
        "dynamic_batching": "false", "num_workers": 0, "noprogressbar": "true", "ckpt_interval_minutes": 0,
        **dims,
    }
    times = time_batches()
    from rellm.bin import train as train_stage

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    status = train_stage.main([args.config] + [f"--{k}={v}" for k, v in overrides.items()])
    total = time.time() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    for step, rows in times.items():
        steady = rows[1:] or rows
        t = statistics.median(s for s, _ in steady)
        n = statistics.median(b for _, b in steady)
        emit(what="stage4_step", step=step, batches=len(rows), first_batch_s=rows[0][0], batch_s=t, utt_per_s=n / t,
             peak_gib=peak)
    final = Path(overrides["output_folder"]) / "final" / "trainable.safetensors"
    emit(what="stage4_summary", exit=status, final_written=final.is_file(), total_s=total, peak_gib=peak)
    return 0 if status == 0 and final.is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
