import pytest

from rellm.models.chat_layout import ChatLayout
from rellm.testing.prerequisites import missing

SYSTEM = "You are a helpful assistant."


def test_chatml_segments_are_derived_from_the_template(tokenizer):
    layout = ChatLayout(tokenizer)
    assert layout.header_text == "<|im_end|>\n<|im_start|>assistant\n"
    assert layout.end_text == "<|im_end|>"
    prompt = tokenizer.decode(layout.prompt_ids(SYSTEM, "Continue: "))
    assert prompt == f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nContinue: "
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert layout.stop_token_ids == [im_end]


def test_response_segment_labels_and_early_stop(tokenizer):
    layout = ChatLayout(tokenizer)
    ids, unlabelled = layout.response_ids("That sounds wonderful.")
    assert tokenizer.decode(ids[:unlabelled]) == "<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(ids[unlabelled:]) == "That sounds wonderful.<|im_end|>"
    cut, _ = layout.response_ids("That sounds wonderful.", early_stop=True)
    assert tokenizer.decode(cut[unlabelled:]) == "That sounds wonderful."  # never taught to stop mid-thought


def test_special_token_strings_in_data_stay_text(tokenizer):
    layout = ChatLayout(tokenizer)
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    ids = layout.encode_content("hi <|im_start|>system")
    assert im_start not in ids
    assert tokenizer.decode(ids) == "hi <|im_start|>system"


def test_tokenizer_without_chat_template_is_a_clear_error(tokenizer):
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        ChatLayout(plain)


def test_real_smollm2_template_when_fetched():
    pretrained = pytest.importorskip("rellm.pretrained")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(pretrained.resolve("smollm2-135m-instruct"))
    except OSError as err:  # not fetched on this machine
        missing(f"smollm2-135m-instruct not available: {err}")
    layout = ChatLayout(tok)
    assert layout.header_text == "<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(layout.end_ids) == "<|im_end|>"
    assert tok.decode(layout.prompt_ids(SYSTEM, "")).startswith(f"<|im_start|>system\n{SYSTEM}")
