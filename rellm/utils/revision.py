"""The code revision a stage's outputs were made with: the git commit of this checkout, and whether it differs.

One rule for every record (stage 4's ``env.log``, RESULTS.md's environment block): ``dirty`` means a tracked file
differs from the commit, except the recipes' own results (``RESULT_PATHS``), which stage 6 itself rewrites in a
checkout (committed results must not make the next run look dirty); untracked files do not count.
"""
import subprocess
from pathlib import Path

# What stage 6 itself rewrites in a checkout.
RESULT_PATHS = ("egs/*/RESULTS*.md", "egs/*/results_figures/**")
CHECKOUT = Path(__file__).resolve().parents[2]  # the folder holding rellm/ (a git checkout, or site-packages)


def git_revision(repo_dir=CHECKOUT):
    """``(hash, dirty)`` of the code checkout, ``("unknown", None)`` outside git (an installed package)."""
    try:
        rev = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=20).stdout.strip()
        excluded = [f":(exclude,glob){p}" for p in RESULT_PATHS]
        status = subprocess.run(["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no",
                                 "--", ".", *excluded],
                                capture_output=True, text=True, check=True, timeout=20).stdout
        return rev, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
