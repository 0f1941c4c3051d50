import pytest

from rellm.training.toy import toy_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return toy_tokenizer()
