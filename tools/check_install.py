#!/usr/bin/env python3
"""Print what the rellm environment holds: versions, CUDA/bf16, optional pieces, cached models.

Exit status 1 when a required package is missing (the message says to run ``make install``).
``--brief`` prints only the required packages and the problems (used at the end of ``make install``).
"""
import argparse
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys

REQUIRED = ["torch", "torchaudio", "speechbrain", "transformers", "peft", "hyperpyyaml", "soundfile", "librosa",
            "sentencepiece", "gguf", "tqdm", "matplotlib", "scipy", "sklearn", "rellm"]
# optional: (import name, what it is for)
OPTIONAL = [
    ("ctranslate2", "test-only: checks the Whisper converter against the reference implementation"),
    ("espeakng_loader", "synthetic speech for the mini recipe and the tests"),
    ("jiwer", "WER in tests"),
    ("pytest", "make test"),
    ("ruff", "make lint"),
]
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "espeakng_loader": "espeakng-loader"}


def version_of(module_name):
    try:
        return importlib.metadata.version(DISTRIBUTION.get(module_name, module_name))
    except importlib.metadata.PackageNotFoundError:
        return getattr(importlib.import_module(module_name), "__version__", "unknown")


def probe(module_name):
    """``(version, None)`` when importable, else ``(None, reason)``."""
    try:
        importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure (missing, broken binary) is reported, not raised
        return None, f"{type(err).__name__}: {err}"
    return version_of(module_name), None


def accelerator_lines():
    import torch

    lines = [f"torch threads: {torch.get_num_threads()}  (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"]
    if torch.cuda.is_available():
        lines.append(f"CUDA: yes (torch built for CUDA {torch.version.cuda}), {torch.cuda.device_count()} device(s)")
        for i in range(torch.cuda.device_count()):
            lines.append(f"  cuda:{i} {torch.cuda.get_device_name(i)}")
        lines.append(f"bf16: {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        built = f"torch built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only torch build"
        lines.append(f"CUDA: no ({built}); bf16 on CPU: yes (slow; the recipes use fp32 on CPU)")
    return lines


def pretrained_lines():
    """State of each registry model in the cache of the offline pretrained-model kit (rellm.pretrained)."""
    try:
        from rellm.pretrained import REGISTRY, cache_root, is_current, model_dir, read_card
    except Exception as err:  # noqa: BLE001 - the kit is optional for this report
        return [f"pretrained models: cannot read the cache ({type(err).__name__}: {err})"]
    lines = [f"pretrained models in {cache_root()}:"]
    for name in sorted(REGISTRY):
        if is_current(name):
            state = f"converted ({model_dir(name)})"
        elif read_card(name):
            state = "stale: re-run 'python -m rellm.pretrained fetch " + name + "'"
        else:
            state = "not fetched ('python -m rellm.pretrained fetch " + name + "')"
        lines.append(f"  {name:<24} {state}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brief", action="store_true", help="required packages and problems only")
    args = parser.parse_args(argv)

    print(f"python: {platform.python_version()} ({sys.executable})")
    missing = []
    for name in REQUIRED:
        version, problem = probe(name)
        if problem:
            missing.append(name)
            print(f"  {name:<16} MISSING  {problem}")
        else:
            print(f"  {name:<16} {version}")
    if not args.brief:
        print("optional:")
        for name, purpose in OPTIONAL:
            version, problem = probe(name)
            print(f"  {name:<16} {version if version else 'absent'}  ({purpose})")
        sbatch = shutil.which("sbatch")
        print(f"  {'sbatch':<16} {sbatch or 'absent'}  (Slurm backend: RELLM_CMD_BACKEND=slurm)")
        for line in pretrained_lines():
            print(line)
        if "torch" not in missing:
            for line in accelerator_lines():
                print(line)
    if missing:
        print(f"ERROR: missing required package(s): {', '.join(missing)}; run 'make install'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
