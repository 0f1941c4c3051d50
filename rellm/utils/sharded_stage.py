"""The skeleton of a sharded stage (2, 3 and 5): shard ``j`` of ``N``, each with its done marker, then a merge.

A stage gives its per-shard work and its merge work; :class:`ShardedStage` does the rest the same way for all:

* shard ``j`` (``run_shard``): skip when ``<output_dir>/shards/.done.<name>.<j>of<N>`` holds the same options
  (``OptionsChangedError`` for other options, unless ``overwrite``); else clear the marker, run the work
  (it writes its files under ``shards/``, e.g. with :meth:`write_jsonl`), then mark the shard done. A shard
  killed before its marker is redone whole.
* the merge (``merge``): skip when ``<output_dir>/.done.<name>_merge`` holds the same options; else check every
  shard is done with its options (a missing one names the jobs to run), run the merge work (it merges the shard
  files in utterance-id order, e.g. with :meth:`merge_jsonl`, and returns the report), write ``report.json``, and
  mark the merge done. Its ``command.txt`` lists the commands of the shard jobs and of the merge.

1 shard and N shards give identical files: shards are contiguous slices of the sorted keys (:meth:`keys`).

Every marker also records the stage's inputs (``rellm.utils.lineage.Inputs``): a shard or merge whose inputs
changed is stale (see ``DoneMarker``). One process at a time works on a shard or on the merge: :meth:`locked`
takes ``shards/.lock.<name>.<j>of<N>`` (the merge: ``.lock.<name>_merge`` and every shard's lock), and the stage
modules take it before they open any log.
"""
import contextlib
import logging
from pathlib import Path

from rellm.utils.io import atomic_write_json, read_json, write_jsonl
from rellm.utils.lock import OutputLock
from rellm.utils.logging import setup_logging
from rellm.utils.sharding import merge_jsonl_shards, shard_keys, shard_path
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"


