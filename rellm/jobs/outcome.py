"""Which tasks of a job array succeeded, and how a failure is reported (shared by all backends)."""
import sys

from rellm.jobs.task import read_exit_code, tail

TAIL_LINES = 20


def tasks_to_run(spec):
    """All tasks, or with ``--pick failed`` only those whose log does not record exit code 0."""
    if spec.pick == "failed":
        return [j for j in spec.task_ids if read_exit_code(spec.log_of(j)) != 0]
    return spec.task_ids


def failed_tasks(spec, task_ids):
    """``[(task_id, exit_code_or_None)]`` for the tasks whose log does not end with exit code 0."""
    failed = []
    for j in task_ids:
        code = read_exit_code(spec.log_of(j))
        if code != 0:
            failed.append((j, code))
    return failed


def report_failures(spec, task_ids, failed, extra_tail=None, stream=None):
    """Print which logs failed and the tail of the first one; return the runner's exit status.

    ``extra_tail(task_id)`` may return ``(path, text)`` of a scheduler-side file worth showing
    for a task that left no exit code (killed for time or memory, node failure).
    """
    stream = stream or sys.stderr
    if not failed:
        return 0
    first, first_code = failed[0]
    listing = ", ".join(
        f"{spec.log_of(j)} ({'exit code ' + str(code) if code is not None else 'no exit code: never finished'})"
        for j, code in failed[:10]
    )
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    print(f"ERROR: {len(failed)} of {len(task_ids)} job(s) failed: {listing}{more}", file=stream)
    log_tail = tail(spec.log_of(first), TAIL_LINES)
    if log_tail:
        print(f"ERROR: last lines of {spec.log_of(first)}:", file=stream)
        print("\n".join("    " + line for line in log_tail.splitlines()), file=stream)
    else:
        print(f"ERROR: {spec.log_of(first)} was never written", file=stream)
    if first_code is None and extra_tail is not None:
        found = extra_tail(first)
        if found:
            path, text = found
            print(f"ERROR: last lines of the scheduler's output {path}:", file=stream)
            print("\n".join("    " + line for line in text.splitlines()), file=stream)
    if spec.var:
        print("To re-run only the failed jobs, run the same runner command with --pick failed.", file=stream)
        return 1
    return first_code if first_code else 1
