"""Stage 4: two-step alignment training of BLSP-Emo or RE-LLM.

    python -m rellm.bin.train conf/train_<model>.yaml --ngpu N --seed S --data_dir data/<split> \
        --feats_dir dump/<split> --responses_dir exp/responses/<split> --train_set train --valid_set valid \
        --exp_root exp --split <split> --output_folder exp/<model>/<split>/seed<S>

``--ngpu 0`` trains on CPU, ``--ngpu 1`` on one GPU, ``--ngpu N`` relaunches itself under
``torchrun --nproc_per_node N`` (DDP; batch sizes are per device). Re-running the same
command resumes from the newest complete checkpoint; a finished run is skipped.
"""
import sys

from rellm.training.stage import check_init_from, resolve_auto_dims, run_options, run_stage
from rellm.utils.config import parse_stage_args, run_main

__all__ = ["check_init_from", "main", "resolve_auto_dims", "run_options"]  # earlier homes, still importable


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path, overrides = parse_stage_args(argv, __doc__)
    return run_stage(config_path, overrides, argv)


if __name__ == "__main__":
    run_main(main)
