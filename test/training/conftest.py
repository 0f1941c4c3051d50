import pytest

from rellm.training.toy import save_toy_llm, toy_tokenizer, write_toy_recipe_data


@pytest.fixture(scope="session")
def tokenizer():
    return toy_tokenizer()


@pytest.fixture(scope="session")
def toy_recipe(tmp_path_factory):
    """Stage 1-3 outputs (8 train + 8 valid utterances, random features) and a toy LLM folder."""
    root = tmp_path_factory.mktemp("toy_recipe")
    write_toy_recipe_data(root, num_utts=8, speech_dim=24, emotion_dim=8)
    save_toy_llm(root / "llm")
    return root
