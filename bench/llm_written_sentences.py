"""Sentences with a broad vocabulary, written by a text LLM, for a synthetic step-1 set. One per line.

    python bench/llm_written_sentences.py --out $PWD/sentences.txt --num_words 2048   # SmolLM2-135M: 826, 10 min
    cd egs/mini && ./run.sh --stage 1 --stop_stage 2 \
        --step1_prepare_args "--sentences_file=$PWD/../../sentences.txt --num_sentences=825 --valid_sentences=40"
    (a recipe folder that ran with the templates: first rm -r data/mini_asr dump/mini_asr downloads/mini_asr)

The mini recipe's step-1 sentences are templates over a few dozen words, so an adapter trained on them
can only read those words (bench/README.md#reading-probe). This writes the broad-vocabulary alternative
without any text corpus: the LLM is asked for one everyday sentence per word, the words being the LLM
tokenizer's whole-word tokens in id order (byte-level BPE ids follow the merge order, i.e. roughly the
word frequency of the tokenizer's training text), lower-case letters only, at least ``--min_letters``
long. Replies are sampled (``--temperature``, ``--top_p``, ``--seed``), then cleaned: the first sentence
after any "Here is ...:" preamble, quotes stripped; a reply that talks about the task (sentence, word,
AI, assist), holds digits or markup, or has fewer than 4 or more than 16 words is dropped and counted.
A JSON line on stdout gives the prompts, the sentences kept and the drops by reason. Nothing here
looks at the SER corpus; stage 1 removes any of its sentences and counts them.
"""
import argparse
import json
import re
from collections import Counter

import torch

PROMPT = 'Write one short everyday sentence with the word "{word}". Reply with the sentence only.'
TASK_TALK = re.compile(r'sentence|\bAI\b|assist|\bword\b', re.IGNORECASE)
MARKUP = re.compile(r'[\d"()\[\]*#]')
SPEAKABLE = re.compile(r"[A-Za-z ,.'!?\-]+")


def frequent_words(tokenizer, num_words, min_letters=4):
    """The first ``num_words`` whole-word tokens of a byte-level BPE vocabulary, in id order."""
    words = []
    for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if token.startswith("\u0120") and re.fullmatch(f"[a-z]{{{min_letters},}}", token[1:]):
            words.append(token[1:])
            if len(words) == num_words:
                break
    return words


def clean_reply(reply):
    """``(sentence, None)`` or ``(None, drop reason)`` for one LLM reply."""
    text = reply.strip().split("\n")[0].strip()
    if ":" in text:  # "Here's a sentence: ..." -> what follows the colon
        text = text.split(":", 1)[1].strip()
    text = text.strip('"\u201c\u201d ')
    first = re.match(r"(.+?[.!?])(\s|$)", text)
    if not first:
        return None, "no_sentence_end"
    sentence = first.group(1).strip('"\u201c\u201d ')
    if TASK_TALK.search(sentence):
        return None, "talks_about_the_task"
    if MARKUP.search(sentence) or not SPEAKABLE.fullmatch(sentence):
        return None, "digits_or_markup"
    if not 4 <= len(sentence.split()) <= 16:
        return None, "length"
    return sentence, None


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="text file to write, one sentence per line")
    parser.add_argument("--llm", default="smollm2-135m-instruct", help="rellm.pretrained name or local HF folder")
    parser.add_argument("--num_words", type=int, default=768, help="prompts: one per frequent word")
    parser.add_argument("--min_letters", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=28)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top_p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None):
    from tqdm import tqdm

    from rellm.pretrained.loaders import load_causal_lm

    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    model, tokenizer = load_causal_lm(args.llm)
    tokenizer.padding_side = "left"
    words = frequent_words(tokenizer, args.num_words, args.min_letters)
    kept, seen, drops = [], set(), Counter()
    for start in tqdm(range(0, len(words), args.batch_size), desc="sentences", unit="batch"):
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": PROMPT.format(word=w)}], tokenize=False,
                                                 add_generation_prompt=True) for w in words[start:start + args.batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=True, temperature=args.temperature,
                                 top_p=args.top_p, pad_token_id=tokenizer.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:]:
            sentence, reason = clean_reply(tokenizer.decode(row, skip_special_tokens=True))
            if sentence is not None and sentence.lower() in seen:
                sentence, reason = None, "duplicate"
            if sentence is None:
                drops[reason] += 1
                continue
            seen.add(sentence.lower())
            kept.append(sentence)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in kept))
    print(json.dumps({"out": args.out, "prompts": len(words), "kept": len(kept), "dropped": dict(drops)}))


if __name__ == "__main__":
    main()
