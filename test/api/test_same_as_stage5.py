"""The responder answers an utterance exactly as the recipe does: stage 2 (features) + stage 5 (inference) on the
same wav files give the same response, emotion-head label and SER answer."""
import json

import pytest

from rellm.data.emotions import EMOTIONS
from rellm.utils.io import read_jsonl


@pytest.fixture(scope="module")
def stage5(tmp_path_factory, speech_wavs, bases, rellm_exp, repo_root):
    """Stages 2 and 5 of the mini configs on the three utterances, with the toy experiment's base models."""
    from rellm.bin import extract, infer

    _, whisper, emotion = bases
    root = tmp_path_factory.mktemp("stage5")
    data = root / "data"
    data.mkdir()
    manifest = {p.stem: {"wav": f"{{data_root}}/{p.name}", "duration": 2.0, "transcript": "x", "emotion": p.stem,
                         "arousal": None, "valence": None, "dominance": None, "speaker": "s", "gender": "F"}
                for p in speech_wavs}
    (data / "test.json").write_text(json.dumps(manifest))
    (data / "data_root.txt").write_text(str(speech_wavs[0].parent) + "\n")
    conf = repo_root / "egs" / "mini" / "conf"
    args = [str(conf / "extract.yaml"), "--manifest", str(data / "test.json"), "--output_dir", str(root / "dump"),
            "--whisper", str(whisper), "--emotion_encoder", str(emotion), "--batch_size", "3"]
    extract.main(args)
    extract.main(args + ["--merge", "true"])
    # the experiment's final/ records the window stage 2 used (the mini config's 8 s), as stage 4 does
    assert json.loads((root / "dump" / "features.json").read_text())["whisper_window_seconds"] == 8.0
    records = {}
    for penalty in (1.0, 1.3):  # the mini recipe's plain greedy decoding; a repetition penalty (paper recipes: 1.1)
        out = root / f"infer_{penalty}"
        args = [str(conf / "infer.yaml"), "--system=rellm", f"--model_dir={rellm_exp}",
                f"--manifest={data / 'test.json'}", f"--feats_dir={root / 'dump'}", f"--output_dir={out}",
                "--dtype=float32", "--batch_size=1", "--response_max_new_tokens=8", f"--repetition_penalty={penalty}"]
        infer.main(args)
        infer.main(args + ["--merge=true"])
        records[penalty] = {r["utt_id"]: r for r in read_jsonl(out / "responses.jsonl")}
    return records


def test_responder_equals_stage5_on_the_same_utterances(stage5, responder, speech_wavs):
    assert sorted(stage5[1.0]) == sorted(p.stem for p in speech_wavs)
    one_by_one = [responder.respond(p, max_new_tokens=8, with_ser_answer=True) for p in speech_wavs]
    batch = responder.respond(list(speech_wavs), max_new_tokens=8, with_ser_answer=True)
    for path, single, batched in zip(speech_wavs, one_by_one, batch):
        record = stage5[1.0][path.stem]
        for reply in (single, batched):
            assert reply.response == record["response"], path.name
            assert reply.emotion == record["ser_head_pred"] and reply.emotion in EMOTIONS, path.name
            assert reply.ser_answer == record["ser_output"], path.name
            assert reply.ser_answer_emotion == record["ser_pred"], path.name
    # not a vacuous match: the three utterances are answered differently
    assert len({r.response for r in one_by_one}) == 3


def test_with_the_recipe_decoding_keys_it_equals_stage5_with_a_repetition_penalty(stage5, rellm_exp, speech_wavs):
    from rellm import Responder
    from rellm.responder import ResponderError

    penalised = Responder.from_pretrained(rellm_exp, device="cpu", decoding={"repetition_penalty": 1.3})
    replies = penalised.respond(list(speech_wavs), max_new_tokens=8, with_ser_answer=True)
    for path, reply in zip(speech_wavs, replies):
        record = stage5[1.3][path.stem]
        assert (reply.response, reply.ser_answer, reply.emotion) == (record["response"], record["ser_output"],
                                                                     record["ser_head_pred"]), path.name
    # the penalty changes the text (so the match above is not the plain decoding's)
    assert [stage5[1.3][p.stem]["ser_output"] for p in speech_wavs] != [stage5[1.0][p.stem]["ser_output"]
                                                                         for p in speech_wavs]
    with pytest.raises(ResponderError, match="unknown decoding key"):
        Responder.from_pretrained(rellm_exp, decoding={"top_k": 5})
