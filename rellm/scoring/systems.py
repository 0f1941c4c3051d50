"""The names stage 6 shows for the scored systems: one table for RESULTS.md, the plots and the provenance section.

Stage 6 scores whatever system names it is given (``--systems``); a name missing here is shown as it is, so a new
system needs no code change, only a row here for a nicer label. ``mark`` is the letter of RESULTS.md's significance
marks (``<sup>*t</sup>``: RE-LLM significantly above the text-only LLM); ``short`` is the name in running text.
"""

# system: (label in tables and plots, short name in sentences, significance-mark letter); in table row order
SYSTEMS = {
    "text_only": ("text-only LLM", "text-only", "t"),
    "blsp_emo": ("BLSP-Emo baseline", "BLSP-Emo", "B"),
    "blsp_emo_ft": ("BLSP-Emo (fine-tuned)", "BLSP-Emo (fine-tuned)", "F"),
    "rellm": ("RE-LLM", "RE-LLM", "R"),
}

# The teacher's expected responses for the test utterances (stage 3), scored beside the systems as the ceiling.
TEACHER = "teacher"
TEACHER_LABEL = "teacher (expected responses)"


def label(system):
    """The row label of ``system`` (its name when the table does not know it)."""
    if system == TEACHER:
        return TEACHER_LABEL
    return SYSTEMS[system][0] if system in SYSTEMS else str(system)


def short_name(system):
    return SYSTEMS[system][1] if system in SYSTEMS else str(system)


def mark_letter(system):
    """The letter after a significance mark; an unknown system's first character."""
    return SYSTEMS[system][2] if system in SYSTEMS else (str(system)[:1] or "?")


def ordered(systems):
    """``systems`` in table order: the known ones as listed above, then the others as given."""
    systems = list(dict.fromkeys(systems))
    known = [s for s in SYSTEMS if s in systems]
    return known + [s for s in systems if s not in SYSTEMS]
