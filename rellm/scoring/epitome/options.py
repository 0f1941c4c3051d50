"""The EPITOME training options: which of them make a model (the cache fingerprint), and their resolution."""

# Options that change a trained model; they make up the cache fingerprint.
TRAIN_OPTION_KEYS = (
    "encoder", "max_len", "response_max_len", "split_seed", "split_fractions", "seed", "lr", "epochs", "batch_size",
    "warmup_ratio", "weight_decay", "grad_clip", "dropout", "lambda_level", "lambda_rationale",
    "level_weighting", "evals_per_epoch", "select_on", "average_best", "responder_trainable_layers",
)
# Options added after the first release: a config without them trains as it did before.
OPTION_DEFAULTS = {"response_max_len": None, "average_best": 1}


def train_options(conf, mechanism=None):
    """The options that make a model; with ``mechanism``, a ``{ER: .., IP: .., EX: ..}`` value is resolved."""
    out = {}
    for key in TRAIN_OPTION_KEYS:
        if key not in conf and key not in OPTION_DEFAULTS:
            raise KeyError(f"the EPITOME config lacks '{key}' (see rellm/scoring/epitome/epitome.yaml)")
        value = conf.get(key, OPTION_DEFAULTS.get(key))
        if mechanism is not None and isinstance(value, dict):
            if mechanism not in value:
                raise ValueError(f"{key} is given per mechanism ({', '.join(sorted(value))}) but not for {mechanism}")
            value = value[mechanism]
        out[key] = value
    return out


def training_device(conf):
    """``conf['device']`` (cpu, cuda, cuda:1, ...; absent: cpu), checked before any work starts."""
    import torch  # here, not at import: stage 6 finds cached classifiers without it

    device = torch.device(conf.get("device") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} asked for, but torch sees no CUDA GPU; use --device=cpu")
    return device


def trainable_layers(value):
    """``responder_trainable_layers`` as a count, or None for all of them."""
    return None if value in (None, "all") else int(value)


def response_max_len(options):
    """Tokens kept of a response: ``response_max_len``, or ``max_len`` (the seeker post's) when it is null."""
    return int(options.get("response_max_len") or options["max_len"])