class ShardedStage:
    """``ShardedStage(name, output_dir, num_shards, hint=...)``: markers ``shards/.done.<name>.<j>of<N>`` and
    ``.done.<name>_merge`` in ``output_dir``; ``hint`` tells the user how to replace outputs of other options."""

    def __init__(self, name, output_dir, num_shards, hint=None, merge_hint=None, stage=None):
        self.name = name
        self.stage = stage
        self.output_dir = Path(output_dir)
        self.num_shards = int(num_shards)
        self.hint = hint
        self.merge_hint = merge_hint or hint
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")

    # ------------------------------------------------------------------ the parts a stage's work uses
    def keys(self, keys, shard):
        """Shard ``shard``'s slice of the sorted ``keys``."""
        return shard_keys(keys, shard, self.num_shards)

    def shard_path(self, name, shard, suffix=".jsonl"):
        return shard_path(self.output_dir, name, shard, self.num_shards, suffix=suffix)

    def write_jsonl(self, name, shard, records):
        """Shard ``shard``'s ``shards/<name>.<j>of<N>.jsonl`` (atomically)."""
        write_jsonl(self.shard_path(name, shard), records)

    def merge_jsonl(self, name, output=None):
        """``(path, count)``: the shards of ``name`` merged sorted by ``utt_id`` (default ``<output_dir>/<name>.jsonl``)."""
        return merge_jsonl_shards(self.output_dir, name, self.num_shards, output=output)

    def shard_marker(self, shard):
        # the shard markers write no command.txt: the merge lists the shard jobs' commands in its own
        return DoneMarker(self.output_dir / "shards", f"{self.name}.{shard}of{self.num_shards}", hint=self.hint,
                          command_file=False, stage=self.stage)

    @property
    def merge_marker(self):
        return DoneMarker(self.output_dir, f"{self.name}_merge", hint=self.merge_hint, stage=self.stage)

    def shard_lock(self, shard):
        return OutputLock(self.output_dir / "shards", f"{self.name}.{shard}of{self.num_shards}",
                          what=f"shard {shard} of {self.num_shards} of {self.output_dir}")

    @contextlib.contextmanager
    def locked(self, shard=None):
        """Hold the lock of shard ``shard`` (None: of the merge, and of every shard so that none is being
        rewritten while it is read). Raises ``LockHeldError`` naming the holder."""
        with contextlib.ExitStack() as stack:
            if shard is None:
                stack.enter_context(OutputLock(self.output_dir, f"{self.name}_merge",
                                               what=f"the merge of {self.output_dir}"))
                for j in range(1, self.num_shards + 1):
                    stack.enter_context(self.shard_lock(j))
            else:
                stack.enter_context(self.shard_lock(int(shard)))
            yield self

    @contextlib.contextmanager
    def running(self, hp, log=True):
        """The shard ``hp["shard"]`` (or, with ``hp["merge"]``, the merge) under its lock, its log
        ``log/<name>.<j>of<N>.log`` (``log/merge.log``) opened only once the lock is held, so that a refused run
        never touches the running one's log (``log=False``: log to stderr only)."""
        shard = None if hp["merge"] else int(hp["shard"])
        with self.locked(shard):
            what = "merge" if shard is None else f"{self.name}.{shard}of{self.num_shards}"
            setup_logging(Path(self.output_dir) / "log" / f"{what}.log" if log else None)
            yield self

    # ------------------------------------------------------------------ the skeleton
    def run_shard(self, shard, options, work, overwrite=False, inputs=None):
        """Run ``work()`` for shard ``shard`` unless it is done with ``options`` and ``inputs``.

        ``work()`` writes the shard's files and returns a dict of extra fields for its done marker (or None).
        Returns True when the work ran, False when the shard was done already.
        """
        shard = int(shard)
        if not 1 <= shard <= self.num_shards:
            raise ValueError(f"shard must be in 1..{self.num_shards}, got {shard}")
        marker = self.shard_marker(shard)
        if marker.is_done(options, overwrite=overwrite, inputs=inputs):
            logger.info("shard %d of %d already done with these options; nothing to do", shard, self.num_shards)
            return False
        marker.clear()  # from here on the shard is in flux: a crash must not leave it marked done
        extra = work() or {}
        marker.mark_done(options, inputs=inputs, **extra)
        logger.info("shard %d of %d done -> %s", shard, self.num_shards, self.output_dir / "shards")
        return True

    def unfinished_shards(self, shard_options, inputs=None):
        """Shards not done with their options (and ``inputs``); ``shard_options(j)`` (a function) or one dict for
        all. A shard done with these options from inputs that changed since stops with ``StaleInputsError``."""
        options_of = shard_options if callable(shard_options) else (lambda j: shard_options)
        return [j for j in range(1, self.num_shards + 1)
                if not self.shard_marker(j).is_done(options_of(j), inputs=inputs)]

    def merge(self, options, shard_options, work, overwrite=False, inputs=None):
        """Merge the shards unless merged with ``options`` and ``inputs``; returns the report (``report.json``).

        ``shard_options``: the options every shard must be done with (a dict, or a function of the shard
        number). ``work()`` writes the merged outputs and returns the report dict.
        """
        marker = self.merge_marker
        report_path = self.output_dir / REPORT_FILE
        if marker.is_done(options, overwrite=overwrite, inputs=inputs):
            logger.info("already merged with these options: %s", self.output_dir)
            return read_json(report_path) if report_path.is_file() else None
        unfinished = self.unfinished_shards(shard_options, inputs)
        if unfinished:
            raise FileNotFoundError(
                f"{len(unfinished)} of {self.num_shards} '{self.name}' shards in {self.output_dir} are not finished "
                f"(jobs {unfinished[:10]}); run them (--shard J --num_shards {self.num_shards}) before --merge true"
            )
        marker.clear()
        report = work()
        atomic_write_json(report_path, report)
        shard_commands = [read_json(self.shard_marker(j).path).get("command") for j in range(1, self.num_shards + 1)]
        marker.mark_done(options, earlier_commands=[c for c in shard_commands if c], inputs=inputs)
        return report
