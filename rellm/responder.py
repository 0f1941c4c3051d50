"""Talk to a trained rellm model from Python: speech in, the heard emotion and an empathetic reply out.

    from rellm import Responder

    responder = Responder.from_pretrained("egs/mini/exp/rellm/official/seed1")   # or an exported folder
    reply = responder.respond("utterance.wav")          # a path, or a 1-D array with sample_rate=...
    print(reply.emotion, reply.probabilities[reply.emotion], reply.response)
    later = responder.respond("next.wav", history=[reply])                    # a conversation
    replies = responder.respond(["a.wav", "b.wav"])                            # a batch: a list of Replies

``Responder.from_pretrained(path)`` loads everything once: the frozen Whisper encoder and emotion encoder
(stage 2's extractors), the LLM with the trained adapter, LoRA and heads (``SpeechLLM``), and the
voice-activity detector. It takes an experiment folder ``exp/<model>/<split>/seed<k>`` (with ``final/``) or a
folder written by ``python -m rellm.export``.

``respond`` first checks the audio (``rellm.responder_audio``: 0.1 to 30 s, downmix, resampling) and whether
it holds speech at all (``rellm.responder_vad``: Silero VAD); silence and noise get ``no_speech=True`` and
no emotion and no reply. Speech goes through stage 5's own classes (``rellm.generation.inference``:
``SpeechSystem`` and ``TextOnlySystem``) fed with features computed here as stage 2 computes them, so a
reply equals stage 5's on the same utterance (stage 5 with ``batch_size: 1``: the responder runs the
adapter on each utterance alone, see ``SpeechSystem``). Decoding is greedy unless ``do_sample=True``.

Earlier turns (``history``: ``Reply`` objects or ``(user_text, assistant_text)`` pairs) enter the prompt in
the LLM's chat template before the current speech turn; the user's words of an earlier turn are its
transcript (Whisper's transcription, made when a call has a history or asks for it). The prompt layout is
documented in docs/using_a_model.md#conversation-history; :meth:`Responder.prompt_preview` shows it.
"""
import contextlib
import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rellm.data.emotions import AVD, EMOTIONS
from rellm.generation.prompts import RESPONSE_INSTRUCTION, SER_INSTRUCTION, SYSTEM_EMPATHETIC, SYSTEM_PLAIN
from rellm.model_folder import ModelFolderError, open_model_folder
from rellm.responder_audio import AudioInputError, checked_input

__all__ = ["AudioInputError", "PromptPreview", "Reply", "Responder", "ResponderError"]

DEFAULT_MAX_NEW_TOKENS = 128
SER_MAX_NEW_TOKENS = 128  # stage 5's (BLSP-Emo's generate.py default)
# Stage 5's decoding settings (conf/infer.yaml), so that a reply equals the recipe's: the mini recipe's plain greedy
# decoding unless from_pretrained(decoding=...) sets the paper recipes' repetition penalty.
DECODING = {"decoding_backend": "auto", "cuda_graphs": True, "compile_decode": False, "min_new_tokens": 1,
            "repetition_penalty": 1.0, "repetition_penalty_context": "reply"}


def decoding_settings(decoding=None):
    """Stage 5's decoding keys with ``decoding`` (keys of the same names as in conf/infer.yaml) over the defaults."""
    extra = dict(decoding or {})
    unknown = sorted(set(extra) - set(DECODING))
    if unknown:
        raise ResponderError(f"unknown decoding key(s) {', '.join(unknown)}; known: {', '.join(sorted(DECODING))} "
                             "(sampling is a respond() option: do_sample, temperature, top_p, seed)")
    return {**DECODING, **extra}


class ResponderError(RuntimeError):
    """A model folder or an option the responder cannot use; the message (one line) says what to do."""


