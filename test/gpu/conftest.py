"""GPU tests: every test here is marked ``gpu`` and skipped where no CUDA device is visible."""
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    for item in items:
        if "/test/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer():
    from rellm.testing.toy_models import toy_tokenizer

    return toy_tokenizer()
