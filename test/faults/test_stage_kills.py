"""Stages 2 and 5 with their jobs and their merges SIGKILLed (``RELLM_FAULT``) through the real job runner, then
re-run as a recipe would: the outputs equal those of an uninterrupted run, byte for byte, and every utterance is
there once. (Stage 3's shards: test_sharded_kill.py; stage 4: test_training_kill.py.)"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


def _env(fault=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("RELLM_FAULT", None)
    if fault:
        env["RELLM_FAULT"] = fault
    return env


def _runner(logs, name, stage_cmd, num_jobs, fault=None):
    """``utils/run.py JOB=1:N logs/name.JOB.log <stage> --shard JOB``, as stages.sh calls a sharded stage."""
    args = [sys.executable, str(REPO / "tools" / "run.py"), f"JOB=1:{num_jobs}", str(logs / f"{name}.JOB.log"),
            *map(str, stage_cmd), "--shard", "JOB", "--num_shards", str(num_jobs)]
    return subprocess.run(args, cwd=REPO, env=_env(fault), capture_output=True, text=True, timeout=900, check=False)


def _merge(stage_cmd, num_jobs, fault=None):
    args = [*map(str, stage_cmd), "--merge", "true", "--num_shards", str(num_jobs)]
    return subprocess.run(args, cwd=REPO, env=_env(fault), capture_output=True, text=True, timeout=900, check=False)


def _files(folder, names):
    return {name: (folder / name).read_bytes() for name in names}


def _run_clean_and_killed(tmp_path, stage_cmd_for, shard_faults, merge_fault, outputs, num_jobs=2):
    """One uninterrupted run, one with ``shard_faults`` in its jobs and ``merge_fault`` in its merge, each killed
    run followed by the plain re-run a user would do; returns both output folders."""
    clean = tmp_path / "clean"
    assert _runner(tmp_path / "log_clean", "job", stage_cmd_for(clean), num_jobs).returncode == 0
    merged = _merge(stage_cmd_for(clean), num_jobs)
    assert merged.returncode == 0, merged.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = _runner(tmp_path / "log", "job", stage_cmd_for(killed), num_jobs, fault=shard_faults)
    assert proc.returncode != 0 and f"{len(shard_faults.split(','))} of {num_jobs} job(s) failed" in proc.stderr, \
        proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = _merge(stage_cmd_for(killed), num_jobs)  # unfinished shards block the merge, named
    assert proc.returncode != 0 and "are not finished" in proc.stderr, proc.stderr[-2000:]
    proc = _runner(tmp_path / "log", "job", stage_cmd_for(killed), num_jobs)  # the re-run
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _merge(stage_cmd_for(killed), num_jobs, fault=merge_fault)
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    proc = _merge(stage_cmd_for(killed), num_jobs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _files(killed, outputs) == _files(clean, outputs)
    return clean, killed


def test_stage2_jobs_and_merge_killed_then_rerun_equal_an_uninterrupted_run(tmp_path):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config

    torch.manual_seed(0)
    config = WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=16, vocab_size=64, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
    WhisperModel(config).save_pretrained(tmp_path / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "whisper")
    save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)), tmp_path / "ee")
    audio, data = tmp_path / "audio", tmp_path / "data"
    audio.mkdir()
    data.mkdir()
    rng = np.random.default_rng(0)
    manifest = {}
    for i in range(6):
        sf.write(audio / f"u{i}.wav", (0.1 * rng.standard_normal(8000 + 2000 * i)).astype(np.float32), 16000)
        manifest[f"u{i}"] = {"wav": f"{{data_root}}/u{i}.wav", "duration": 0.5 + 0.125 * i, "transcript": "x",
                             "emotion": "neutral", "arousal": 0.5, "valence": 0.5, "dominance": 0.5,
                             "speaker": "s", "gender": "F"}
    (data / "test.json").write_text(json.dumps(manifest))
    (data / "data_root.txt").write_text(f"{audio}\n")

    def stage_cmd(out):
        return [sys.executable, "-m", "rellm.bin.extract", REPO / "egs" / "mini" / "conf" / "extract.yaml",
                "--manifest", data / "test.json", "--output_dir", out, "--whisper", tmp_path / "whisper",
                "--emotion_encoder_dir", tmp_path / "ee", "--batch_size", "2"]

    # job 1 dies while writing its Whisper blob, job 2 after its files but before its done marker; the merge
    # while writing the index
    outputs = ["index.jsonl", "shards/whisper.1of2.f16", "shards/whisper.2of2.f16", "shards/emotion.1of2.npy",
               "shards/emotion.2of2.npy", "shards/index.1of2.jsonl", "shards/index.2of2.jsonl"]
    _, killed = _run_clean_and_killed(tmp_path, stage_cmd, "write/whisper.1of2.f16,mark_done/extract.2of2",
                                      "write/index.jsonl", outputs)
    from rellm.features.cache import FeatureCache

    cache = FeatureCache(killed)
    assert sorted(cache.keys()) == sorted(manifest)  # every utterance once
    assert json.loads((killed / "report.json").read_text())["kept"] == 6


def test_stage5_jobs_and_merge_killed_then_rerun_equal_an_uninterrupted_run(tmp_path):
    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.toy_models import save_toy_llm
    from rellm.testing.toy_recipe import write_toy_recipe_data

    root = write_toy_recipe_data(tmp_path / "toy", num_utts=7, sets=("test",))
    llm = save_toy_llm(tmp_path / "llm")
    torch.manual_seed(0)
    model = SpeechLLM(str(llm), speech_dim=24, emotion_dim=8, lora_r=4, lora_alpha=8,
                      lora_target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model_dir = tmp_path / "exp" / "rellm" / "toy" / "seed1"
    model.save_final(model_dir / "final", extra={"base_models": {"llm": str(llm)}})

    def stage_cmd(out):
        return [sys.executable, "-m", "rellm.bin.infer", REPO / "egs" / "mini" / "conf" / "infer.yaml",
                "--system", "rellm", "--model_dir", model_dir, "--manifest", root / "data" / "test.json",
                "--feats_dir", root / "dump" / "test", "--output_dir", out, "--text_llm", llm,
                "--response_max_new_tokens", "5", "--ser_max_new_tokens", "4", "--batch_size", "3"]

    outputs = ["responses.jsonl", "shards/responses.1of2.jsonl", "shards/responses.2of2.jsonl"]
    _, killed = _run_clean_and_killed(tmp_path, stage_cmd, "write/responses.1of2.jsonl,mark_done/infer.2of2",
                                      "mark_done/infer_merge", outputs)
    ids = [json.loads(line)["utt_id"] for line in (killed / "responses.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 7
