"""Stage 3: a frozen text LLM writes the training targets ("expected responses", docs/method.md#expected-responses).

Two tasks per utterance, each a ChatML chat with the tokenizer's own template (``ChatLayout``):

* ``expected``: empathetic system prompt, user turn = emotion-conditioned template + transcript,
  the true emotion label written into the prompt (RE-LLM's expected response, training step 2);
* ``continuation``: plain system prompt, "Continue the following text ..." + transcript
  (the semantic-alignment target, training step 1).

Determinism across sharding: greedy decoding of a left-padded batch is, in exact arithmetic,
independent of the batch neighbours (masking + ``cumsum`` positions). In floating point it is not
quite: a different batch shape picks different matmul kernels and reduction orders, and a near-tie
can flip one argmax. So batches are planned over the *whole* manifest before sharding: utterances
sorted by prompt length (then id) are cut into fixed batches, and shards take whole batches. Every
utterance is therefore decoded in the same batch, with the same padding, whether the stage runs as
1 job or N, and the merged files are byte-identical by construction, not by luck.
"""
import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from rellm.data.emotions import EMOTIONS
from rellm.generation.prompts import check_template, instruction_prefix, render_user_turn
from rellm.utils.drop_report import DropReport
from rellm.utils.io import read_jsonl
from rellm.utils.torch_device import no_grad

logger = logging.getLogger(__name__)

TASKS = ("expected", "continuation")


@dataclass
class TeacherTask:
    """One kind of target: which system prompt and user-turn template, and whether it needs a label."""

    name: str
    system_prompt: str
    template: str
    emotion_words: dict = field(default_factory=dict)
    # Mini recipe only (a 135M teacher): per emotion, opening sentences the reply starts with and the teacher
    # continues; one variant per utterance, drawn from (opening_seed, utt_id). Empty: the paper's behaviour.
    openings: dict = field(default_factory=dict)
    opening_seed: int = 0

    def __post_init__(self):
        check_template(self.template, key=f"{self.name}_template")
        unknown = sorted(set(self.openings) - set(EMOTIONS))
        if unknown:
            raise ValueError(f"{self.name}_openings has unknown emotions {unknown}; use {', '.join(EMOTIONS)}")
        for emotion, variants in self.openings.items():
            if isinstance(variants, str) or not variants or not all(isinstance(v, str) and v.strip() for v in variants):
                raise ValueError(f"{self.name}_openings.{emotion} must be a non-empty list of non-empty strings")

    @property
    def needs_emotion(self):
        return "{emotion}" in self.template or bool(self.openings)

    def opening_for(self, utt_id, emotion):
        """The opening the reply to ``utt_id`` starts with ("" without openings for ``emotion``)."""
        variants = self.openings.get(emotion) or ()
        if not variants:
            return ""
        digest = hashlib.sha256(f"{self.opening_seed}:{utt_id}".encode()).digest()
        return variants[int.from_bytes(digest[:4], "little") % len(variants)].strip()


def compose_reply(opening, generated):
    """The reply: the opening (if any) followed by what the teacher wrote after it."""
    generated = generated.strip()
    return f"{opening} {generated}".strip() if opening else generated


def select_utterances(manifest, task):
    """``(kept {utt_id: entry}, DropReport)``: utterances the task can prompt for, the others counted by reason.

    Decided from the manifest alone, so the shard jobs and the merge step agree on it.
    """
    kept, report = {}, DropReport()
    for utt_id in sorted(manifest):
        entry = manifest[utt_id]
        transcript = (entry.get("transcript") or "").strip()
        if not transcript:
            report.drop("no_transcript", utt_id)
            continue
        if task.needs_emotion and entry.get("emotion") not in EMOTIONS:
            report.drop("no_emotion_label", utt_id)
            continue
        kept[utt_id] = entry
        report.keep()
    return kept, report


