"""The released decoding settings in stages 3 and 5: the paper recipes decode with Qwen-7B-Chat's repetition penalty
(docs/released_code.md#decoding), the mini recipe greedily; the options reach the decoder and the fingerprints."""
import json
from pathlib import Path

import pytest
import torch

from rellm.bin import infer, respond
from rellm.generation import respond_stage
from rellm.generation.runtime import build_decoder, decoding_fingerprint, decoding_options
from rellm.utils.config import load_config
from rellm.utils.stage import OptionsChangedError

EGS = Path(__file__).resolve().parents[2] / "egs"
PAPER = ("TEMPLATE", "iemocap", "esd", "msp_podcast")
NEEDED = {
    "respond": {"manifest": "m.json", "output_dir": "o"},
    "infer": {"system": "text_only", "model_dir": "e", "manifest": "m.json", "feats_dir": "d", "output_dir": "o"},
}
DECODING_KEYS = ("repetition_penalty", "repetition_penalty_context", "do_sample", "temperature", "top_k", "top_p",
                 "sampling_seed")


def _conf(recipe, stage):
    return load_config(EGS / recipe / "conf" / f"{stage}.yaml", NEEDED[stage])


@pytest.mark.parametrize("recipe", PAPER)
def test_paper_recipes_decode_as_released(recipe):
    teacher, systems = _conf(recipe, "respond"), _conf(recipe, "infer")
    # the teacher's prompt goes to generate as input_ids: the penalty counts it; stage 5's as inputs_embeds
    assert decoding_options(teacher) == decoding_options({**teacher, "repetition_penalty_context": "prompt"})
    assert decoding_fingerprint(teacher) == {"repetition_penalty": 1.1, "repetition_penalty_context": "prompt"}
    assert decoding_fingerprint(systems, "reply") == {"repetition_penalty": 1.1, "repetition_penalty_context": "reply"}
    assert not teacher["do_sample"] and not systems["do_sample"]  # greedy, as released
    assert (teacher["top_p"], teacher["top_k"]) == (0.8, 0)  # Qwen-7B-Chat's values, used only when sampling
    assert (systems["top_p"], systems["top_k"], systems["temperature"]) == (0.5, 0, 1.0)  # generate.py's defaults


def test_the_mini_recipe_keeps_plain_greedy_and_its_fingerprints():
    teacher = _conf("mini", "respond")
    assert decoding_fingerprint(teacher) == {} and decoding_fingerprint(_conf("mini", "infer"), "reply") == {}
    # the stage-3 fingerprint of the mini config is the one a config without the new keys had
    tasks = respond_stage.teacher_tasks(teacher)
    without = {k: v for k, v in teacher.items() if k not in DECODING_KEYS}
    assert respond_stage.options(teacher, tasks) == respond_stage.options(without, tasks)
    assert not set(DECODING_KEYS) & set(respond_stage.options(teacher, tasks))
    penalised = respond_stage.options({**teacher, "repetition_penalty": 1.1}, tasks)
    assert penalised["repetition_penalty"] == 1.1 and penalised["repetition_penalty_context"] == "prompt"
    sampled = respond_stage.options({**teacher, "do_sample": True, "top_p": 0.8}, tasks)
    assert sampled["do_sample"] and sampled["top_p"] == 0.8 and "repetition_penalty" not in sampled


def test_penalty_context_prompt_or_reply():
    hp = {"decoding_backend": "hf", "cuda_graphs": False, "compile_decode": False, "min_new_tokens": 1}
    from rellm.testing.reference_decoding import tiny_causal_lm

    class Tok:
        pad_token_id = 0

        def get_vocab(self):
            return {}

    class Layout:
        stop_token_ids = (1,)

    llm = tiny_causal_lm("llama")
    rows = [[5, 6, 7], [8, 9]]
    assert build_decoder(llm, Tok(), Layout(), hp).penalty_ids(rows) is None  # no penalty: nothing to count
    teacher = build_decoder(llm, Tok(), Layout(), {**hp, "repetition_penalty": 1.1})
    systems = build_decoder(llm, Tok(), Layout(), {**hp, "repetition_penalty": 1.1}, "reply")
    assert teacher.penalty_ids(rows) == rows and systems.penalty_ids(rows) == [[7], [9]]
    with pytest.raises(ValueError, match="repetition_penalty_context"):
        decoding_options({"repetition_penalty_context": "everything"})


