import pytest

from rellm.testing.toy_models import toy_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return toy_tokenizer()
