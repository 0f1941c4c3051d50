"""Stage 5: empathetic responses and SER answers of the systems on a test set.

* ``text_only``: the base LLM given the transcript (no training; the paper's text-only baseline);
* ``blsp_emo`` / ``blsp_emo_ft`` / ``rellm``: a trained :class:`rellm.models.speech_llm.SpeechLLM` given the speech
  (cached Whisper states, plus the emotion embedding for RE-LLM's emotion nuance module); ``blsp_emo_ft`` is the
  matched control (BLSP-Emo continued on the corpus like RE-LLM, without the module).

Any system of ``rellm.systems`` is answered the way its ``modality`` says: ``text`` as ``text_only``, ``speech``
as the trained speech-LLMs.

Two passes per utterance (docs/method.md#prompts, #inference):

* response: empathetic system prompt, empty instruction, the speech (transcript) as the user turn;
* SER: the five-option instruction followed by the speech (transcript), plain system prompt;
  the free-text answer goes through :func:`rellm.generation.ser_parser.parse_ser_answer`.

The text-only baseline cannot hear; its "SER" answer is what the LLM infers from the words
alone (a useful floor for the speech systems' UA, never a speech result).

Batches are planned over the whole test set by length before sharding (see ``teacher.py`` for
why: identical output for any number of jobs), left-padded, and decoded by
:class:`rellm.generation.decoding.GreedyDecoder` (static KV cache, LoRA in the prefill only).

The interactive responder (``rellm.responder``) answers raw audio through the same two system classes,
fed with features it computes itself (and, there, earlier conversation turns and optional sampling).
"""
import contextlib
import logging
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from rellm import systems as registry
from rellm.generation.ser_parser import parse_ser_answer
from rellm.generation.teacher import left_pad
from rellm.utils.drop_report import DropReport
from rellm.utils.torch_device import no_grad

logger = logging.getLogger(__name__)

SYSTEMS = tuple(registry.names())  # what --system accepts (rellm.systems)
PASSES = ("response", "ser")
RESPONSES = "responses"  # responses.jsonl, shards/responses.<j>of<N>.jsonl


def lora_prefill_context(model, lora_mask):
    """A context factory that puts PLoRA on the speech positions for the prompt forward only.

    ``prefill_only`` applies the mask to the next forward of the LLM and switches LoRA off for all
    later ones, so it is right for both decoder backends (our static loop leaves the context
    after the prefill; plain ``generate`` runs its incremental steps inside it).
    """
    plora = getattr(model, "plora", None)
    if plora is None or lora_mask is None or not bool(lora_mask.any()):
        return None
    from rellm.models.plora import ALL_POSITIONS

    mask = ALL_POSITIONS if getattr(model, "lora_scope", "speech") == "all" else lora_mask

    @contextlib.contextmanager
    def context():
        plora.prefill_only(mask, model.base_llm)
        try:
            yield
        finally:
            plora.clear_prefill()

    return context


class TextOnlySystem:
    """The base LLM answering the transcript (the user turn is ``instruction + transcript``)."""

    name = "text_only"

    def __init__(self, llm, tokenizer, layout, decoder, name=None):
        self.llm, self.tokenizer, self.layout, self.decoder = llm, tokenizer, layout, decoder
        self.name = name or self.name

    def prompt_ids(self, system_prompt, instruction, transcript, history=None):
        # Segments tokenised separately, as the speech model's prompt is (docs/method.md#sequence-layout); the
        # transcript sits where the speech vectors would.
        return (
            self.layout.prompt_ids(system_prompt, instruction, history=history)
            + self.layout.encode_content(transcript)
            + list(self.layout.header_ids)
        )

    def length(self, utt_id, entry):
        return len(self.layout.encode_content(entry["transcript"]))

    @no_grad
    def generate(self, utt_ids, entries, system_prompt, instruction, max_new_tokens, histories=None, sampling=None):
        """Replies to ``entries[u]["transcript"]``; ``histories``: earlier turns per utterance (responder only)."""
        device = self.llm.get_input_embeddings().weight.device
        histories = histories or [None] * len(utt_ids)
        ids = [self.prompt_ids(system_prompt, instruction, entries[u]["transcript"].strip(), h)
               for u, h in zip(utt_ids, histories)]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.decoder.pad_token_id
        input_ids, mask = left_pad(ids, pad, device)
        embeds = self.llm.get_input_embeddings()(input_ids)
        result = self.decoder.generate(embeds, mask, max_new_tokens=max_new_tokens, sampling=sampling,
                                       penalty_ids=self.decoder.penalty_ids(ids))
        return [t.strip() for t in self.tokenizer.batch_decode(result.tokens, skip_special_tokens=True)]