@dataclass
class Reply:
    """What the responder says about one input.

    ``no_speech``: the voice-activity detector found no speech; then ``emotion``, ``avd`` and ``response`` are
    None and ``probabilities`` is empty. ``emotion``: the emotion head's label (``rellm.data.emotions.EMOTIONS``),
    ``probabilities``: its softmax by class name; ``avd``: the model's arousal / valence / dominance head (None
    for a model that never trained it, e.g. BLSP-Emo); ``avd_emotion_encoder``: the frozen emotion encoder's own
    A/V/D (RE-LLM only). ``transcript``: Whisper's transcription (or the one given), when asked for or needed;
    ``text_only_response``: the text-only system's reply to the transcript (``with_text_only=True``);
    ``ser_answer`` and ``ser_answer_emotion``: the model's free-text answer to stage 5's SER question and its
    parsed label (``with_ser_answer=True``). ``speech_seconds``: speech found by the detector.
    """

    no_speech: bool
    emotion: str | None = None
    probabilities: dict = field(default_factory=dict)
    avd: dict | None = None
    response: str | None = None
    transcript: str | None = None
    text_only_response: str | None = None
    notes: list = field(default_factory=list)
    avd_emotion_encoder: dict | None = None
    speech_seconds: float | None = None
    ser_answer: str | None = None
    ser_answer_emotion: str | None = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass
class PromptPreview:
    """The prompt of a reply as the LLM reads it: ``token_ids`` (None at the speech vectors), ``text`` (the
    speech shown as ``<speech: N vectors>``) and ``next_token_logits`` of the reply's first token."""

    token_ids: list
    text: str
    next_token_logits: object


class _Features:
    """Stage 2's feature-cache interface (``whisper``, ``emotion_embedding``) over features computed now."""

    def __init__(self, states, embeddings):
        self.states, self.embeddings = states, embeddings

    def whisper(self, utt_id):
        return self.states[utt_id]

    def emotion_embedding(self, utt_id):
        return self.embeddings[utt_id]


def _avd_dict(values):
    return {name: float(v) for name, v in zip(AVD, values)}


def history_turns(history):
    """``([(user_text, assistant_text)], notes)`` from ``Reply`` objects, their ``to_dict()``, ``{"user",
    "assistant"}`` dicts or pairs."""
    turns, notes = [], []
    for k, turn in enumerate(history or [], 1):
        if isinstance(turn, dict) and set(turn) == {"user", "assistant"}:
            turn = (turn["user"], turn["assistant"])
        elif isinstance(turn, dict) and "no_speech" in turn:
            turn = Reply(**{key: v for key, v in turn.items() if key in Reply.__dataclass_fields__})
        if isinstance(turn, Reply):
            if turn.no_speech or turn.response is None:
                notes.append(f"history turn {k} had no speech and no reply; left out of the prompt")
                continue
            if turn.transcript is None:
                raise ResponderError(f"history turn {k} is a Reply without a transcript; make it with "
                                     "respond(..., with_transcript=True) (any call with history=... makes one), or "
                                     "give the turn as a (user_text, assistant_text) pair")
            turns.append((turn.transcript, turn.response))
        elif isinstance(turn, (tuple, list)) and len(turn) == 2 and all(isinstance(t, str) for t in turn):
            turns.append((turn[0], turn[1]))
        else:
            raise ResponderError(f"history turn {k} is a {type(turn).__name__}; give Reply objects (or their "
                                 "to_dict()) or (user_text, assistant_text) pairs")
    return turns, notes


