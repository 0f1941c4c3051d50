"""One spoken conversation of the demo page, without any web code: turns, the history each model gets, and what
the page shows after a turn.

A turn is one recording. The main model (a ``rellm.responder.Responder``) hears it with the conversation's
earlier turns as its history (its own earlier replies: the user's words, as Whisper transcribed them, and its
answers) and answers; a recording without speech gives no emotion and no reply and leaves the conversation as it
was. The baselines of ``--compare`` answer the same conversation: they get the same earlier turns and the same
transcript, so the replies side by side differ only by the system that wrote them.
"""
from dataclasses import dataclass, field

from rellm.data.emotions import AVD, EMOTIONS
from rellm.demo.systems import DISPLAY_NAMES


@dataclass(frozen=True)
class Decoding:
    """How the replies are decoded (the page's "Decoding" controls); ``max_new_tokens`` None: the model's default."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None

    def kwargs(self):
        out = {"do_sample": bool(self.do_sample), "temperature": float(self.temperature), "top_p": float(self.top_p)}
        if self.max_new_tokens is not None:
            out["max_new_tokens"] = int(self.max_new_tokens)
        return out


@dataclass
class Systems:
    """The loaded models: the main Responder and the baselines by name (``blsp_emo``: a second Responder;
    ``text_only``: None, the main Responder answers it from the transcript)."""

    main: object
    baselines: dict = field(default_factory=dict)

    @property
    def main_name(self):
        return DISPLAY_NAMES.get(self.main.system, self.main.system)

    @property
    def with_text_only(self):
        return "text_only" in self.baselines


@dataclass
class Turn:
    number: int                 # 1-based, counting only turns with speech
    audio: object               # the recording (a file path)
    reply: object               # the main model's Reply
    baselines: dict             # baseline name -> its reply text
    history_given: int          # how many earlier turns the models got as history


@dataclass
class Outcome:
    """What one recording gave: a turn added to the conversation, or no speech (``turn`` None)."""

    turn: "Turn | None"
    reply: object
    notes: list


class Conversation:
    """The turns so far; ``history()`` is what the next turn is given."""

    def __init__(self):
        self.turns = []

    def __len__(self):
        return len(self.turns)

    def history(self, upto=None):
        """The main model's replies of the turns before turn ``upto + 1`` (all turns: None), oldest first."""
        return [turn.reply for turn in self.turns[:upto]]

    def take_turn(self, systems, audio, decoding=None):
        """Answer one recording (a file path) with every system; append the turn unless no speech was heard."""
        decoding = decoding or Decoding()
        history = self.history()
        # the transcript is the user's side of this turn in the next turns' history (and what text-only reads)
        reply = systems.main.respond(audio, history=history, with_transcript=True,
                                     with_text_only=systems.with_text_only, **decoding.kwargs())
        notes = list(reply.notes or [])
        if reply.no_speech:
            return Outcome(turn=None, reply=reply, notes=notes)
        baselines = {}
        for name, responder in systems.baselines.items():
            if name == "text_only":
                baselines[name] = reply.text_only_response
                continue
            other = responder.respond(audio, history=history, transcript=reply.transcript, **decoding.kwargs())
            baselines[name] = "(no speech detected by this model)" if other.no_speech else other.response
            notes += [f"{DISPLAY_NAMES.get(name, name)}: {note}" for note in (other.notes or [])]
        turn = Turn(number=len(self.turns) + 1, audio=audio, reply=reply, baselines=baselines,
                    history_given=len(history))
        self.turns.append(turn)
        return Outcome(turn=turn, reply=reply, notes=notes)

    def last_prompt(self, systems):
        """The prompt the main model read for the last turn, as text (the speech shown as ``<speech: N vectors>``)."""
        if not self.turns:
            return ""
        turn = self.turns[-1]
        return systems.main.prompt_preview(turn.audio, history=self.history(turn.history_given)).text


# ---- what the page shows (plain values; rellm.demo.page puts them into the components) ------------------------


def probabilities(reply):
    """``{emotion: p}`` in the canonical class order, for the bar chart; empty without speech."""
    if reply is None or reply.no_speech or not reply.probabilities:
        return {}
    return {e: float(reply.probabilities[e]) for e in EMOTIONS if e in reply.probabilities}


def avd_markdown(reply):
    """Arousal / valence / dominance as a small table (the model's head, and the emotion encoder's when there is
    one), or why there are none."""
    if reply is None:
        return ""
    if reply.no_speech:
        return "No speech, so no arousal, valence or dominance."
    rows = []
    if reply.avd:
        rows.append(("model (A/V/D head)", reply.avd))
    encoder = getattr(reply, "avd_emotion_encoder", None)
    if encoder:
        rows.append(("emotion encoder", encoder))
    if not rows:
        return "Arousal / valence / dominance: not predicted by this model (it trains no A/V/D head)."
    lines = ["| | " + " | ".join(AVD) + " |", "|---|" + "---|" * len(AVD)]
    lines += [f"| {name} | " + " | ".join(f"{float(values[n]):.2f}" for n in AVD) + " |" for name, values in rows]
    return "\n".join(lines)


def status_markdown(outcome):
    """One plain sentence about the last recording."""
    if outcome is None:
        return "Record or upload what you want to say, then press **Send**."
    if outcome.turn is None:
        return ("**No speech was detected** in this recording: no emotion and no reply. The conversation is "
                "unchanged; record again, closer to the microphone.")
    turn = outcome.turn
    given = ("no earlier turns" if turn.history_given == 0
             else f"the {turn.history_given} earlier turn{'s' if turn.history_given > 1 else ''} as history")
    return f"Turn {turn.number}: heard as **{turn.reply.emotion}**; the model was given {given}."


def chat_messages(conversation):
    """The conversation as chat messages (``{"role", "content"}``), the user's side as heard."""
    messages = []
    for turn in conversation.turns:
        said = (turn.reply.transcript or "").strip() or "(no words recognised)"
        p = probabilities(turn.reply).get(turn.reply.emotion)
        emotion = f"{turn.reply.emotion}" + ("" if p is None else f", p = {p:.2f}")
        messages.append({"role": "user", "content": f"{said}  \n*heard as {emotion}*"})
        messages.append({"role": "assistant", "content": turn.reply.response or ""})
    return messages


def debug_info(conversation, outcome):
    """What the models were given for the last turn: the history they received, the decoding notes."""
    if outcome is None:
        return {"turns": len(conversation)}
    info = {"turns": len(conversation), "no_speech": outcome.turn is None, "notes": outcome.notes}
    if outcome.turn is not None:
        info.update({
            "turn": outcome.turn.number,
            "history_turns_given": outcome.turn.history_given,
            "history_given": [{"user": r.transcript, "assistant": r.response}
                              for r in conversation.history(outcome.turn.history_given)],
        })
    return info