def _manifest(path):
    sentences = ["Can you set a timer for the oven?", "My sister is coming over tonight.",
                 "The package arrived at the door.", "I got the results of the test this morning."]
    manifest = {f"u{i}": {"wav": f"{{data_root}}/u{i}.wav", "duration": 1.5, "transcript": s, "emotion": "neutral",
                          "arousal": None, "valence": None, "dominance": None, "speaker": "s", "gender": "F"}
                for i, s in enumerate(sentences)}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_stage3_teacher_decodes_with_the_penalty_over_its_prompt(tmp_path, toy_llm_dir):
    """Stage 3's reply equals HF generate(input_ids=prompt, repetition_penalty) (the released teacher's call), and
    changing the penalty stops a finished stage (fingerprint)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rellm.generation.teacher import TeacherTask, build_prompts, select_utterances
    from rellm.models.chat_layout import ChatLayout
    from rellm.utils.io import read_jsonl

    conf = EGS / "mini" / "conf" / "respond.yaml"
    manifest = _manifest(tmp_path / "data" / "train.json")
    out = tmp_path / "out"
    base = [str(conf), f"--manifest={manifest}", f"--output_dir={out}", f"--teacher_llm={toy_llm_dir}",
            "--max_new_tokens=12", "--batch_size=2", "--tasks=[continuation]", "--repetition_penalty=1.5"]
    respond.main(base)
    respond.main([*base, "--merge=true"])
    got = {r["utt_id"]: r["output"] for r in read_jsonl(out / "raw" / "continuation.jsonl")}

    hp = load_config(conf, {"manifest": str(manifest), "output_dir": str(out)})
    tok = AutoTokenizer.from_pretrained(toy_llm_dir)
    llm = AutoModelForCausalLM.from_pretrained(toy_llm_dir, dtype=torch.float32).eval()
    layout = ChatLayout(tok)
    task = TeacherTask("continuation", hp["continuation_system_prompt"], hp["continuation_template"])
    utterances, _ = select_utterances(json.loads(manifest.read_text()), task)
    stops = sorted({*layout.stop_token_ids, tok.convert_tokens_to_ids("<|im_start|>")})
    expected, plain = {}, {}
    for utt_id, (ids, _, _) in build_prompts(layout, task, utterances).items():
        for penalty, store in ((1.5, expected), (1.0, plain)):
            new = llm.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               max_new_tokens=12, min_new_tokens=1, do_sample=False, num_beams=1,
                               repetition_penalty=penalty, eos_token_id=stops,
                               pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
            new = new[: next((i for i, t in enumerate(new) if t in stops), len(new))]
            store[utt_id] = tok.decode(new, skip_special_tokens=True).strip()
    assert got == expected
    assert got != plain  # the penalty changed the teacher's text: the test can fail
    with pytest.raises(OptionsChangedError, match="repetition_penalty"):
        respond.main([*base[:-1], "--repetition_penalty=1.2"])


def test_stage5_fingerprint_names_the_decoding_options(tmp_path, toy_llm_dir):
    from rellm.testing.toy_recipe import write_toy_recipe_data

    root = write_toy_recipe_data(tmp_path / "toy", num_utts=3, sets=("test",))
    out = tmp_path / "infer"
    args = [str(EGS / "mini" / "conf" / "infer.yaml"), "--system=text_only", f"--model_dir={tmp_path}",
            f"--manifest={root / 'data' / 'test.json'}", f"--feats_dir={root / 'dump' / 'test'}",
            f"--output_dir={out}", f"--text_llm={toy_llm_dir}", "--response_max_new_tokens=4",
            "--ser_max_new_tokens=3", "--batch_size=3"]
    infer.main(args)
    infer.main([*args, "--repetition_penalty=1.0"])  # the default value: the same fingerprint, skipped
    with pytest.raises(OptionsChangedError, match="repetition_penalty"):
        infer.main([*args, "--repetition_penalty=1.1"])
