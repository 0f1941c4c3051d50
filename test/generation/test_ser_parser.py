import pytest

from rellm.generation.ser_parser import UNKNOWN, parse_ser_answer


@pytest.mark.parametrize(
    "answer, label",
    [
        ("The emotion tone of the speech provided is neutral.", "neutral"),
        ("Neutral", "neutral"),
        ("sad", "sad"),
        ("Happy!", "happy"),
        ("The speaker sounds angry.", "angry"),
        ("The speaker seems surprised.", "surprise"),
        ("Surprise.", "surprise"),
        # synonyms
        ("The speaker sounds excited.", "happy"),
        ("I would say joy.", "happy"),
        ("The tone is joyful and cheerful.", "happy"),
        ("The speaker is furious.", "angry"),
        ("The speaker sounds frustrated.", "angry"),
        ("There is sorrow in the voice.", "sad"),
        ("The speaker sounds shocked.", "surprise"),
        ("The speaker feels down.", "sad"),
        ("There is no emotion in the voice.", "neutral"),
        # negations
        ("The speaker is not angry, but sad.", "sad"),
        ("The speaker doesn't sound happy; they sound frustrated.", "angry"),
        ("It is sad. Definitely sad, not happy.", "sad"),
        ("The speaker sounds surprised rather than angry.", "surprise"),
        # multiple mentions
        ("The emotion is angry. Anger is shown by the loud voice.", "angry"),
        ("The speaker is happy, although the words are sad.", "happy"),
        ("Sad or angry.", "sad"),
        ("I'm happy to help! The emotion tone of the speech is sad.", "sad"),
        # an echoed option list says nothing
        ("Select from the following options: neutral, sad, angry, happy, or surprise. The answer is sad.", "sad"),
        ("Answer: 'angry'", "angry"),
    ],
)
def test_realistic_answers(answer, label):
    assert parse_ser_answer(answer) == label


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "not angry",
        "The speaker is neither angry nor sad.",
        "I am not sure.",
        "I'm down to help with that.",  # "down" without a verdict cue is not an emotion
        "neutral, sad, angry, happy, or surprise",
        "I cannot identify emotions from audio.",
    ],
)
def test_answers_without_a_label_are_unknown(answer):
    assert parse_ser_answer(answer) == UNKNOWN