def pad_speech_states(states, device):
    """``(states [B, T, D] zero-padded, lengths [B])`` on ``device`` from per-utterance ``[T_i, D]`` states."""
    import torch

    lengths = torch.tensor([s.shape[0] for s in states], dtype=torch.long)
    padded = torch.zeros(len(states), int(lengths.max()), states[0].shape[-1], dtype=states[0].dtype)
    for i, s in enumerate(states):
        padded[i, : s.shape[0]] = s
    return padded.to(device), lengths.to(device)


def pad_speech_embeddings(parts):
    """One ``(E [B, N, H], M [B, N])`` from per-utterance adapter outputs ``[(E_i [1, N_i, H], M_i [1, N_i])]``
    (masked positions: zeros, mask False)."""
    import torch

    width = max(E.shape[1] for E, _ in parts)
    E = parts[0][0].new_zeros(len(parts), width, parts[0][0].shape[-1])
    M = torch.zeros(len(parts), width, dtype=torch.bool, device=parts[0][1].device)
    for i, (e, m) in enumerate(parts):
        E[i, : e.shape[1]], M[i, : m.shape[1]] = e[0], m[0]
    return E, M


class SpeechSystem:
    """A trained SpeechLLM answering the speech (cached stage-2 features).

    ``features``: what serves ``whisper(utt_id)`` and ``emotion_embedding(utt_id)`` (the stage-2
    ``FeatureCache``, or the responder's features of the audio it was given). ``encode_alone``: run the
    adapter on each utterance by itself rather than on the padded batch. The adapter does not zero padded
    frames (as in the reference), so the last frames of a shorter utterance see its batch neighbours'
    padding; stage 5 keeps that (its batches are fixed by the length plan), the responder encodes alone so
    that a reply never depends on what else was in the call (equal to stage 5 with ``batch_size: 1``).
    """

    def __init__(self, name, model, features, decoder, dtype, encode_alone=False):
        self.name, self.model, self.features, self.decoder, self.dtype = name, model, features, decoder, dtype
        self.uses_emotion = bool(getattr(model, "emotion_dim", 0))
        self.encode_alone = bool(encode_alone)
        self._speech_cache = {}

    def length(self, utt_id, entry):
        # Whisper runs at 50 frames/s; the manifest duration orders batches without reading features.
        return round(float(entry.get("duration") or 0.0) * 50)

    def speech_batch(self, utt_ids):
        """``(states [B, T, D], lengths [B], emotion_embedding [B, E] | None)`` from the feature cache."""
        import torch

        device = self.model.base_llm.get_input_embeddings().weight.device
        padded, lengths = pad_speech_states([self.features.whisper(u) for u in utt_ids], device)
        emotion_embedding = None
        if self.uses_emotion:
            emotion_embedding = torch.stack([self.features.emotion_embedding(u) for u in utt_ids]).to(device)
        return padded, lengths, emotion_embedding

    @no_grad
    def encode(self, utt_ids):
        key = tuple(utt_ids)
        if key not in self._speech_cache:  # the response and SER passes share one adapter run
            if self.encode_alone:
                speech = pad_speech_embeddings([self.model.encode_speech(*self.speech_batch([u])) for u in utt_ids])
            else:
                speech = self.model.encode_speech(*self.speech_batch(utt_ids))
            self._speech_cache = {key: speech}
        return self._speech_cache[key]

    @no_grad
    def emotion_logits(self, utt_ids):
        """``[B, 5]`` logits of the emotion head (order of ``rellm.data.emotions.EMOTIONS``)."""
        return self.model.classify_emotion(*self.encode(utt_ids))

    @no_grad
    def classify(self, utt_ids):
        """The emotion head's label per utterance (the pooled adapter output, as trained by the emotion CE)."""
        from rellm.data.emotions import EMOTIONS

        return [EMOTIONS[int(i)] for i in self.emotion_logits(utt_ids).argmax(-1).tolist()]

    def generation_inputs(self, utt_ids, system_prompt, instruction, histories=None):
        """The decoder's inputs for ``utt_ids`` (``SpeechLLM.build_generation_inputs`` on the encoded speech)."""
        return self.model.build_generation_inputs(system_prompt, [instruction] * len(utt_ids),
                                                  speech=self.encode(utt_ids), histories=histories)

    @no_grad
    def generate(self, utt_ids, entries, system_prompt, instruction, max_new_tokens, histories=None, sampling=None):
        """Replies to the speech of ``utt_ids``; ``histories``: earlier turns per utterance (responder only)."""
        inputs = self.generation_inputs(utt_ids, system_prompt, instruction, histories)
        result = self.decoder.generate(
            inputs["inputs_embeds"].to(self.dtype),
            inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            max_new_tokens=max_new_tokens,
            prefill_context=lora_prefill_context(self.model, inputs["lora_mask"]),
            sampling=sampling,
            # the prompt's text tokens (the repetition penalty's context; with "reply" only its final newline)
            penalty_ids=self.decoder.penalty_ids(
                [self.model.layout.prompt_ids(system_prompt, instruction) + list(self.model.layout.header_ids)]
                * len(utt_ids)),
        )
        return [t.strip() for t in self.model.tokenizer.batch_decode(result.tokens, skip_special_tokens=True)]


