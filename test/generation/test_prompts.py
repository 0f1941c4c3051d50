import pytest

from rellm.generation import prompts as P


def test_paper_strings_are_exact():
    assert P.SYSTEM_PLAIN == "You are a helpful assistant."
    assert P.SYSTEM_EMPATHETIC == (
        "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion tone."
    )
    assert P.TEACHER_EMOTION_INSTRUCTION == (
        "Continue the following sentence that reflects a '{emotion}' emotion tone in a coherent style: "
    )
    assert P.CONTINUATION_INSTRUCTION == "Continue the following text in a coherent style: "
    assert P.STUDENT_EMOTION_INSTRUCTION == (
        "Continue the following sentence based on the conveyed emotion tone in a coherent style: "
    )
    assert P.SER_INSTRUCTION == (
        "Please identify the emotion tone of the speech provided below. Select from the following options: "
        "neutral, sad, angry, happy, or surprise.\n\nSpeech: "
    )


def test_paper_template_appends_the_transcript_and_writes_the_label():
    text = P.render_user_turn(P.TEACHER_EMOTION_INSTRUCTION, "I lost my keys.", "angry")
    assert text == "Continue the following sentence that reflects a 'angry' emotion tone in a coherent style: I lost my keys."
    assert P.instruction_prefix(P.TEACHER_EMOTION_INSTRUCTION, "angry") == (
        "Continue the following sentence that reflects a 'angry' emotion tone in a coherent style: "
    )
    assert P.render_user_turn(P.CONTINUATION_INSTRUCTION, "Hello.") == (
        "Continue the following text in a coherent style: Hello."
    )


def test_mini_template_uses_the_emotion_words():
    text = P.render_user_turn(P.MINI_TEACHER_EMOTION_TEMPLATE, "Wait, it is tonight?", "surprise", P.EMOTION_ADJECTIVES)
    assert text == "I feel surprised. Wait, it is tonight?"
    assert P.instruction_prefix(P.MINI_TEACHER_EMOTION_TEMPLATE, "sad", P.EMOTION_ADJECTIVES) == "I feel sad. "
    # a template that puts the transcript in the middle keeps it as a literal field in the instruction
    assert P.instruction_prefix('"{transcript}" I am {emotion}.', "happy") == '"{transcript}" I am happy.'


def test_template_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown field"):
        P.check_template("I feel {emotions}. {transcript}")
    with pytest.raises(ValueError, match="needs an emotion label"):
        P.render_user_turn("I feel {emotion}.", "Hi.", None)
    with pytest.raises(ValueError, match="unknown emotion 'excited'"):
        P.render_user_turn("I feel {emotion}.", "Hi.", "excited")
