"""rellm.data.pipelines: the stage-4 dataset (manifest + feature cache + responses) and its A/V/D targets."""
import pytest
import torch

from rellm.data.pipelines import build_alignment_dataset, choose_avd_target
from rellm.models.chat_layout import ChatLayout
from rellm.testing.toy_models import toy_tokenizer
from rellm.utils.stage import UserError

ANNOTATION = {"u1": [0.1, 0.2, 0.3], "u2": [0.9, 0.8, 0.7], "u3": None}
PREDICTION = {"u1": [0.5, 0.5, 0.5], "u2": [0.4, 0.6, 0.2], "u3": [1.3, -0.2, 0.6]}  # u3 outside [0, 1]


class FakeCache:
    """The FeatureCache interface: embedding, annotation and prediction are three different things."""

    def keys(self):
        return sorted(PREDICTION)

    def whisper(self, utt_id):
        return torch.full((50, 4), float(utt_id[1]), dtype=torch.float16)

    def emotion_embedding(self, utt_id):
        return torch.full((6,), 10.0 + int(utt_id[1]))

    def avd_annotation(self, utt_id):
        return None if ANNOTATION[utt_id] is None else torch.tensor(ANNOTATION[utt_id])

    def avd_prediction(self, utt_id):
        return torch.tensor(PREDICTION[utt_id])


@pytest.fixture(scope="module")
def layout():
    return ChatLayout(toy_tokenizer())


def _build(layout, said=None, **kwargs):
    manifest = {u: {"duration": 2.0, "transcript": "Wait, you mean the concert is tonight?", "emotion": e,
                    # the manifest's own fields are not where the target comes from: the cache is
                    "arousal": None, "valence": None, "dominance": None}
                for u, e in (("u1", "happy"), ("u2", "sad"), ("u3", "angry"))}
    responses = [{"utt_id": u, "emotion": manifest[u]["emotion"], "transcript": manifest[u]["transcript"],
                  "instruction": "Continue: ", "output": "That sounds wonderful.", "early_stop": False}
                 for u in manifest]
    for utt_id, transcript in (said or {}).items():  # stage 1 re-run after stage 3
        manifest[utt_id]["transcript"] = transcript
    return build_alignment_dataset(manifest, responses, FakeCache(), layout, system_prompt="S", instruction="I",
                                   **kwargs)


def _targets(dataset):
    dataset.set_output_keys(["id", "avd_target"])
    return {item["id"]: item["avd_target"].tolist() for item in dataset}


def test_encoder_means_the_encoder_even_where_an_annotation_exists(layout):
    dataset, report = _build(layout, need_avd_target=True, avd_source="encoder")
    targets = _targets(dataset)
    assert targets["u1"] == pytest.approx(PREDICTION["u1"]) and targets["u2"] == pytest.approx(PREDICTION["u2"])
    assert targets["u3"] == pytest.approx([1.0, 0.0, 0.6])  # the pseudo-label is clipped to [0, 1]
    assert report["avd_target"] == {"avd_source": "encoder", "annotation": 0, "encoder": 3}


def test_annotation_means_the_annotation_and_drops_the_unannotated(layout):
    dataset, report = _build(layout, need_avd_target=True, avd_source="annotation")
    assert _targets(dataset) == {"u1": pytest.approx(ANNOTATION["u1"]), "u2": pytest.approx(ANNOTATION["u2"])}
    assert report["dropped"] == {"no_avd_annotation": {"count": 1, "examples": ["u3"]}}
    assert report["kept"] == 2 and report["total_dropped"] == 1
    assert report["avd_target"] == {"avd_source": "annotation", "annotation": 2, "encoder": 0}


def test_auto_takes_the_annotation_else_the_prediction_and_counts_which(layout):
    dataset, report = _build(layout, need_avd_target=True, avd_source="auto")
    targets = _targets(dataset)
    assert targets["u1"] == pytest.approx(ANNOTATION["u1"]) and targets["u3"] == pytest.approx([1.0, 0.0, 0.6])
    assert report["avd_target"] == {"avd_source": "auto", "annotation": 2, "encoder": 1}


