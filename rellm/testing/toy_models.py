"""Tiny random-weight stand-ins (tokenizer, LLM, SpeechLLM) for tests, smoke runs and benchmarks.

Nothing here is downloaded: a byte-level BPE tokenizer is trained in memory on a few
sentences and given a ChatML chat template, and the LLM is a 2-layer Llama with random
weights. ``rellm.testing.toy_recipe`` writes stage 1-3 outputs to train them on.
"""
from pathlib import Path

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TOY_SENTENCES = [
    "I can't believe you did that to me again.",
    "We finally got the keys to our new house today!",
    "The meeting has been moved to Thursday afternoon.",
    "My dog passed away last night and the house feels empty.",
    "Wait, you mean the concert is tonight?",
    "Continue the following text in a coherent style: ",
    "Continue the following sentence based on the conveyed emotion tone in a coherent style: ",
    "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion tone.",
    "That sounds wonderful, congratulations on your new home.",
    "I am so sorry for your loss, that must be really hard.",
    "It is okay to feel angry, let us talk about what happened.",
]


def toy_tokenizer(vocab_size=400):
    """A ChatML byte-level BPE tokenizer trained in memory (special tokens im_start, im_end, endoftext)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TOY_SENTENCES * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE
    )


def toy_llm(vocab_size, hidden_size=64, num_layers=2, seed=0, init_std=0.1):
    """A 2-layer Llama with random weights (SDPA attention).

    ``init_std`` 0.1 (not HF's 0.02) gives peaked, trained-like next-token distributions, so
    losses computed through the frozen toy LLM can move within a few optimizer steps.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=False, initializer_range=init_std,
    )
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def toy_speech_llm(tokenizer, emotion_dim=8, speech_dim=24, lora_scope="speech", nonzero_lora=True,
                   lora_dropout=0.0, seed=0):
    """A SpeechLLM over a fresh 2-layer random Llama, in eval mode.

    ``nonzero_lora`` draws the LoRA B matrices at random (peft starts them at zero), so that
    LoRA visibly changes outputs: what tests of partial LoRA and decoding need.
    """
    from rellm.models.speech_llm import SpeechLLM

    torch.manual_seed(seed)
    model = SpeechLLM(toy_llm(len(tokenizer), seed=seed), speech_dim=speech_dim, emotion_dim=emotion_dim,
                      tokenizer=tokenizer, lora_r=4, lora_alpha=8, lora_dropout=lora_dropout,
                      lora_target_modules=["q_proj", "v_proj", "down_proj"], lora_scope=lora_scope)
    if nonzero_lora:
        with torch.no_grad():
            for name, p in model.llm.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
    return model.eval()


def save_toy_llm(folder, hidden_size=64, num_layers=2):
    """Write a toy LLM + tokenizer as a local HF folder (what ``rellm.pretrained`` resolves names to)."""
    folder = Path(folder)
    tokenizer = toy_tokenizer()
    model = toy_llm(len(tokenizer), hidden_size, num_layers)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
