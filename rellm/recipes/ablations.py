"""RE-LLM's ablations: each one factor, as stage-4 overrides of conf/train_rellm.yaml.

``./run.sh --ablation NAME`` trains RE-LLM with the ablation's overrides into its own tag (``exp/<NAME>/rellm/...``),
infers and scores it beside the main run's baselines, and reports it in its own RESULTS.md section; the main rows
are never overwritten. ``python -m rellm.recipes.ablations`` lists them; ``... args NAME`` prints the overrides.
A test (test/consistency/test_matched_control.py) checks on the resolved configs that each changes only its factor.

The matched control is not an ablation: ``blsp_emo_ft`` (conf/train_blsp_emo_ft.yaml) is a system of every run.
"""
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ablation:
    description: str
    overrides: dict
    factor_keys: frozenset = field(default=frozenset())  # the config keys that make up the one factor changed

    def __post_init__(self):
        if not self.factor_keys:
            object.__setattr__(self, "factor_keys", frozenset(self.overrides))

    def args(self):
        return " ".join(f"--{k}={v}" for k, v in self.overrides.items())


ABLATIONS = {
    "no_avd": Ablation("no A/V/D loss", {"lambda_dim": 0.0}),
    "no_ser_loss": Ablation("no categorical (SER) loss", {"lambda_cat": 0.0}),
    "no_fusion": Ablation("A/V/D loss without the emotion embedding (no fusion; the A/V/D head reads the pooled "
                          "adapter output)", {"emotion_dim": 0, "emotion_encoder": "null"}),
    "emotion_head_trained": Ablation("SER head trained, as the paper's figure draws it (released: frozen)",
                                     {"train_emotion_head": "true"}),
    "kl_response": Ablation("soft KL response loss to the emotion-labelled text LLM instead of CE (the figure's L_KL)",
                            {"response_loss": "kl"}),
    "fusion_expand": Ablation("fusion adapter warm-started from BLSP-Emo's (function-preserving) instead of fresh",
                              {"fusion_init": "expand"}),
    "target_template": Ablation("target ending <|im_end|> only (released: <|im_end|>, newline, <|endoftext|>)",
                                {"target_end": "template"}),
    "linear_warmup": Ablation("linear learning-rate warm-up (released: DeepSpeed's logarithmic one)",
                              {"warmup_type": "linear"}),
    "avd_annotation": Ablation("A/V/D targets from the corpus's annotations only", {"avd_source": "annotation"}),
    "avd_encoder": Ablation("A/V/D targets from the emotion encoder's predictions only", {"avd_source": "encoder"}),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        width = max(map(len, ABLATIONS))
        for name, ablation in ABLATIONS.items():
            print(f"{name:<{width}}  {ablation.args():<45} {ablation.description}")
        return 0
    if argv[0] == "args" and len(argv) == 2:
        if argv[1] not in ABLATIONS:
            print(f"ERROR: unknown ablation {argv[1]!r}; choose from {', '.join(ABLATIONS)} "
                  "(python -m rellm.recipes.ablations lists them)", file=sys.stderr)
            return 2
        print(ABLATIONS[argv[1]].args())
        return 0
    print("usage: python -m rellm.recipes.ablations [args NAME]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