def test_unknown_avd_source_is_a_user_error(layout):
    with pytest.raises(ValueError, match="renamed: use annotation"):
        _build(layout, need_avd_target=True, avd_source="manifest")
    with pytest.raises(ValueError, match="annotation, encoder, auto"):
        choose_avd_target(None, [0.5] * 3, "pseudo")


def test_the_emotion_embedding_is_the_adapter_input_and_only_that(layout):
    dataset, report = _build(layout, with_emotion=True, need_emotion_label=True)
    dataset.set_output_keys(["id", "emotion_embedding", "emotion_id", "whisper_len", "label_start"])
    item = dataset[0]
    assert item["emotion_embedding"].tolist() == [11.0] * 6 and item["emotion_id"] == 1  # happy
    assert item["whisper_len"] == 50 and "avd_target" not in report
    with pytest.raises(KeyError):
        dataset.set_output_keys(["avd_target"])
        dataset[0]


def test_avd_target_without_the_emotion_embedding(layout):
    # the ablation "A/V/D loss without the emotion embedding": emotion_dim 0, lambda_dim > 0
    dataset, _ = _build(layout, with_emotion=False, need_avd_target=True, avd_source="auto")
    assert _targets(dataset)["u2"] == pytest.approx(ANNOTATION["u2"])
    with pytest.raises(KeyError):
        dataset.set_output_keys(["emotion_embedding"])
        dataset[0]


def test_ser_turns_add_question_answer_items_on_the_same_audio(layout):
    ser = {"system_prompt": "P", "instruction": "Which emotion? ", "answer_template": "It is {emotion}.",
           "fraction": 1.0}
    dataset, report = _build(layout, with_emotion=True, ser_turns=ser)
    assert report["kept"] == 3 and report["ser_turns"] == 3
    dataset.set_output_keys(["id", "whisper", "emotion_embedding", "prompt_ids", "tail_ids", "label_start",
                             "emotion_id"])
    items = {item["id"]: item for item in dataset}
    assert sorted(items) == ["u1", "u1#ser", "u2", "u2#ser", "u3", "u3#ser"]
    tok = layout.tokenizer
    for u, emotion in (("u1", "happy"), ("u2", "sad")):
        turn, ser_turn = items[u], items[f"{u}#ser"]
        assert torch.equal(turn["whisper"], ser_turn["whisper"])  # the same audio and embedding
        assert torch.equal(turn["emotion_embedding"], ser_turn["emotion_embedding"])
        assert turn["emotion_id"] == ser_turn["emotion_id"]
        assert "Which emotion?" in tok.decode(ser_turn["prompt_ids"]) and "Which emotion?" not in tok.decode(
            turn["prompt_ids"])
        answer = tok.decode(ser_turn["tail_ids"][ser_turn["label_start"]:])
        assert answer.startswith(f"It is {emotion}.")
        assert tok.decode(turn["tail_ids"][turn["label_start"]:]).startswith("That sounds wonderful.")
    # a fraction picks a fixed subset of the utterances
    _, half = _build(layout, ser_turns={**ser, "fraction": 0.5})
    _, again = _build(layout, ser_turns={**ser, "fraction": 0.5})
    assert 0 <= half["ser_turns"] <= 3 and half["ser_turns"] == again["ser_turns"]
    _, none = _build(layout, ser_turns={**ser, "fraction": 0.0})
    assert none["ser_turns"] == 0


def test_responses_written_for_another_transcript_stop_training(layout):
    with pytest.raises(UserError, match="u2 was written for 'Wait, you mean the concert is tonight\\?', but the "
                                        "manifest now says 'A storm rolled over the hills.'"):
        _build(layout, said={"u2": "A storm rolled over the hills."})
    _, report = _build(layout, said={"u2": "  Wait, you mean the concert is tonight?  "})  # stripped alike
    assert report["kept"] == 3