class Responder:
    """A trained speech-LLM ready to answer audio; build it with :meth:`from_pretrained`."""

    def __init__(self, folder, model, whisper, emotion, vad, decoder, dtype, device, asr_name):
        self.folder, self.model, self.whisper, self.emotion = folder, model, whisper, emotion
        self.vad, self.decoder, self.dtype, self.device = vad, decoder, dtype, device
        self.asr_name = asr_name
        self.avd_head_trained = folder.avd_head_trained
        self._asr = None
        self._lock = threading.RLock()  # one call at a time (a web demo's handlers run in threads)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path, device="auto", dtype="auto", whisper=None, emotion_encoder=None, vad=True,
                        vad_threshold=0.5, min_speech_seconds=0.25, whisper_dtype="auto", threads=None, decoding=None):
        """Load the model of an experiment folder (``exp/<model>/<split>/seed<k>``) or an exported folder, once.

        ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ...; ``dtype``: the LLM's (``auto``: bf16 on
        a capable GPU, else fp32). ``whisper`` / ``emotion_encoder``: load these instead of the model's own
        (registry name, folder or hub name). ``vad=False`` answers every input, speech or not.
        ``whisper_dtype``: ``auto`` is fp16 on CUDA, fp32 on CPU (stage 2's settings). ``threads``: cap torch's CPU
        threads (None: leave them). ``decoding``: stage 5's decoding keys of the recipe the model comes from
        (``{"repetition_penalty": 1.1}`` for the paper recipes, whose conf/infer.yaml sets it; default: the mini
        recipe's plain greedy decoding).
        """
        from rellm.features.whisper_states import WhisperStateExtractor
        from rellm.generation.runtime import build_decoder, set_threads
        from rellm.models.speech_llm import SpeechLLM
        from rellm.utils.torch_device import pick_device, pick_dtype

        settings = decoding_settings(decoding)
        try:
            folder = open_model_folder(path)
        except ModelFolderError as err:
            raise ResponderError(str(err)) from None
        if threads:
            set_threads(threads)
        device = pick_device(device)
        llm_dtype = pick_dtype(dtype, device)
        if whisper_dtype == "auto":  # stage 2's settings: fp16 on a GPU (the paper recipes), fp32 on CPU (mini)
            whisper_dtype = "float16" if device.type == "cuda" else "float32"
        speech_dtype = pick_dtype(whisper_dtype, device)
        meta = folder.meta
        model = SpeechLLM.from_state(folder.load_state(), meta, device=device, dtype=llm_dtype,
                                     llm=folder.base_models["llm"])
        whisper_name = whisper or folder.base_models["speech_encoder"] or (meta.get("speech_features") or {}).get(
            "whisper")
        if not whisper_name:
            raise ResponderError(f"{path} does not record its Whisper model; pass whisper=NAME_OR_FOLDER (the one "
                                 "stage 2 used)")
        extractor = WhisperStateExtractor.from_pretrained(whisper_name, device=device, dtype=speech_dtype,
                                                          window_seconds=folder.whisper_window_seconds)
        if extractor.dim != model.config["speech_dim"]:
            raise ResponderError(f"Whisper {whisper_name} gives {extractor.dim}-d states but the model was trained on "
                                 f"{model.config['speech_dim']}-d ones; pass whisper= the model stage 2 used")
        embedder = cls._emotion_embedder(folder, model, emotion_encoder, device) if model.emotion_dim else None
        detector = None
        if vad:
            from rellm.responder_vad import SpeechDetector

            detector = SpeechDetector(vad_threshold, min_speech_seconds)
        try:  # stage 5's decoder: the repetition penalty counts the reply (context "reply") unless told otherwise
            decoder = build_decoder(model.base_llm, model.tokenizer, model.layout, settings, "reply")
        except ValueError as err:
            raise ResponderError(str(err)) from None
        return cls(folder, model, extractor, embedder, detector, decoder, llm_dtype, device, whisper_name)

    @staticmethod
    def _emotion_embedder(folder, model, override, device):
        from rellm.features.emotion import EmotionEmbedder
        from rellm.features.extraction import resolve_emotion_encoder

        value = override or folder.base_models["emotion_encoder"]
        if not value:
            raise ResponderError("this RE-LLM model does not record its emotion encoder; pass emotion_encoder=FOLDER")
        value = str(value)
        local = Path(value).expanduser()
        if not local.is_dir() and (value.startswith(("/", ".", "~")) or value.count("/") != 1):
            raise ResponderError(f"emotion encoder folder {value} not found (named by {folder.config_dir}); pass "
                                 "emotion_encoder=FOLDER")
        try:
            where = resolve_emotion_encoder(value)
        except FileNotFoundError as err:
            raise ResponderError(str(err)) from None
        embedder = EmotionEmbedder.from_folder(where, device=device)
        if embedder.dim != model.emotion_dim:
            raise ResponderError(f"emotion encoder {value} gives {embedder.dim}-d embeddings but the model fuses "
                                 f"{model.emotion_dim}-d ones; pass emotion_encoder= the one stage 2 used")
        return embedder

    # ------------------------------------------------------------------ properties
    @property
    def system(self):
        """``rellm`` (with the emotion nuance module) or ``blsp_emo``."""
        return self.folder.system

    @property
    def emotions(self):
        """The class names of ``Reply.probabilities``, in the emotion head's order."""
        return tuple(EMOTIONS)

    # ------------------------------------------------------------------ answering
    def respond(self, audio, sample_rate=None, history=None, *, transcript=None, with_transcript=None,
                with_text_only=False, with_ser_answer=False, system_prompt=None,
                max_new_tokens=DEFAULT_MAX_NEW_TOKENS, do_sample=False, temperature=1.0, top_p=1.0, seed=None):
        """Answer one input (a path, or a 1-D array / tensor with ``sample_rate``) with a :class:`Reply`, or a list
        of inputs with a list of Replies (batched through the model; the same replies as one by one; for a list,
        ``sample_rate`` is one rate for its arrays or a list with one per input, None for files).

        ``history``: earlier turns (``Reply`` objects or ``(user_text, assistant_text)`` pairs), oldest first; for
        a list of inputs, one such list (or None) per input. ``transcript``: the user's words (for the history
        and the text-only reply) instead of Whisper's transcription (one per input for a list).
        ``with_transcript``: transcribe with Whisper (default: when a history is given or the text-only reply is
        asked for). ``with_text_only``: also the text-only system's reply to the transcript (the frozen LLM,
        LoRA off). ``with_ser_answer``: also the model's free-text answer to stage 5's SER question.
        ``system_prompt``: default the paper's empathetic one. Decoding: greedy, at most ``max_new_tokens``; with
        ``do_sample=True``, nucleus sampling at ``temperature`` and ``top_p`` (``seed`` for repeatable draws).
        """
        batched = isinstance(audio, (list, tuple))
        inputs = list(audio) if batched else [audio]
        n = len(inputs)
        histories = self._per_input(history, n, batched, "history")
        transcripts = self._per_input(transcript, n, batched, "transcript")
        rates = sample_rate if batched and isinstance(sample_rate, (list, tuple)) else [sample_rate] * n
        if len(rates) != n:
            raise ResponderError(f"for a list of {n} inputs, give sample_rate as one number or a list of {n}")
        sampling = None
        if do_sample:
            from rellm.generation.decoding import sampling_settings

            try:
                sampling = sampling_settings(temperature, top_p)
            except ValueError as err:
                raise ResponderError(str(err)) from None
        if int(max_new_tokens) < 1:
            raise ResponderError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        options = {"with_transcript": with_transcript, "with_text_only": with_text_only,
                   "with_ser_answer": with_ser_answer, "system_prompt": system_prompt or SYSTEM_EMPATHETIC,
                   "max_new_tokens": int(max_new_tokens), "sampling": sampling, "seed": seed}
        checked = [checked_input(x, rate) for x, rate in zip(inputs, rates)]
        with self._lock:
            replies = self._respond(checked, histories, transcripts, options)
        return replies if batched else replies[0]

    @staticmethod
    def _per_input(value, n, batched, name):
        if not batched:
            return [value]
        if value is None:
            return [None] * n
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise ResponderError(f"for a list of {n} inputs, give {name} as a list of {n} (one per input) or None")
        return list(value)

    def _seeded(self, seed):
        import torch

        if seed is None:
            return contextlib.nullcontext()
        devices = [self.device] if self.device.type == "cuda" else []
        context = torch.random.fork_rng(devices=devices)

        @contextlib.contextmanager
        def seeded():
            with context:
                torch.manual_seed(int(seed))
                yield

        return seeded()

    def _respond(self, checked, histories, transcripts, options):
        import torch

        from rellm.generation.inference import SpeechSystem
        from rellm.generation.ser_parser import parse_ser_answer

        replies = [Reply(no_speech=False, notes=list(notes)) for _, notes in checked]
        for reply, (wave, _) in zip(replies, checked):
            if self.vad is not None:
                reply.speech_seconds = self.vad.speech_seconds(wave)
                if reply.speech_seconds < self.vad.min_speech_seconds:
                    reply.no_speech = True
                    reply.notes.append(f"no speech detected ({reply.speech_seconds:.2f} s of speech found by the "
                                       "voice-activity detector); nothing to answer")
        heard = [i for i, r in enumerate(replies) if not r.no_speech]
        if not heard:
            return replies
        waves = [checked[i][0] for i in heard]
        ids = [f"input{i}" for i in heard]
        states = self.whisper(waves)
        for i, wave in zip(heard, waves):
            if len(wave) > self.whisper.max_samples:
                replies[i].notes.append(f"only the first {self.whisper.window_seconds:g} s were heard by Whisper "
                                        "(the window this model was trained with)")
        embeddings = {}
        if self.emotion is not None:
            vectors, encoder_avd = self.emotion(waves)
            for k, i in enumerate(heard):
                embeddings[ids[k]] = torch.from_numpy(vectors[k])
                replies[i].avd_emotion_encoder = _avd_dict(encoder_avd[k])
        system = SpeechSystem(self.system, self.model, _Features(dict(zip(ids, states)), embeddings), self.decoder,
                              self.dtype, encode_alone=True)
        with torch.no_grad():
            probs = torch.softmax(system.emotion_logits(ids).float(), -1).cpu()
            avd = self.model.predict_avd(*system.encode(ids)).float().cpu() if self.avd_head_trained else None
        for k, i in enumerate(heard):
            replies[i].probabilities = {e: float(p) for e, p in zip(EMOTIONS, probs[k])}
            replies[i].emotion = EMOTIONS[int(probs[k].argmax())]
            replies[i].avd = None if avd is None else _avd_dict(avd[k])

        turns = []
        for i in heard:
            pairs, notes = history_turns(histories[i])
            turns.append(pairs if histories[i] is not None else None)
            replies[i].notes += notes
        need_words = (options["with_transcript"] or options["with_text_only"]
                      or (options["with_transcript"] is None and any(histories[i] is not None for i in heard)))
        for i in heard:
            if transcripts[i] is not None:
                replies[i].transcript = str(transcripts[i]).strip()
        missing = [k for k, i in enumerate(heard) if transcripts[i] is None] if need_words else []
        for k, text in zip(missing, self.transcribe([waves[k] for k in missing])):
            replies[heard[k]].transcript = text

        with self._seeded(options["seed"]):
            responses = system.generate(ids, {}, options["system_prompt"], RESPONSE_INSTRUCTION,
                                        options["max_new_tokens"], histories=turns, sampling=options["sampling"])
            for i, text in zip(heard, responses):
                replies[i].response = text
            if options["with_ser_answer"]:
                answers = system.generate(ids, {}, SYSTEM_PLAIN, SER_INSTRUCTION, SER_MAX_NEW_TOKENS,
                                          sampling=options["sampling"])
                for i, text in zip(heard, answers):
                    replies[i].ser_answer, replies[i].ser_answer_emotion = text, parse_ser_answer(text)
            if options["with_text_only"]:
                self._text_only(replies, heard, turns, options)
        return replies

    def _text_only(self, replies, heard, turns, options):
        from rellm.generation.inference import TextOnlySystem

        # the frozen LLM itself: PartialLoRA is off outside a speech prefill, so this is stage 5's text_only
        # system on the same base LLM
        text_system = TextOnlySystem(self.model.base_llm, self.model.tokenizer, self.model.layout, self.decoder)
        rows = [(k, i) for k, i in enumerate(heard) if (replies[i].transcript or "").strip()]
        for i in heard:
            if not (replies[i].transcript or "").strip():
                replies[i].notes.append("no words in the transcript; no text-only reply")
        if not rows:
            return
        ids = [f"input{i}" for _, i in rows]
        entries = {f"input{i}": {"transcript": replies[i].transcript} for _, i in rows}
        texts = text_system.generate(ids, entries, options["system_prompt"], RESPONSE_INSTRUCTION,
                                     options["max_new_tokens"], histories=[turns[k] for k, _ in rows],
                                     sampling=options["sampling"])
        for (_, i), text in zip(rows, texts):
            replies[i].text_only_response = text

    # ------------------------------------------------------------------ transcription and inspection
    def transcribe(self, waves):
        """Whisper's own transcriptions of 16 kHz mono waveforms (the model's Whisper, loaded on first use)."""
        import torch

        from rellm.data.audio import SAMPLE_RATE

        if not waves:
            return []
        if self._asr is None:
            from rellm.pretrained import load_whisper

            try:
                asr, processor = load_whisper(self.asr_name, dtype=self.whisper.dtype)
            except Exception as err:  # e.g. an encoder-only Whisper folder (an imported BLSP-Emo)
                raise ResponderError(f"cannot transcribe with {self.asr_name} ({type(err).__name__}: "
                                     f"{str(err).splitlines()[0] if str(err) else ''}); give transcript=...") from err
            self._asr = (asr.to(self.device).eval(), processor)
        asr, processor = self._asr
        feats = processor(list(waves), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            ids = asr.generate(feats["input_features"].to(self.device, self.whisper.dtype))
        return [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]

    def prompt_preview(self, audio, sample_rate=None, history=None, system_prompt=None):
        """The reply prompt of one input as the LLM reads it (:class:`PromptPreview`): the same inputs ``respond``
        decodes from, with the logits of the reply's first token."""
        import torch

        from rellm.generation.inference import SpeechSystem, lora_prefill_context

        wave, _ = checked_input(audio, sample_rate)
        system_prompt = system_prompt or SYSTEM_EMPATHETIC
        pairs, _ = history_turns(history)
        with self._lock, torch.no_grad():
            embeddings = {}
            if self.emotion is not None:
                embeddings["input0"] = torch.from_numpy(self.emotion([wave])[0][0])
            features = _Features({"input0": self.whisper([wave])[0]}, embeddings)
            system = SpeechSystem(self.system, self.model, features, self.decoder, self.dtype, encode_alone=True)
            inputs = system.generation_inputs(["input0"], system_prompt, RESPONSE_INSTRUCTION, [pairs])
            context = lora_prefill_context(self.model, inputs["lora_mask"]) or contextlib.nullcontext
            with context():
                out = self.model.base_llm(inputs_embeds=inputs["inputs_embeds"].to(self.dtype),
                                          attention_mask=inputs["attention_mask"],
                                          position_ids=inputs["position_ids"])
            speech_len = int(system.encode(["input0"])[1].sum())
        layout, tok = self.model.layout, self.model.tokenizer
        prompt = layout.prompt_ids(system_prompt, RESPONSE_INSTRUCTION, history=pairs)
        header = list(layout.header_ids)
        text = (tok.decode(prompt, skip_special_tokens=False) + f"<speech: {speech_len} vectors>"
                + tok.decode(header, skip_special_tokens=False))
        return PromptPreview(prompt + [None] * speech_len + header, text, out.logits[0, -1].float().cpu())
