"""What a stage-4 training run reads, for its lineage (``rellm.utils.lineage``) and for ``--overwrite``.

Stage 4 reads its config, the manifests of the train and valid sets, their features (stage 2), their teacher
responses (stage 3), the same three for step 1's ASR data when step 1 runs on it, the experiment it starts from
(``init_from``: the trained or imported BLSP-Emo) and the LLM. Each upstream output is recorded through its done
marker (or, in folders made without one, through the file stage 4 reads), so retraining is required whenever one
of them is remade.
"""
from pathlib import Path

from rellm.pretrained.identity import add_model
from rellm.utils.lineage import FEATURES_MARKER, RESPONSES_MARKER, Inputs, stage_output
from rellm.utils.stage import fingerprint


def add_sets(inputs, prefix, data_dir, feats_dir, responses_dir, sets, responses_file):
    for role, set_name in sets:
        inputs.file(f"{prefix}{role}_manifest", Path(data_dir) / f"{set_name}.json")
        stage_output(inputs, f"{prefix}{role}_features", Path(feats_dir) / set_name, FEATURES_MARKER, "index.jsonl")
        stage_output(inputs, f"{prefix}{role}_responses", Path(responses_dir) / set_name, RESPONSES_MARKER,
                     responses_file)


def training_inputs(values, config_path):
    """The :class:`~rellm.utils.lineage.Inputs` of one stage-4 run; ``values`` is the resolved config (plain)."""
    inputs = Inputs().file("config", config_path)
    add_sets(inputs, "", values["data_dir"], values["feats_dir"], values["responses_dir"],
             [("train", values["train_set"]), ("valid", values["valid_set"])], "expected.jsonl")
    init_from = values.get("init_from")
    runs_step1 = not init_from and int(values.get("step1_epochs", 0) or 0) > 0
    if runs_step1 and values.get("step1_data_dir"):  # step 1 on ASR data (run.sh --step1_data)
        add_sets(inputs, "step1_", values["step1_data_dir"], values["step1_feats_dir"], values["step1_responses_dir"],
                 [("train", values["step1_train_set"]), ("valid", values["step1_valid_set"])], "continuation.jsonl")
    if init_from:
        add_model(inputs, "init_from", init_from)
    return add_model(inputs, "llm", values["llm_name"])


def run_fingerprint(options, inputs):
    """One id for "these options on these inputs": the run that an experiment's save/ belongs to."""
    return fingerprint({"options": options, "inputs": {n: e["fingerprint"] for n, e in inputs.entries.items()}})
