from rellm.generation.cleaning import CleaningReport, drop_reason


def test_each_rule_of_the_original_script():
    assert drop_reason("I'm sorry, but I cannot help with that.") == "refusal_cannot"
    assert drop_reason("I'm sorry, but I'm not sure what you mean.") == "refusal_not_sure"
    assert drop_reason("Well, As an AI language model, I have no feelings.") == "as_an_ai_language_model"
    assert drop_reason("Oh no. I'm sorry, but I don't know.") == "sorry_but_i"
    assert drop_reason("Hmm, I'm not sure what you are asking.") == "not_sure_what_you"
    assert drop_reason("i'm not sure what you are asking.") is None  # rule 5 is case-sensitive, as in the original
    assert drop_reason("   ") == "empty"


def test_curly_apostrophes_do_not_dodge_the_rules():
    assert drop_reason("I\u2019m sorry, but I cannot do that.") == "refusal_cannot"


def test_good_outputs_are_kept_verbatim_and_drops_are_counted():
    records = [
        {"utt_id": "a", "output": "That sounds wonderful, congratulations!"},
        {"utt_id": "b", "output": "As an AI language model, I cannot feel."},
        {"utt_id": "c", "output": "I'm sorry, but I cannot continue."},
        {"utt_id": "d", "output": ""},
        {"utt_id": "e", "output": "I'm so sorry to hear that. What happened?"},
    ]
    report = CleaningReport(max_examples=1)
    kept = list(report.filter(records))
    assert [r["utt_id"] for r in kept] == ["a", "e"]
    assert kept[0] is records[0]
    summary = report.as_dict()
    assert summary["kept"] == 2 and summary["total_dropped"] == 3
    assert {reason: slot["count"] for reason, slot in summary["dropped"].items()} == {
        "as_an_ai_language_model": 1, "empty": 1, "refusal_cannot": 1}
    assert summary["dropped"]["refusal_cannot"]["examples"] == [
        {"utt_id": "c", "output": "I'm sorry, but I cannot continue."}]


def test_extra_patterns_of_a_recipe_are_counted_under_their_own_reason():
    report = CleaningReport(extra_substrings=["as a helpful AI"])
    records = [{"utt_id": "a", "output": "I'm sorry for your loss, but As a Helpful AI, I can't."},
               {"utt_id": "b", "output": "That sounds lovely."}]
    assert [r["utt_id"] for r in report.filter(records)] == ["b"]
    assert report.as_dict()["dropped"] == {"extra:as a helpful AI": {"count": 1, "examples": [
        {"utt_id": "a", "output": "I'm sorry for your loss, but As a Helpful AI, I can't."}]}}
