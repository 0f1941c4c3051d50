"""Console progress of a running job array: one line per runner call, read from the tasks' logs.

The tasks write their detail to their own logs; this module reads those logs while the tasks run and shows
one summary line::

    extract dump/official/train: 1/2 jobs done, 1 running | 412/600 utt | elapsed 1:05, ETA 0:31
    train exp/blsp_emo/official/seed1: 0/1 jobs done, 1 running | step 1/2 (step1_semantic), epoch 2/4: 37/90 it
        | elapsed 3:12, this step ends in ~2:10

What it reads in a log:

- tqdm bars (``desc: 37%|###   | 37/120 [00:10<00:17, 3.62utt/s]``): units done and total, and tqdm's own
  estimate of the time left; the counts of the tasks of one array are added up;
- ``progress: ...`` lines, which a task logs when it enters a phase that several bars make up (stage 4:
  ``progress: step 1/2 (step1_semantic), epoch 2/4, training``): shown beside the bar; ``epoch i/n`` in them (or
  in a bar's description, as in stage 2a) turns the bar's estimate into one for all n epochs, and ``step i/n``
  with i < n says that the estimate covers this step only;
- the runner's ``# Started at`` and ``# Ended (code N) ..., elapsed time`` lines (``rellm.jobs.task``): when a
  task started, whether it finished, and how long finished tasks took (the estimate for tasks not started yet).

On a terminal the line is rewritten in place every second; otherwise (a log file, CI) a line is printed every
``$RELLM_PROGRESS_INTERVAL`` seconds (default 60), plus a last one when the array ends.
``RELLM_PROGRESS_INTERVAL=0`` turns the line off.
"""
import datetime
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_INTERVAL_S = 60.0
TTY_REFRESH_S = 1.0
POLL_S = 1.0  # logs are read this often whatever the printing interval, so that phase times are seen as they happen

# tqdm's default bar: "{desc}: {percentage}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}{postfix}]"
_BAR = re.compile(r"(?P<n>\d+)/(?P<total>\d+) \[(?P<elapsed>\d[\d:]*)<(?P<left>\d[\d:]*|\?)"
                  r"(?:, *(?:[\d.]+|\?)(?P<unit>[A-Za-z_]+)/s|, *[\d.]+s/(?P<unit_slow>[A-Za-z_]+))?")