def run_inference(system, entries, batches, prompts, desc=None):
    """Decode both passes for ``batches`` (``{key: [utt_id]}``); records sorted by utt_id.

    ``prompts``: dict with ``response_system_prompt``, ``response_instruction``,
    ``response_max_new_tokens``, ``ser_system_prompt``, ``ser_instruction``, ``ser_max_new_tokens``.
    """
    records = []
    total = sum(len(b) for b in batches.values())
    with tqdm(total=total, desc=desc or system.name, unit="utt", dynamic_ncols=True) as bar:
        for key in sorted(batches):
            utt_ids = batches[key]
            responses = system.generate(
                utt_ids, entries, prompts["response_system_prompt"], prompts["response_instruction"],
                prompts["response_max_new_tokens"],
            )
            ser_outputs = system.generate(
                utt_ids, entries, prompts["ser_system_prompt"], prompts["ser_instruction"],
                prompts["ser_max_new_tokens"],
            )
            # speech systems also have an emotion head: its label is a second SER figure, beside the generated answer
            heads = system.classify(utt_ids) if hasattr(system, "classify") else [None] * len(utt_ids)
            for utt_id, response, ser, head in zip(utt_ids, responses, ser_outputs, heads):
                entry = entries[utt_id]
                record = {
                    "utt_id": utt_id,
                    "transcript": (entry.get("transcript") or "").strip(),
                    "emotion": entry.get("emotion"),
                    "response": response,
                    "ser_output": ser,
                    "ser_pred": parse_ser_answer(ser),
                }
                if head is not None:
                    record["ser_head_pred"] = head
                records.append(record)
            bar.update(len(utt_ids))
    records.sort(key=lambda r: r["utt_id"])
    return records


def hears_text(system):
    """Whether the system ``system`` (a name of ``rellm.systems``) answers the transcript, not the speech."""
    record = registry.get(system)
    return record is not None and record.modality == "text"


def skip_reason(system, utt_id, entry, available=None):
    """Why ``system`` cannot answer ``utt_id`` (``available``: the utterances with features), or None."""
    if hears_text(system) and not (entry.get("transcript") or "").strip():
        return "no_transcript"
    if available is not None and utt_id not in available:
        return "no_features"
    return None


def select_utterances(manifest, system, features=None):
    """``(kept {utt_id: entry}, DropReport)``: utterances the system can answer; the others are counted by reason
    (never silently dropped)."""
    kept, report = {}, DropReport()
    available = set(features.keys()) if features is not None else None
    for utt_id in sorted(manifest):
        reason = skip_reason(system, utt_id, manifest[utt_id], available)
        if reason:
            report.drop(reason, utt_id)
            continue
        kept[utt_id] = manifest[utt_id]
        report.keep()
    return kept, report