def build_prompts(layout, task, utterances):
    """``{utt_id: (prompt_ids, instruction, opening)}``: system turn + user turn + assistant header
    (+ the task's opening for the utterance's emotion, which the teacher then continues).

    The user turn is tokenised as content (special-token strings in a transcript stay text).
    """
    prompts = {}
    for utt_id, entry in utterances.items():
        transcript = entry["transcript"].strip()
        emotion = entry.get("emotion")
        user = render_user_turn(task.template, transcript, emotion, task.emotion_words)
        ids = list(layout.prefix_ids(task.system_prompt)) + layout.encode_content(user) + list(layout.header_ids)
        opening = task.opening_for(utt_id, emotion)
        if opening:
            ids += layout.encode_content(opening)
        prompts[utt_id] = (ids, instruction_prefix(task.template, emotion, task.emotion_words), opening)
    return prompts


def plan_batches(lengths, batch_size, seed=0):
    """``{batch_key: [utt_id, ...]}`` over ALL utterances, independent of sharding.

    Sorting by length keeps padding small; the batch order is then shuffled with a fixed seed so
    that contiguous shards (``shard_keys`` over the sorted keys) get a mix of short and long
    batches rather than shard 1 all short and shard N all long.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(lengths, key=lambda u: (lengths[u], u))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    random.Random(seed).shuffle(batches)
    width = max(6, len(str(len(batches))))
    return {f"b{i:0{width}d}": b for i, b in enumerate(batches)}


def left_pad(id_lists, pad_id, device=None):
    """``(ids [B, T], mask [B, T])`` left-padded (generation continues from the right edge)."""
    import torch

    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for i, x in enumerate(id_lists):
        if x:
            ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x) :] = 1
    return ids.to(device), mask.to(device)


@no_grad
def generate_for_prompts(llm, tokenizer, decoder, id_lists, max_new_tokens):
    """Replies for a batch of token-id prompts: ``[(text, hit_limit), ...]`` (the repetition penalty, if any,
    counts the prompt's tokens as seen: ``decoder.penalty_ids``)."""
    device = llm.get_input_embeddings().weight.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else decoder.pad_token_id
    ids, mask = left_pad(id_lists, pad_id, device)
    embeds = llm.get_input_embeddings()(ids)
    result = decoder.generate(embeds, mask, max_new_tokens=max_new_tokens, penalty_ids=decoder.penalty_ids(id_lists))
    texts = tokenizer.batch_decode(result.tokens, skip_special_tokens=True)
    return [(t.strip(), hit) for t, hit in zip(texts, result.hit_limit)]


def run_task(llm, tokenizer, decoder, task, prompts, utterances, batches, max_new_tokens, desc=None):
    """Decode the given batches; return records in the stage-3 format, sorted by utt_id."""
    records = []
    n_utts = sum(len(b) for b in batches.values())
    with tqdm(total=n_utts, desc=desc or task.name, unit="utt", dynamic_ncols=True) as bar:
        for key in sorted(batches):
            utt_ids = batches[key]
            outputs = generate_for_prompts(llm, tokenizer, decoder, [prompts[u][0] for u in utt_ids], max_new_tokens)
            for utt_id, (generated, hit_limit) in zip(utt_ids, outputs):
                entry = utterances[utt_id]
                text = compose_reply(prompts[utt_id][2], generated)
                records.append(
                    {
                        "utt_id": utt_id,
                        "emotion": entry.get("emotion"),
                        "transcript": entry["transcript"].strip(),
                        "instruction": prompts[utt_id][1],
                        "output": text,
                        "early_stop": bool(hit_limit),
                    }
                )
            bar.update(len(utt_ids))
    records.sort(key=lambda r: r["utt_id"])
    return records


def responses_for_other_transcripts(output_dir, manifest):
    """Stage-3 records under ``output_dir`` written for another transcript than ``manifest`` now has.

    Stage 3's fingerprint names the manifest's path, not its content, so a stage 1 re-run with other data
    at the same path and with the same utterance ids (``mini_asr`` with another ``sentences_file``, a corpus
    prepared again with other options) would find its responses finished and reuse them for utterances that
    now say something else. Returns ``[(file, utt_id, transcript in the record, transcript in the manifest)]``
    over the shard files, ``raw/`` and the merged files.
    """
    output_dir = Path(output_dir)
    found = []
    for path in sorted(output_dir.glob("shards/*.jsonl")) + sorted(output_dir.glob("raw/*.jsonl")) + sorted(
            output_dir.glob("*.jsonl")):
        for rec in read_jsonl(path):
            entry = manifest.get(rec.get("utt_id"))
            if entry is None or rec.get("transcript") is None:
                continue
            now = (entry.get("transcript") or "").strip()
            if rec["transcript"] != now:
                found.append((path, rec["utt_id"], rec["transcript"], now))
    return found


def generate_shard(stage, shard, tasks, manifest, hp):
    """Shard ``shard`` of every task: the teacher's raw replies to ``shards/<task>.<j>of<N>.jsonl``.

    ``stage``: the :class:`~rellm.utils.sharded_stage.ShardedStage`; ``hp``: the stage-3 config (teacher LLM,
    device, decoding and batching keys). Returns the done marker's extra fields.
    """
    from rellm.generation.runtime import build_decoder, load_llm
    from rellm.utils.torch_device import pick_device

    llm, tokenizer, layout = load_llm(hp["teacher_llm"], hp["dtype"], pick_device(hp["device"]), hp["num_threads"])
    decoder = build_decoder(llm, tokenizer, layout, hp)
    for task in tasks:
        utterances, selection = select_utterances(manifest, task)
        prompts = build_prompts(layout, task, utterances)
        batches = plan_batches({u: len(p[0]) for u, p in prompts.items()}, hp["batch_size"], hp["batch_seed"])
        mine = {k: batches[k] for k in stage.keys(batches, shard)}
        logger.info("%s: %d utterances (%d not prompted: %s), %d batches of %d; this shard: %d batches",
                    task.name, len(utterances), selection.total_dropped, selection.dropped.counts(), len(batches),
                    hp["batch_size"], len(mine))
        records = run_task(llm, tokenizer, decoder, task, prompts, utterances, mine, hp["max_new_tokens"],
                           desc=f"{task.name} {shard}/{stage.num_shards}")
        stage.write_jsonl(task.name, shard, records)
    return {"decoder_backend": decoder.backend}


def merge_responses(stage, tasks, manifest, extra_drop_substrings=(), tidy_replies=False):
    """Merge every task's shards into ``raw/<task>.jsonl`` (as generated) and ``<task>.jsonl`` (tidied when
    ``tidy_replies``, then cleaned); returns the per-task part of ``report.json``.

    Per task: ``prompted`` (utterances prompted, and the others by reason), ``generated``, ``early_stop``,
    ``tidied`` (with ``tidy_replies``), ``cleaning`` (kept and dropped by reason) and ``written``; both
    reason blocks have the ``rellm.utils.drop_report`` shape.
    """
    from rellm.generation.cleaning import CleaningReport, tidy_reply
    from rellm.utils.io import read_jsonl, write_jsonl

    out, report = stage.output_dir, {}
    for task in tasks:
        raw, n = stage.merge_jsonl(task.name, output=out / "raw" / f"{task.name}.jsonl")
        utterances, selection = select_utterances(manifest, task)
        if n != len(utterances):
            raise RuntimeError(
                f"{task.name}: the shards hold {n} records but the manifest has {len(utterances)} usable "
                f"utterances; the shards were made from another manifest. Re-run with --overwrite=true"
            )
        cleaning = CleaningReport(extra_substrings=extra_drop_substrings or ())
        records = read_jsonl(raw)
        early_stop = sum(1 for r in records if r["early_stop"])  # as generated, before any tidying
        tidied = Counter()
        if tidy_replies:
            for rec in records:
                rec["output"], rec["early_stop"], changed = tidy_reply(rec["output"], rec["early_stop"])
                tidied.update(changed)
        kept = list(cleaning.filter(records))
        write_jsonl(out / f"{task.name}.jsonl", kept)
        report[task.name] = {
            "system_prompt": task.system_prompt,
            "template": task.template,
            "manifest_utterances": len(manifest),
            "prompted": selection.as_dict(),
            "generated": n,
            "early_stop": early_stop,
            **({"tidied": dict(sorted(tidied.items()))} if tidy_replies else {}),
            "cleaning": cleaning.as_dict(),
            "written": len(kept),
        }
        selection.log(logger, f"{task.name}: prompted")
        cleaning.log(logger, f"{task.name}: {n} generated, cleaning -> {out / f'{task.name}.jsonl'}")
    return report