_DESC = re.compile(r"^\s*(?P<desc>.*?):\s+\d+%\|")
_EPOCH = re.compile(r"\bepoch (\d+)/(\d+)")
_STEP = re.compile(r"\bstep (\d+)/(\d+)")
_MARKER = re.compile(r"\bprogress: (?P<what>.+?)\s*$")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)")
_STARTED = re.compile(r"^# Started at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_ENDED = re.compile(r"^# Ended \(code (-?\d+)\) at .*?(?:elapsed time ([\d.]+)s)?$")


def clock_seconds(text):
    """tqdm's ``[H:]MM:SS`` -> seconds."""
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return float(seconds)


def _timestamp(text):
    try:
        return datetime.datetime.fromisoformat(text.replace("T", " ")).timestamp()
    except ValueError:
        return None


def format_duration(seconds):
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Bar:
    """The latest tqdm bar of a task."""

    n: int
    total: int
    unit: str
    desc: str
    elapsed: float
    left: float | None  # tqdm's estimate; None before its first rate
    seen: float  # when it was read


def parse_bar(segment, now):
    """A :class:`Bar` from one line (segment between carriage returns / newlines) of a log, or None."""
    matches = list(_BAR.finditer(segment))
    if not matches:
        return None
    match = matches[-1]
    desc = _DESC.match(segment[:match.start()])
    left = match.group("left")
    return Bar(n=int(match.group("n")), total=int(match.group("total")),
               unit=match.group("unit") or match.group("unit_slow") or "it",
               desc=desc.group("desc").strip() if desc else "", elapsed=clock_seconds(match.group("elapsed")),
               left=None if left == "?" else clock_seconds(left), seen=now)


@dataclass
class TaskLog:
    """What one task's log says so far; read incrementally (only the bytes added since the last read)."""

    path: Path
    offset: int = 0
    identity: tuple = ()
    rest: bytes = b""  # the unfinished last line
    bar: Bar | None = None
    marker: str = ""
    started: float | None = None
    ended: bool = False
    code: int | None = None
    duration: float | None = None
    epoch_starts: dict = field(default_factory=dict)  # epoch number -> when it started, for the current phase
    phase: str = ""
    stale: tuple | None = None  # (inode, size, mtime) of an earlier run's log, ignored until the task rewrites it

    def reset(self):
        self.__init__(self.path)

    def ignore_current_file(self):
        """Whatever the log holds now is an earlier run's: read it only once the task has rewritten it."""
        try:
            stat = self.path.stat()
        except OSError:
            return
        self.stale = (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def read(self, now=None):
        """Read what was added to the log; a log replaced by a new run of the task starts over."""
        now = time.time() if now is None else now
        try:
            stat = self.path.stat()
        except OSError:
            if self.offset or self.started or self.ended:
                self.reset()
            return
        if self.stale is not None:
            if (stat.st_ino, stat.st_size, stat.st_mtime_ns) == self.stale:
                return
            self.stale = None
        identity = (stat.st_dev, stat.st_ino)
        if identity != self.identity or stat.st_size < self.offset:
            self.reset()
            self.identity = identity
        if stat.st_size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(stat.st_size - self.offset)
        self.offset += len(data)
        segments = re.split(rb"[\r\n]", self.rest + data)
        self.rest = segments.pop()
        for segment in segments:
            self._line(segment.decode("utf-8", errors="replace"), now)
        if self.rest:  # the bar being drawn right now: tqdm ends a line only when it draws the next
            bar = parse_bar(self.rest.decode("utf-8", errors="replace"), now)
            if bar is not None:
                self._set_bar(bar, now)

    def _line(self, text, now):
        if text.startswith("# "):
            started, ended = _STARTED.match(text), _ENDED.match(text)
            if started:
                self.started = _timestamp(started.group(1)) or now
            elif ended:
                self.ended, self.code = True, int(ended.group(1))
                self.duration = float(ended.group(2)) if ended.group(2) else None
            return
        marker = _MARKER.search(text)
        if marker:
            stamp = _LOG_TIME.match(text)
            self._set_marker(marker.group("what"), (_timestamp(stamp.group(1)) if stamp else None) or now)
            return
        bar = parse_bar(text, now)
        if bar is not None:
            self._set_bar(bar, now)

    def _set_marker(self, what, when):
        self.marker = what
        # a bar drawn before the marker belongs to the phase before (e.g. a model's "Loading weights: 103/103"):
        # shown beside the new phase it would give a count and an ETA of 0:00 that are not this phase's
        self.bar = None
        epoch = _EPOCH.search(what)
        self._enter(_EPOCH.sub("", what).strip(" ,"), int(epoch.group(1)) if epoch else None, when)

    def _set_bar(self, bar, now):
        self.bar = bar
        epoch = _EPOCH.search(bar.desc)
        if epoch and not self.marker:  # stage 2a: "epoch 3/16" is the bar's description
            self._enter(_EPOCH.sub("", bar.desc).strip(" ,"), int(epoch.group(1)), now - bar.elapsed)

    def _enter(self, phase, epoch, when):
        if phase != self.phase:
            self.phase, self.epoch_starts = phase, {}
        if epoch is not None:
            self.epoch_starts.setdefault(epoch, when)

    def epochs(self):
        """``(epoch, of)`` of the current phase, or None."""
        for text in (self.marker, self.bar.desc if self.bar else ""):
            match = _EPOCH.search(text)
            if match:
                return int(match.group(1)), int(match.group(2))
        return None

    def last_step(self):
        """Whether the current phase is the task's last ``step i/n`` (True when it names none)."""
        match = _STEP.search(self.marker)
        return match is None or int(match.group(1)) >= int(match.group(2))

    def remaining(self, now):
        """Seconds until this task (or its current step, see :meth:`last_step`) ends, or None when unknown."""
        bar_left = None
        if self.bar is not None and self.bar.left is not None:
            bar_left = max(self.bar.left - (now - self.bar.seen), 0.0)
        epochs = self.epochs()
        if epochs is None:
            return bar_left
        epoch, of = epochs
        done = sorted(e for e in self.epoch_starts if e <= epoch)
        if len(done) >= 2:  # measured: the mean duration of the epochs seen start
            per_epoch = (self.epoch_starts[done[-1]] - self.epoch_starts[done[0]]) / (done[-1] - done[0])
            into = now - self.epoch_starts[done[-1]]
            return max(per_epoch - into, bar_left or 0.0) + (of - epoch) * per_epoch
        if bar_left is None or epoch not in self.epoch_starts:
            return None
        # the first epoch: its time so far plus what its bar has left (a validation bar after the training one
        # counts the whole training pass in the time so far)
        per_epoch = now - self.epoch_starts[epoch] + bar_left
        return bar_left + (of - epoch) * per_epoch


def finish_times(remaining, pending, slots, per_task):
    """When the last task ends: running tasks end after ``remaining`` seconds, ``pending`` more of about
    ``per_task`` seconds each take the first free of ``slots`` slots."""
    free = sorted(list(remaining) + [0.0] * max(slots - len(remaining), 0))[:max(slots, 1)] or [0.0]
    end = max(remaining, default=0.0)
    for _ in range(pending):
        start = free.pop(0)
        end = max(end, start + per_task)
        free = sorted([*free, start + per_task])
    return end


class ArrayProgress:
    """The progress of one job array, from its tasks' logs.

    ``tracked=True`` (local backend): a task counts as started only once :meth:`started` is called, so a log
    left by an earlier run is not read as this run's. ``tracked=False`` (Slurm): the logs of the tasks to run
    were removed before submission, so a log that exists belongs to this run.
    """

    def __init__(self, spec, task_ids, slots, tracked=True):
        self.spec, self.task_ids, self.slots, self.tracked = spec, list(task_ids), max(int(slots), 1), tracked
        self.logs = {j: TaskLog(Path(spec.log_of(j))) for j in self.task_ids}
        self.active = set() if tracked else set(self.task_ids)
        self.begin = time.time()
        self._lock = threading.Lock()

    def started(self, task_id):
        """Task ``task_id`` is about to start: its log, when one is there, is an earlier run's until rewritten."""
        with self._lock:
            task = TaskLog(Path(self.spec.log_of(task_id)))
            task.ignore_current_file()
            self.logs[task_id] = task
            self.active.add(task_id)

    @property
    def name(self):
        """``extract dump/official/train``: the log's name and the folder the job writes."""
        log = Path(self.spec.log)
        stem = log.name.removesuffix(".log")
        if self.spec.var:
            stem = stem.replace(f".{self.spec.var}", "").replace(self.spec.var, "")
        folder = log.parent.parent if log.parent.name == "log" else log.parent
        return f"{stem or 'job'} {folder}" if str(folder) != "." else stem or "job"

    def read(self, now=None):
        now = time.time() if now is None else now
        with self._lock:
            for j in self.active:
                self.logs[j].read(now)

    def line(self, now=None):
        """The one progress line."""
        now = time.time() if now is None else now
        with self._lock:
            active = [self.logs[j] for j in self.task_ids if j in self.active]
        done = [t for t in active if t.ended]
        running = [t for t in active if not t.ended and (t.started or t.offset)]
        failed = sum(1 for t in done if t.code != 0)
        pending = len(self.task_ids) - len(done) - len(running)
        parts = [f"{len(done)}/{len(self.task_ids)} jobs done" + (f" ({failed} failed)" if failed else "")
                 + (f", {len(running)} running" if running else "")]
        counts = self._counts(done, running)
        if counts:
            parts.append(counts)
        timing = f"elapsed {format_duration(now - self.begin)}"
        eta = self._eta(done, running, pending, now)
        if eta is not None and (running or pending):
            single_step = len(running) == 1 and not pending and not running[0].last_step()
            step = _STEP.search(running[0].marker) if single_step else None
            timing += (f", step {step.group(1)}/{step.group(2)} ends in ~{format_duration(eta)}" if step
                       else f", ETA {format_duration(eta)}")
        parts.append(timing)
        return f"{self.name}: " + " | ".join(parts)

    def _counts(self, done, running):
        if len(self.task_ids) == 1 and done and done[0].marker:
            return ""  # a task of several phases: its last bar is not the whole task's count
        if len(self.task_ids) == 1 and running:  # one task: its phase and its bar
            task = running[0]
            bar = task.bar
            if not bar:
                return task.marker
            what = ", ".join(x for x in (task.marker if task.marker else "", bar.desc) if x)
            return f"{what + ': ' if what else ''}{bar.n}/{bar.total} {bar.unit}"
        bars = [t.bar for t in (*done, *running) if t.bar is not None]
        if not bars:
            return ""
        unit = bars[0].unit
        same = [b for b in bars if b.unit == unit]
        return f"{sum(b.n for b in same)}/{sum(b.total for b in same)} {unit}"

    def _eta(self, done, running, pending, now):
        remaining = [t.remaining(now) for t in running]
        if any(r is None for r in remaining):
            return None
        if not pending:
            return max(remaining, default=0.0)
        durations = [t.duration for t in done if t.duration is not None]
        if not durations:  # no task finished yet: a running one's whole duration so far plus what it has left
            durations = [now - (t.started or self.begin) + r for t, r in zip(running, remaining)]
        if not durations:
            return None
        return finish_times(remaining, pending, self.slots, sum(durations) / len(durations))


def progress_interval():
    """Seconds between two lines when stdout is not a terminal (``$RELLM_PROGRESS_INTERVAL``; 0: off)."""
    value = os.environ.get("RELLM_PROGRESS_INTERVAL", "")
    try:
        return float(value) if value.strip() else DEFAULT_INTERVAL_S
    except ValueError:
        print(f"WARNING: RELLM_PROGRESS_INTERVAL={value!r} is not a number of seconds; using "
              f"{DEFAULT_INTERVAL_S:g}", file=sys.stderr)
        return DEFAULT_INTERVAL_S


class ProgressLine:
    """Shows :class:`ArrayProgress` on ``stream`` from a background thread; a context manager.

    On a terminal: one line rewritten in place every second, closed with a newline at the end. Otherwise: a line
    every ``interval`` seconds, and the last state at the end when any line was printed (a job that ends before
    the first line adds nothing to the output).
    """

    def __init__(self, progress, stream=None, interval=None, tty=None):
        self.progress = progress
        self.stream = stream or sys.stdout
        self.interval = progress_interval() if interval is None else float(interval)
        self.tty = self.stream.isatty() if tty is None else tty
        self._stop = threading.Event()
        self._thread = None
        self._shown = False

    def __enter__(self):
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="rellm-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is None:
            return False
        self._stop.set()
        self._thread.join()
        if self._shown:
            self.progress.read()
            self._show(self.progress.line(), final=True)
        return False

    def _run(self):
        every = TTY_REFRESH_S if self.tty else self.interval
        next_show = time.monotonic() + every
        while not self._stop.wait(min(POLL_S, every)):
            self.progress.read()
            if time.monotonic() >= next_show:
                self._show(self.progress.line())
                next_show = time.monotonic() + every

    def _show(self, text, final=False):
        if self.tty:
            width = shutil.get_terminal_size((120, 24)).columns
            self.stream.write("\r" + text[:max(width - 1, 20)] + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True
