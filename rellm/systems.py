"""The systems a recipe trains, answers with and scores: one record each, in the order of RESULTS.md's rows.

Stage 5 answers with any system listed here (``--system NAME``: a ``speech`` system is a trained speech-LLM in
``exp/NAME/<split>/seed<k>``, a ``text`` system the base LLM given the transcript); stage 6, RESULTS.md, the plots,
the provenance section, the demo and the model card take their names from here. Adding a system is one line below
plus, for a trained one, ``conf/train_<name>.yaml`` (DEVELOPING.md#adding-a-system). Stage 6 also scores a name
that is not listed (shown as it is), so that outputs of a system removed since stay readable.

This module imports nothing else of rellm (every layer reads it). From the shell::

    python -m rellm.systems names [--training config|imported|none] [--modality speech|text]
    python -m rellm.systems show NAME        # the record as JSON; exit status 1 for an unknown name
"""
import argparse
import json
import sys
from dataclasses import asdict, dataclass

TRAINING = ("config", "imported", "none")
MODALITIES = ("speech", "text")


@dataclass(frozen=True)
class System:
    name: str          # the folder exp/<name>/... and stage 5's --system
    label: str         # RESULTS.md rows, plots
    short: str         # in running text ("EX +35.4% vs text-only")
    letter: str        # the letter after RESULTS.md's significance marks (<sup>*t</sup>)
    title: str         # the demo's column and the model card's heading
    modality: str      # what the model hears and stage 5 runs: "speech" (a speech-LLM) or "text" (the transcript)
    training: tuple    # how stage 4 makes it: "config" (conf/train_<name>.yaml), "imported", "none"
    demo_baseline: bool = False  # offered by rellm-demo --compare
    description: str = ""        # the model card's first paragraph

    @property
    def trained(self):
        """Stage 4 trains it from ``conf/train_<name>.yaml``."""
        return "config" in self.training

    @property
    def train_config(self):
        return f"conf/train_{self.name}.yaml" if self.trained else None


SYSTEMS = (
    System("text_only", "text-only LLM", "text-only", "t", "Text-only LLM", "text", ("none",), demo_baseline=True),
    System("blsp_emo", "BLSP-Emo baseline", "BLSP-Emo", "B", "BLSP-Emo", "speech", ("config", "imported"),
           demo_baseline=True,
           description="An empathetic speech-LLM (the BLSP-Emo baseline): a frozen Whisper encoder, a convolutional "
                       "adapter and an instruction LLM with partial LoRA, plus an emotion-class head on the pooled "
                       "adapter output. It hears an utterance, names its emotion and writes an empathetic reply."),
    System("blsp_emo_ft", "BLSP-Emo (fine-tuned)", "BLSP-Emo (fine-tuned)", "F", "BLSP-Emo (fine-tuned)", "speech",
           ("config",)),
    System("rellm", "RE-LLM", "RE-LLM", "R", "RE-LLM", "speech", ("config",),
           description="An empathetic speech-LLM with an emotion nuance module (RE-LLM): a frozen Whisper encoder, a "
                       "convolutional adapter that fuses the speech states with the embedding of a frozen "
                       "dimensional emotion encoder, and an instruction LLM with partial LoRA, plus emotion-class "
                       "and arousal / valence / dominance heads on the pooled adapter output. It hears an "
                       "utterance, names its emotion and writes an empathetic reply."),
)

# The teacher's expected responses for the test utterances (stage 3), scored beside the systems as the ceiling.
TEACHER = "teacher"
TEACHER_LABEL = "teacher (expected responses)"


def by_name():
    return {s.name: s for s in SYSTEMS}


def get(name):
    """The record of ``name``, or None for a name not listed."""
    return by_name().get(str(name))


def names(training=None, modality=None):
    """The listed systems' names in table order, those trained that way (``training``) or hearing ``modality``."""
    return [s.name for s in SYSTEMS if (training is None or training in s.training)
            and (modality is None or s.modality == modality)]


def label(name):
    """The row label of ``name`` (the name itself when not listed)."""
    if name == TEACHER:
        return TEACHER_LABEL
    system = get(name)
    return system.label if system else str(name)


def short_name(name):
    system = get(name)
    return system.short if system else str(name)


def title(name):
    system = get(name)
    return system.title if system else str(name)


def mark_letter(name):
    """The letter after a significance mark; an unlisted system's first character."""
    system = get(name)
    return system.letter if system else (str(name)[:1] or "?")


def ordered(systems):
    """``systems`` in table order: the listed ones as listed, then the others as given."""
    systems = list(dict.fromkeys(systems))
    known = [s.name for s in SYSTEMS if s.name in systems]
    return known + [s for s in systems if s not in known]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rellm.systems", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("names", help="the systems' names, one line, space-separated (for run.sh)")
    listing.add_argument("--training", choices=TRAINING, help="only the systems stage 4 makes this way")
    listing.add_argument("--modality", choices=MODALITIES, help="only the systems that hear this")
    show = sub.add_parser("show", help="one system's record as JSON")
    show.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "names":
        print(" ".join(names(args.training, args.modality)))
        return 0
    system = get(args.name)
    if system is None:
        print(f"ERROR: unknown system {args.name!r}; the systems are {', '.join(names())} (rellm/systems.py)",
              file=sys.stderr)
        return 1
    print(json.dumps({**asdict(system), "training": list(system.training), "train_config": system.train_config}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
