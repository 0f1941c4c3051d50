"""A stand-in with the Responder's interface (``rellm.responder``), for the demo's logic tests only: the browser
test runs the real Responder on toy models.

It hears a recording as speech when its RMS is above a threshold, "recognises" the emotion from the file's peak,
and answers with a reply that names how many earlier turns it was given, so a test can follow the history.
Every call is recorded in ``calls``.
"""
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from rellm.data.emotions import EMOTIONS


@dataclass
class FakeReply:
    no_speech: bool
    emotion: str | None = None
    probabilities: dict = field(default_factory=dict)
    avd: dict | None = None
    response: str | None = None
    transcript: str | None = None
    text_only_response: str | None = None
    notes: list = field(default_factory=list)
    avd_emotion_encoder: dict | None = None


@dataclass
class FakePreview:
    text: str


class FakeResponder:
    def __init__(self, system="rellm", with_avd=True):
        self.system, self.with_avd, self.calls = system, with_avd, []

    def respond(self, audio, sample_rate=None, history=None, *, transcript=None, with_transcript=None,
                with_text_only=False, max_new_tokens=128, do_sample=False, temperature=1.0, top_p=1.0):
        wave, _ = sf.read(audio, dtype="float32")
        self.calls.append({"audio": audio, "history": list(history or []), "transcript": transcript,
                           "with_transcript": with_transcript, "with_text_only": with_text_only,
                           "do_sample": do_sample, "temperature": temperature, "top_p": top_p,
                           "max_new_tokens": max_new_tokens})
        if float(np.sqrt(np.mean(wave ** 2))) < 1e-3:
            return FakeReply(no_speech=True, notes=["no speech detected"])
        k = min(int(np.abs(wave).max() * 10), len(EMOTIONS) - 1)
        turn = len(history or []) + 1
        words = transcript or (f"sentence {turn}" if with_transcript or with_text_only else None)
        return FakeReply(
            no_speech=False, emotion=EMOTIONS[k], probabilities={e: (0.6 if i == k else 0.1)
                                                                 for i, e in enumerate(EMOTIONS)},
            avd={"arousal": 0.25, "valence": 0.5, "dominance": 0.75} if self.with_avd else None,
            avd_emotion_encoder={"arousal": 0.2, "valence": 0.4, "dominance": 0.6} if self.with_avd else None,
            response=f"{self.system} turn {turn} after {len(history or [])} earlier", transcript=words,
            text_only_response=f"text-only turn {turn}" if with_text_only else None,
            notes=[f"{self.system} heard {len(wave)} samples"])

    def prompt_preview(self, audio, sample_rate=None, history=None, system_prompt=None):
        turns = "".join(f"user: {r.transcript}\nassistant: {r.response}\n" for r in history or [])
        return FakePreview(f"{turns}user: <speech>\nassistant:")