def load_features(hp):
    """The stage-2 feature cache of a speech system (None for a text system such as ``text_only``)."""
    if hears_text(hp["system"]):
        return None
    from rellm.features.cache import FeatureCache

    if not Path(hp["feats_dir"]).is_dir():
        raise FileNotFoundError(f"feature folder {hp['feats_dir']} does not exist; run stage 2 for this set first")
    return FeatureCache(hp["feats_dir"])


def build_system(hp, device):
    """The system ``hp["system"]`` of the stage-5 config, ready to answer on ``device``."""
    from rellm.generation.runtime import build_decoder, load_llm, set_threads
    from rellm.utils.torch_device import pick_dtype

    if hears_text(hp["system"]):
        llm, tokenizer, layout = load_llm(hp["text_llm"], hp["dtype"], device, hp["num_threads"])
        return TextOnlySystem(llm, tokenizer, layout, build_decoder(llm, tokenizer, layout, hp, "reply"),
                              name=hp["system"])
    from rellm.models.speech_llm import SpeechLLM

    set_threads(hp["num_threads"])
    dtype = pick_dtype(hp["dtype"], device)
    logger.info("%s: speech-LLM %s on %s in %s (dtype option %s)", hp["system"], hp["model_dir"], device,
                str(dtype).replace("torch.", ""), hp["dtype"])
    model = SpeechLLM.from_pretrained_dir(hp["model_dir"], device=device, dtype=dtype)
    decoder = build_decoder(model.base_llm, model.tokenizer, model.layout, hp, "reply")
    return SpeechSystem(hp["system"], model, load_features(hp), decoder, dtype)


def answer_shard(stage, shard, manifest, hp, prompts):
    """Shard ``shard``'s answers to ``shards/responses.<j>of<N>.jsonl``; returns the done marker's extra fields.

    Batches are planned over the whole test set before sharding (identical output for any number of jobs).
    """
    from rellm.generation.teacher import plan_batches
    from rellm.utils.torch_device import pick_device

    system = build_system(hp, pick_device(hp["device"]))
    entries, selection = select_utterances(manifest, hp["system"], getattr(system, "features", None))
    batches = plan_batches({u: system.length(u, e) for u, e in entries.items()}, hp["batch_size"], hp["batch_seed"])
    mine = {k: batches[k] for k in stage.keys(batches, shard)}
    logger.info("%s: %d utterances (%d skipped: %s); this shard: %d of %d batches", hp["system"], len(entries),
                selection.total_dropped, selection.dropped.counts(), len(mine), len(batches))
    records = run_inference(system, entries, mine, prompts, desc=f"{hp['system']} {shard}/{stage.num_shards}")
    stage.write_jsonl(RESPONSES, shard, records)
    return {"decoder_backend": system.decoder.backend}


def merge_answers(stage, manifest, hp, prompts):
    """``responses.jsonl`` from the shards; returns ``report.json``: the utterances answered (``kept``) and the
    others (``dropped``) by reason (``rellm.utils.drop_report``), SER answers by label, empty responses, prompts."""
    from rellm.data.emotions import EMOTIONS
    from rellm.utils.io import read_jsonl

    path, n = stage.merge_jsonl(RESPONSES)
    records = read_jsonl(path)
    answered = {r["utt_id"] for r in records}
    features = load_features(hp)
    available = set(features.keys()) if features is not None else None
    answers = DropReport()
    for utt_id in sorted(manifest):
        if utt_id in answered:
            answers.keep()
        else:
            answers.drop(skip_reason(hp["system"], utt_id, manifest[utt_id], available) or "not_answered", utt_id)
    parse = Counter(r["ser_pred"] for r in records)
    by_label = {e: Counter() for e in EMOTIONS}
    for r in records:
        if r["emotion"] in by_label:
            by_label[r["emotion"]][r["ser_pred"]] += 1
    report = {
        "system": hp["system"],
        "manifest": str(hp["manifest"]),
        "manifest_utterances": len(manifest),
        **answers.as_dict(),
        "ser_pred_counts": dict(sorted(parse.items())),
        "ser_unknown": parse.get("unknown", 0),
        "ser_confusion": {e: dict(sorted(c.items())) for e, c in by_label.items()},
        "empty_responses": sum(1 for r in records if not r["response"]),
        "prompts": prompts,
    }
    answers.log(logger, f"{hp['system']}: {n} answers -> {path} (SER unknown: {report['ser_unknown']}); answered")
    return report
