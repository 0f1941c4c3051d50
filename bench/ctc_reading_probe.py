"""Can an adapter trained on a recipe's step-1 speech read words it never heard? One JSON object per line.

    python bench/ctc_reading_probe.py egs/mini --epochs 20      # the mini recipe after stages 1-2, about 4 min

A fresh speech adapter is trained with the CTC warm-up of stage 4 (``rellm.training.ctc_warmup``: the frozen
LLM's input embeddings as the output layer, no LLM forward) on the step-1 train set until it transcribes it,
then best-path decoded on held-out sets. For each set the line gives the content-word recall of the decoded
text against the transcript (``rellm.scoring.response_words.word_recall``: the response-words measure with
the CTC transcript as the response) and a few examples. Held-out sentences built from the step-1 vocabulary
measure what the adapter learned; the SER corpus's own sentences measure whether it reads new words, which is
what the speech-LLMs would need to answer what was said (egs/mini/README.md, the same-response target).
Nothing here is stage 4's configuration: the probe isolates the adapter's reading.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe_dir", help="a recipe folder after stages 1-2 (its data/ and dump/)")
    parser.add_argument("--train_set", default="mini_asr/train", help="the step-1 set, under data/ and dump/")
    parser.add_argument("--eval_sets", nargs="+",
                        default=["mini_asr/train", "mini_asr/valid", "official/valid", "official/test"])
    parser.add_argument("--llm", default="smollm2-135m-instruct")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_utterances", type=int, default=80, help="per evaluation set (sorted ids)")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num_threads", type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None):
    from rellm.data.manifest import read_manifest
    from rellm.features.cache import open_feature_cache
    from rellm.models.speech_llm import SpeechLLM
    from rellm.scoring.response_words import word_recall
    from rellm.training.ctc_warmup import ctc_items, greedy_ctc_tokens, train_ctc_warmup

    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    root = Path(args.recipe_dir)

    def load(name):
        return read_manifest(root / "data" / f"{name}.json"), open_feature_cache(root / "dump" / name)

    manifest, cache = load(args.train_set)
    speech_dim = cache.whisper(next(iter(sorted(manifest)))).shape[-1]
    model = SpeechLLM(args.llm, speech_dim=speech_dim, emotion_dim=0, llm_dtype="auto")
    model.eval()
    items, skipped = ctc_items(manifest, cache, model.tokenizer, model.adapter.output_lengths)
    start = time.time()

    def on_epoch(epoch, loss):
        print(json.dumps({"epoch": epoch, "ctc_loss": round(loss, 4), "seconds": round(time.time() - start)}),
              flush=True)

    print(json.dumps({"train_set": args.train_set, "utterances": len(items), "skipped": skipped}), flush=True)
    _, blank = train_ctc_warmup(model, items, cache, args.epochs, args.lr, args.batch_size, args.seed, on_epoch)
    for name in args.eval_sets:
        manifest, cache = load(name)
        recalls, examples = [], []
        for utt_id in sorted(manifest)[: args.max_utterances]:
            transcript = manifest[utt_id]["transcript"]
            decoded = model.tokenizer.decode(greedy_ctc_tokens(model, cache.whisper(utt_id).float(), blank)).strip()
            recall = word_recall(transcript, decoded)
            if recall is not None:
                recalls.append(recall)
            if len(examples) < args.examples:
                examples.append([transcript, decoded])
        mean = sum(recalls) / len(recalls) if recalls else None
        print(json.dumps({"set": name, "utterances": len(recalls),
                          "content_word_recall": None if mean is None else round(mean, 3), "examples": examples}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
