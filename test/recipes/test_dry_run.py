"""./run.sh --dry_run true: the swap table (fast) and each paper recipe's dry run on fixture corpora (slow).

The recipe runs are marked ``slow`` (not ``e2e``), so ``make test`` and CI run them: a change that breaks
a paper recipe cannot land. They run offline (HF_HUB_OFFLINE=1) on the corpus fixtures of test/data in the
real release layouts, with a private $RELLM_CACHE holding only the small registry models.

IEMOCAP runs the paper's comparison through the importers (issue 12): QWEN_7B_CHAT and BLSP_EMO point at
the tiny reference-generated Qwen(1) and Blsp2Model of test/fixtures/blsp_emo, so stage 4 imports BLSP-Emo,
RE-LLM is initialised from it, and the same Qwen is the teacher and the text-only baseline.
ESD and MSP-Podcast leave BLSP_EMO unset: the dry run trains a tiny BLSP-Emo with SmolLM2 instead.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recipe_env import checkout_for_new_recipes, private_cache_and_epitome

from rellm.recipes.dry_run import settings, subset_manifests
from rellm.recipes.stage_args import main as stage_args_main
from rellm.utils.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test" / "data"))
sys.path.insert(0, str(REPO / "test" / "scoring"))
FIXTURES = REPO / "test" / "fixtures" / "blsp_emo"


def _args(out, var):
    return out[var].split()


def test_settings_swap_every_model_and_keep_the_user_args_last():
    out, notes = settings(recipe_dir=REPO / "egs" / "iemocap", split="fold5", blsp_emo_source="released",
                          blsp_emo="", user_args={"extract_args": "--batch_size=2", "rellm_args": "--lr=1"})
    assert (out["datadir"], out["dumpdir"], out["expdir"]) == ("data_dry", "dump_dry", "exp_dry")
    assert out["results"].startswith("exp_dry/") and out["ngpu"] == "0"
    assert out["blsp_emo_source"] == "trained" and "BLSP_EMO is not set" in notes[0]
    extract = _args(out, "extract_args")
    assert "--whisper=whisper-tiny.en" in extract and "--emotion_encoder=from_recipe" in extract
    assert extract[-1] == "--batch_size=2"  # after the dry run's own --batch_size: the user's wins
    assert "--teacher_llm=smollm2-135m-instruct" in _args(out, "respond_args")
    assert "--text_llm=smollm2-135m-instruct" in _args(out, "infer_args")
    train = _args(out, "train_args")
    assert "--llm_name=smollm2-135m-instruct" in train and "--speech_dim=auto" in train
    assert _args(out, "rellm_args") == ["--emotion_dim=auto", "--emotion_encoder=exp_dry/emotion_encoder/fold5",
                                        "--lr=1"]
    assert "--encoder_tag=minilm-l6-dry_run" in _args(out, "epitome_args")
    assert Path(out["emotion_encoder_conf"]).is_file()


def test_settings_with_blsp_emo_keep_its_llm_and_whisper():
    out, notes = settings(recipe_dir=REPO / "egs" / "iemocap", split="fold5", blsp_emo_source="released",
                          blsp_emo="/ckpt", user_args={"extract_args": "--whisper=/w"})
    assert "blsp_emo_source" not in out
    for var in ("respond_args", "train_args", "infer_args"):
        assert not any(a.startswith(("--teacher_llm", "--llm_name", "--text_llm")) for a in _args(out, var)), var
    assert "--check_whisper=/w" in _args(out, "import_args") and "--speech_encoder=/w" in _args(out, "train_args")
    assert "qwen-7b-chat" in notes[0]
    out, _ = settings(recipe_dir=REPO / "egs" / "iemocap", blsp_emo="/ckpt", user_args={})
    assert "--check_whisper=openai/whisper-large-v2" in _args(out, "import_args")  # conf/extract.yaml's


def stage_args_records(capsysbinary, *argv):
    assert stage_args_main(list(argv)) == 0
    out = capsysbinary.readouterr().out
    assert out.endswith(b"\0")
    return [tuple(r.decode().split("=", 1)) for r in out.split(b"\0")[:-1]]


def test_stage_args_answers_the_overlay_and_the_dry_run_as_records(capsysbinary):
    """What stages.sh reads: the recipe's overlay per config, then (a dry run) every flag it sets, each --*_args
    flag passed with the swaps in front (a flag without swaps as it was), and the notes."""
    conf = str(REPO / "egs" / "esd" / "conf")
    flags = ["--extract_args=--batch_size=2", "--step1_prepare_args=--num_sentences=3 --x='a b'", "--import_args="]
    records = stage_args_records(capsysbinary, f"--conf_dir={conf}", *flags)
    assert records == [(f"conf/train_{m}.yaml", "--avd_source=encoder") for m in ("blsp_emo", "blsp_emo_ft", "rellm")]
    records = stage_args_records(capsysbinary, f"--conf_dir={conf}", "--dry_run=true", "--split=official", *flags,
                                 "--train_args=", "--rellm_args=", "--infer_args=", "--respond_args=",
                                 "--epitome_args=", "--score_args=")
    values = dict(records)
    assert records[0] == ("conf/train_blsp_emo.yaml", "--avd_source=encoder")
    assert values["extract_args"].startswith("--whisper=whisper-tiny.en ") and values["extract_args"].endswith(
        "--batch_size=4 --batch_size=2")
    assert values["step1_prepare_args"] == "--num_sentences=3 --x='a b'" and values["import_args"] == ""
    assert (values["datadir"], values["blsp_emo_source"], values["train_emotion_encoder"]) == ("data_dry", "trained",
                                                                                              "true")
    assert json.loads(values["dry_run_max_per_set"])["train"] == 16
    assert "BLSP_EMO is not set" in values["log"]
    with pytest.raises(ConfigError, match="dry_run.yaml has overrides for --extract_args, --infer_args"):
        stage_args_main([f"--conf_dir={conf}", "--dry_run=true", "--train_args=", "--rellm_args=",
                         "--respond_args=", "--epitome_args=", "--score_args="])


def test_subset_keeps_every_emotion_and_counts_the_rest(tmp_path):
    emotions = ["neutral"] * 6 + ["happy"] * 3 + ["sad"]
    manifest = {f"u{i:02d}": {"emotion": e} for i, e in enumerate(emotions)}
    (tmp_path / "train.json").write_text(json.dumps(manifest))
    (tmp_path / "test2.json").write_text(json.dumps(manifest))
    report = subset_manifests(tmp_path, {"train": 4, "test": 2}, ["train", "test2"])
    train = json.loads((tmp_path / "train.json").read_text())
    assert sorted(v["emotion"] for v in train.values()) == ["happy", "happy", "neutral", "sad"]  # in turn: h, n, s, h
    assert report == {"train": {"kept": 4, "dropped_dry_run_subset": 6}, "test2": {"kept": 2, "dropped_dry_run_subset": 8}}
    assert subset_manifests(tmp_path, {"train": 4, "test": 2}, ["train", "test2"]) == report  # idempotent
    assert json.loads((tmp_path / "train.json").read_text()) == train


# ------------------------------------------------------------------ the recipes' dry runs


@pytest.fixture(scope="module")
def dry_env(tmp_path_factory):
    from corpus_fixtures import build_esd, build_iemocap, build_msp

    root = tmp_path_factory.mktemp("dry_run")
    private_cache_and_epitome(root)
    corpora = root / "corpora"
    env = {k: v for k, v in os.environ.items() if k not in ("IEMOCAP", "ESD", "MSP_PODCAST", "BLSP_EMO", "QWEN_7B_CHAT")}
    env["QWEN_7B_CHAT_REVISION"] = "any"  # the tiny QWEN_7B_CHAT fixture is not the pinned Qwen-7B-Chat revision
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]), OMP_NUM_THREADS="1",
               RELLM_CMD_BACKEND="local", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RELLM_CACHE=str(root / "cache"), RELLM_EPITOME_DIR=str(root / "epitome"),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
               IEMOCAP=str(build_iemocap(corpora / "IEMOCAP_full_release")), ESD=str(build_esd(corpora / "ESD")),
               MSP_PODCAST=str(build_msp(corpora / "MSP-PODCAST")))
    return root, env


def run_recipe(root, env, recipe, *args, **extra_env):
    """A copy of egs/<recipe> (links to this checkout) run with --dry_run true; returns (folder, seconds, log)."""
    folder = root / recipe
    folder.mkdir()
    for item in (REPO / "egs" / recipe).iterdir():
        if item.is_symlink():
            (folder / item.name).symlink_to(item.resolve())
        elif item.name in ("run.sh", "conf"):  # -L: conf/ holds links to egs/TEMPLATE/conf (../../TEMPLATE/...)
            subprocess.run(["cp", "-rL", str(item), str(folder / item.name)], check=True)
    return dry_run(folder, env, *args, **extra_env)


def dry_run(folder, env, *args, **extra_env):
    """``./run.sh --dry_run true`` in ``folder``; returns (folder, seconds, log)."""
    start = time.monotonic()
    result = subprocess.run(["./run.sh", "--dry_run", "true", "--epitome_args", "--verify_checksums=false", *args],
                            cwd=folder, env={**env, **extra_env}, capture_output=True, text=True, timeout=1200,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (folder / "RESULTS.md").exists() and not (folder / "exp").exists()  # nothing in the real roots
    return folder, time.monotonic() - start, result.stdout + result.stderr


def check_outputs(folder, split, test_sets, systems=("text_only", "blsp_emo", "blsp_emo_ft", "rellm")):
    data = folder / "data_dry" / split
    counts = {s: len(json.loads((data / f"{s}.json").read_text())) for s in ("train", "valid", *test_sets)}
    assert all(n > 0 for n in counts.values()), counts
    for s, n in counts.items():
        assert len((folder / "dump_dry" / split / s / "index.jsonl").read_text().splitlines()) == n, s
    for s in ("train", "valid"):
        assert (folder / "exp_dry" / "responses" / split / s / "expected.jsonl").is_file()
    for system in systems:
        model = folder / "exp_dry" / system / split / "seed1"
        if system != "text_only":
            assert (model / "final" / "model.json").is_file(), system
        for t in test_sets:
            lines = (model / "infer" / t / "responses.jsonl").read_text().splitlines()
            assert len(lines) == counts[t], (system, t)
    for t in test_sets:
        metrics = json.loads((folder / "exp_dry" / "scores" / split / "seed1" / t / "metrics.json").read_text())
        assert set(metrics["systems"]) == set(systems)
    results = (folder / "exp_dry" / "RESULTS_dry_run.md").read_text()
    assert results.startswith("# DRY RUN RESULTS (not paper results)")
    assert "--dry_run true" in results
    assert "- EPITOME encoder: registry:minilm-l6" in results and "# stage 4 training\npython" in results  # provenance
    return counts


@pytest.mark.e2e
def test_iemocap_dry_run_through_the_importers(dry_env):
    """Issue 12: the paper's comparison (released BLSP-Emo, RE-LLM initialised from it, Qwen-7B-Chat as teacher
    and text-only) through the importers, on the tiny reference-generated checkpoints."""
    from rellm.pretrained.blsp_emo import import_blsp_emo

    root, env = dry_env
    # The checkpoint's Whisper as a folder of its own: the stand-in for openai/whisper-large-v2.
    whisper_exp = root / "whisper_source"
    import_blsp_emo(FIXTURES / "blsp_emo", whisper_exp, llm="embedded", check_llm=False)
    # RE-LLM and blsp_emo_ft continue the imported model: their sizes are the tiny checkpoint's (the released one's
    # match conf/), given to both through --train_args (the import itself takes none)
    folder, seconds, log = run_recipe(root, env, "iemocap", "--extract_args", f"--whisper={whisper_exp / 'whisper'}",
                                      "--train_args", "--adapter_bottleneck_dim=16 --lora_r=4 --lora_alpha=8",
                                      BLSP_EMO=str(FIXTURES / "blsp_emo"), QWEN_7B_CHAT=str(FIXTURES / "qwen1"))
    print(f"iemocap dry run: {seconds:.0f} s")
    assert "BLSP_EMO=" in log and "is imported" in log
    counts = check_outputs(folder, "fold5", ["test"])
    # fold5 of the fixture: 14 usable train turns (sessions 1-4 but the valid speaker), 2 valid, 5 test (Session 5),
    # all under max_per_set, so the subset keeps them all and says so
    assert counts == {"train": 14, "valid": 2, "test": 5}
    subset = json.loads((folder / "data_dry" / "fold5" / "dry_run_subset.json").read_text())
    assert subset["train"] == {"kept": 14, "dropped_dry_run_subset": 0}
    blsp = json.loads((folder / "exp_dry" / "blsp_emo" / "fold5" / "seed1" / "final" / "model.json").read_text())
    assert "imported_from" in blsp and blsp["model"]["llm"].endswith("qwen-7b-chat")
    rellm = json.loads((folder / "exp_dry" / "rellm" / "fold5" / "seed1" / "final" / "model.json").read_text())
    assert rellm["model"]["llm"] == blsp["model"]["llm"] and rellm["model"]["emotion_dim"] > 0
    assert (root / "cache" / "models" / "qwen-7b-chat" / "config.json").is_file()  # imported from QWEN_7B_CHAT
    # without the checkpoint's sizes, stage 4 stops at start-up naming the overrides to pass
    from rellm.bin.train import check_init_from
    from rellm.utils.config import ConfigError

    with pytest.raises(ConfigError, match=r'--train_args "--adapter_bottleneck_dim=16 --lora_r=4 --lora_alpha=8"'):
        check_init_from({"init_from": str(folder / "exp_dry" / "blsp_emo" / "fold5" / "seed1"),
                         "adapter_bottleneck_dim": 512, "lora_r": 16, "lora_alpha": 16})
    results = (folder / "exp_dry" / "RESULTS_dry_run.md").read_text()
    assert f"- blsp_emo imported from: {FIXTURES / 'blsp_emo'}" in results
    assert f"- text-only LLM: registry:qwen-7b-chat (imported from {FIXTURES / 'qwen1'}" in results
    scores = folder / "exp_dry" / "scores"
    assert json.loads((scores / "fold5" / "seed1" / "test" / "metrics.json").read_text())["test_overlap"] == {}

    # fold1 tests on Session 1, which the released BLSP-Emo was trained on: blsp_emo and RE-LLM (initialised from
    # it) are listed as overlapping, stage 6 finishes whatever the random teacher wrote, and RESULTS.md now holds
    # both folds with their summary
    _, seconds, _ = dry_run(folder, env, "--split", "fold1", "--extract_args", f"--whisper={whisper_exp / 'whisper'}",
                            "--train_args", "--adapter_bottleneck_dim=16 --lora_r=4 --lora_alpha=8",
                            BLSP_EMO=str(FIXTURES / "blsp_emo"), QWEN_7B_CHAT=str(FIXTURES / "qwen1"))
    print(f"iemocap fold1 dry run: {seconds:.0f} s")
    fold1 = json.loads((scores / "fold1" / "seed1" / "test" / "metrics.json").read_text())
    overlap = fold1["test_overlap"]
    # every system that holds the imported BLSP-Emo (itself, RE-LLM, BLSP-Emo continued on the corpus); not text-only
    assert {"blsp_emo", "rellm"} <= set(overlap) == set(fold1["systems"]) - {"text_only"}
    assert "IEMOCAP Session 1" in overlap["blsp_emo"]
    assert "initialised from exp_dry/blsp_emo/fold1/seed1" in overlap["rellm"]
    results = (folder / "exp_dry" / "RESULTS_dry_run.md").read_text()
    assert "## Summary over 2 runs" in results and "| BLSP-Emo baseline † |" in results
    assert f"- fold1 seed1: BLSP-Emo baseline: {overlap['blsp_emo']}" in results
    assert json.loads((scores / "summary.json").read_text())["test"]["rellm"]["ER"]["n"] == 2


@pytest.mark.e2e
@pytest.mark.parametrize("recipe,split,test_sets", [("esd", "official", ["test"]),
                                                     ("msp_podcast", "official", ["test1", "test2"])])
def test_dry_run_trains_a_small_blsp_emo_without_the_checkpoint(dry_env, recipe, split, test_sets):
    root, env = dry_env
    folder, seconds, log = run_recipe(root, env, recipe)
    print(f"{recipe} dry run: {seconds:.0f} s")
    assert "BLSP_EMO is not set" in log
    check_outputs(folder, split, test_sets)
    blsp = json.loads((folder / "exp_dry" / "blsp_emo" / split / "seed1" / "final" / "model.json").read_text())
    assert "imported_from" not in blsp and blsp["model"]["llm"].endswith("smollm2-135m-instruct")
    # the paper config's fixed widths against these (whisper-tiny.en) features: an error at start-up saying what to set
    from rellm.bin.train import resolve_auto_dims
    from rellm.utils.config import ConfigError

    feats = {"feats_dir": str(folder / "dump_dry" / split), "train_set": "train"}
    with pytest.raises(ConfigError, match=r"speech_dim is 1280 but the Whisper states .* are 384 wide.*--speech_dim=auto"):
        resolve_auto_dims(folder / "conf" / "train_blsp_emo.yaml", feats)
    assert resolve_auto_dims(folder / "conf" / "train_blsp_emo.yaml", {**feats, "speech_dim": "auto"})["speech_dim"] == 384


@pytest.mark.e2e
def test_a_new_recipe_runs_its_dry_run_without_hand_edits(dry_env, tmp_path):
    """tools/new_recipe.sh NAME corpus=esd makes a complete recipe: its dry run passes as made."""
    _, env = dry_env
    new_recipe_sh = checkout_for_new_recipes(tmp_path / "checkout")
    made = subprocess.run([str(new_recipe_sh), "demo", "corpus=esd"], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    folder, seconds, log = dry_run(tmp_path / "checkout" / "egs" / "demo", env)
    print(f"new recipe (esd) dry run: {seconds:.0f} s")
    assert "BLSP_EMO is not set" in log
    check_outputs(folder, "official", ["test"])
