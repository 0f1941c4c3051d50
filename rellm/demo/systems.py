"""Which systems the demo runs: the model it was started on, and the baselines of ``--compare``.

``--compare`` takes a comma-separated list of baselines:

- ``text_only``: the same LLM given the Whisper transcript instead of the speech (asked of the main model, which
  holds both; no second model is loaded);
- ``blsp_emo``: the BLSP-Emo experiment trained beside the main one, ``exp/blsp_emo/<split>/seed<k>`` for a main
  model in ``exp/rellm/<split>/seed<k>`` (the recipe layout, ``rellm.utils.experiment_dir``), or any folder
  given as ``blsp_emo=PATH`` (an exported model, a released checkpoint imported elsewhere).
"""
from dataclasses import dataclass
from pathlib import Path

from rellm import systems as registry
from rellm.utils.experiment_dir import ExperimentDir

# what --compare offers (rellm.systems: demo_baseline), and the names the page shows
BASELINES = tuple(sorted(s.name for s in registry.SYSTEMS if s.demo_baseline))
DISPLAY_NAMES = {s.name: s.title for s in registry.SYSTEMS}


class DemoError(RuntimeError):
    """A user error of ``rellm-demo``; printed as one line."""


@dataclass(frozen=True)
class Baseline:
    name: str              # one of BASELINES
    path: Path | None      # the model folder to load; None for text_only (the main model answers it)


def sibling_experiment(main_path, model):
    """``exp/<model>/<split>/seed<k>`` beside ``exp/<other>/<split>/seed<k>``, or None when ``main_path`` is not
    laid out that way (an exported folder, say)."""
    main = Path(main_path).resolve()
    if not main.name.startswith("seed") or len(main.parts) < 4:
        return None
    return main.parents[2] / model / main.parent.name / main.name


def has_model(path):
    """Whether the experiment folder ``path`` holds a trained model (stage 4's ``final/model.json``)."""
    return ExperimentDir(path).has_final()


def parse_compare(spec, main_path):
    """The baselines of ``--compare SPEC`` (``blsp_emo,text_only``, ``blsp_emo=PATH``), in the order given."""
    if not spec:
        return []
    baselines, seen = [], set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in BASELINES:
            raise DemoError(f"--compare: unknown baseline {name!r}; choose from {', '.join(BASELINES)} "
                            "(e.g. --compare blsp_emo,text_only or --compare blsp_emo=PATH)")
        if name in seen:
            raise DemoError(f"--compare names {name} twice")
        seen.add(name)
        if name == "text_only":
            if sep:
                raise DemoError("--compare text_only takes no path: it is the main model's LLM given the transcript")
            baselines.append(Baseline(name, None))
            continue
        if sep:
            path = Path(value.strip()).expanduser()
            if not path.is_dir():
                raise DemoError(f"--compare {name}={value}: no such folder; give an experiment folder "
                                "exp/blsp_emo/<split>/seed<k> or an exported model")
        else:
            path = sibling_experiment(main_path, name)
            if path is None:
                raise DemoError(f"--compare {name}: {main_path} is not an exp/<model>/<split>/seed<k> folder, so its "
                                f"{name} sibling is unknown; give the folder: --compare {name}=PATH")
            if not has_model(path):
                raise DemoError(f"--compare {name}: {path} holds no trained model (no final/model.json); train it "
                                f"(stage 4) or give another folder: --compare {name}=PATH")
        if path.resolve() == Path(main_path).resolve():
            raise DemoError(f"--compare {name}: {path} is the model the demo runs; give a different folder")
        baselines.append(Baseline(name, path))
    return baselines
