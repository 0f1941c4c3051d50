"""What a step kept and what it dropped, by reason with the first few examples: the one report shape.

Every report that says "nothing is silently dropped" (stage 1's ``prepare_report.json``, stage 2's and 3's
``report.json``, stage 4's ``data_report.json``, stage 5's ``report.json``) holds this block, at its top level
or under a key::

    {"kept": 12, "dropped": {"missing_audio": {"count": 2, "examples": ["u003", "u007"]}}, "total_dropped": 2}

``dropped`` is sorted by reason; ``examples`` are the first ``max_examples`` (5) met, in order (utterance ids,
paths or small dicts); ``total_dropped`` is the sum of the counts. A step that also counts other things by
reason (items of a release skipped, utterances kept with a caveat) uses :class:`ReasonCounts`, whose JSON is
the ``dropped`` table's: ``{reason: {"count": c, "examples": [...]}}``.
"""
import logging

MAX_EXAMPLES = 5


class ReasonCounts:
    """``{reason: {"count": c, "examples": [first few]}}``."""

    def __init__(self, max_examples=MAX_EXAMPLES):
        self.max_examples = max_examples
        self.table = {}

    def add(self, reason, example=None, count=1):
        slot = self.table.setdefault(reason, {"count": 0, "examples": []})
        slot["count"] += count
        if example is not None and len(slot["examples"]) < self.max_examples:
            slot["examples"].append(example)

    def update(self, table):
        """Add the counts and examples of another table (a shard's, read back from JSON)."""
        for reason, slot in table.items():
            mine = self.table.setdefault(reason, {"count": 0, "examples": []})
            mine["count"] += slot["count"]
            mine["examples"] = (mine["examples"] + list(slot["examples"]))[: self.max_examples]

    def count(self, reason):
        return self.table.get(reason, {}).get("count", 0)

    def total(self):
        return sum(slot["count"] for slot in self.table.values())

    def counts(self):
        """``{reason: count}``, sorted (for log lines)."""
        return {reason: self.table[reason]["count"] for reason in sorted(self.table)}

    def as_dict(self):
        return {reason: {"count": self.table[reason]["count"], "examples": list(self.table[reason]["examples"])}
                for reason in sorted(self.table)}

    def __bool__(self):
        return bool(self.table)


class DropReport:
    """Kept count plus dropped counts by reason with examples; ``as_dict()`` is the shape in the module doc."""

    def __init__(self, max_examples=MAX_EXAMPLES):
        self.kept = 0
        self.dropped = ReasonCounts(max_examples)

    def keep(self, n=1):
        self.kept += n

    def drop(self, reason, example=None, count=1):
        self.dropped.add(reason, example, count)

    @property
    def total_dropped(self):
        return self.dropped.total()

    def update(self, report):
        """Add another report's JSON (``as_dict()`` of a shard)."""
        self.kept += report["kept"]
        self.dropped.update(report["dropped"])

    def as_dict(self):
        return {"kept": self.kept, "dropped": self.dropped.as_dict(), "total_dropped": self.total_dropped}

    def log(self, logger, what):
        """One line: kept, and dropped by reason with two examples each (a warning when anything was dropped)."""
        details = "; ".join(f"{reason} {slot['count']} (e.g. {', '.join(map(str, slot['examples'][:2]))})"
                            for reason, slot in self.dropped.as_dict().items())
        logger.log(logging.WARNING if self.dropped else logging.INFO, "%s: kept %d, dropped %d%s", what, self.kept,
                   self.total_dropped, f": {details}" if details else "")
