"""Response words: the share of the transcript's content words a response repeats, and its chance level."""
import pytest

from rellm.scoring.response_words import (
    content_words,
    heard_coverage,
    main,
    paired_recall,
    response_words_metrics,
    word_recall,
    words,
)
from rellm.utils.io import atomic_write_json, write_jsonl


def test_content_words_drop_function_words_and_short_words():
    assert content_words("Can you set a timer for twenty minutes?") == {"set", "timer", "twenty", "minutes"}
    assert content_words("What is it?") == set()
    # curly apostrophes read like straight ones, and a contraction is one (function) word
    assert words("I\u2019ll call the BANK.") == {"i'll", "call", "the", "bank"}
    assert content_words("I\u2019ll call the BANK.") == {"call", "bank"}


def test_word_recall_counts_whole_words_case_ignored():
    transcript = "Can you set a timer for twenty minutes?"
    assert word_recall(transcript, "Sure, I'll set a Timer for you.") == pytest.approx(2 / 4)
    assert word_recall(transcript, "Of course, I'll set a timer for twenty minutes.") == 1.0
    # "timers" and "minute" are other words: a paraphrase scores lower than a repetition (only "set" counts)
    assert word_recall(transcript, "Timers are set in minute steps.") == pytest.approx(1 / 4)
    assert word_recall(transcript, "") == 0.0 and word_recall(transcript, None) == 0.0
    assert word_recall("Is it?", "Yes it is.") is None  # no content word: no figure


def _records(replies):
    sentences = ["Please call a taxi for nine o'clock.", "What should I cook with rice and carrots?",
                 "Tell me how to get to the train station.", "Is it?"]
    return {f"u{k}": {"transcript": sentences[k % 4], "response": replies(sentences[k % 4])} for k in range(8)}


def test_a_system_that_repeats_the_words_is_far_above_its_chance_level():
    m = response_words_metrics(_records(lambda s: f"Sure. {s}"))
    assert m["n"] == 8 and m["n_scored"] == 6  # the two "Is it?" utterances have no content word
    assert m["recall"] == 1.0
    # against the other sentences' words: "taxi ... nine" shares nothing with the two other sentences
    assert m["recall_other_sentences"] == 0.0


def test_one_reply_to_everything_is_at_its_chance_level():
    m = response_words_metrics(_records(lambda s: "I'm so sorry, you sound really sad. I'm here for you."))
    assert m["recall"] == 0.0 and m["recall_other_sentences"] == 0.0
    # a generic reply that happens to share a word with one sentence: recall and chance level move together
    m = response_words_metrics(_records(lambda s: "Let me help you get there."))
    assert m["recall"] == pytest.approx((1 / 4) * 2 / 6)  # "get" is 1 of the 4 content words of the station sentence
    # chance: the taxi and the rice utterances' reply shares 1/4 with the station sentence and 0 with the other one
    # (mean 1/8); the station utterances' reply shares nothing with the taxi and rice sentences
    assert m["recall_other_sentences"] == pytest.approx((4 * (1 / 8) + 2 * 0) / 6)
    assert response_words_metrics({}) is None


def test_paired_recall_keeps_the_utterances_both_systems_have_a_figure_for():
    ref = _records(lambda s: s)
    base = _records(lambda s: "Okay.")
    a, b = paired_recall(ref, base, sorted(ref))
    assert len(a) == len(b) == 6 and a.mean() == 1.0 and b.mean() == 0.0


def test_command_line_prints_the_figures_of_stage_5_and_stage_3_files(tmp_path, capsys):
    responses = tmp_path / "responses.jsonl"
    write_jsonl(responses, [{"utt_id": u, **r} for u, r in _records(lambda s: f"Sure. {s}").items()])
    expected = tmp_path / "expected.jsonl"  # stage 3: the reply is "output"
    write_jsonl(expected, [{"utt_id": "a", "transcript": "Please call a taxi.", "output": "I will call a cab."}])
    assert main([str(responses), str(expected)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{responses}: 6 of 8 utterances; response words 100.0 % (other sentences' words: 0.0 %)"
    # one sentence: no other sentence to measure the chance level against
    assert out[1] == f"{expected}: 1 of 1 utterances; response words 50.0 % (other sentences' words: no other sentence)"


def test_heard_coverage_counts_distinct_content_words_met_in_training():
    test = ["Please call a taxi for nine o'clock.", "Call the bank."]  # call, taxi, nine, o'clock, bank
    heard = ["The bus driver called the bank at nine.", "A taxi?"]  # "called" is not "call"
    assert heard_coverage(test, heard) == (3, 5)
    assert heard_coverage(test, []) == (0, 5)


def test_command_line_reports_how_many_test_words_the_training_speech_held(tmp_path, capsys):
    responses = tmp_path / "responses.jsonl"
    write_jsonl(responses, [{"utt_id": "a", "transcript": "Please call a taxi.", "response": "Okay."},
                            {"utt_id": "b", "transcript": "Water the roses.", "response": "Okay."}])
    step1 = tmp_path / "step1_train.json"  # a stage-1 manifest
    atomic_write_json(step1, {"x": {"wav": "{data_root}/x.wav", "transcript": "I planted roses.", "duration": 1.0,
                                    "emotion": None}})
    step2 = tmp_path / "expected.jsonl"  # JSON lines are read too
    write_jsonl(step2, [{"utt_id": "y", "transcript": "The taxi was late.", "output": "Sorry."}])
    assert main([str(responses), "--heard", str(step1), str(step2)]) == 0
    out = capsys.readouterr().out.strip()
    # content words: call, taxi, water, roses; heard: taxi, roses
    assert out.endswith("; content words heard in training: 2 of 4 (50 %)"), out
