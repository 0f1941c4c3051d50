"""The trained LoRA of a SpeechLLM as a standard peft adapter folder (``adapter_config.json`` +
``adapter_model.safetensors``), loadable with ``PeftModel.from_pretrained(base_llm, folder)``.

``SpeechLLM.own_state_dict`` names a LoRA matrix ``llm.<peft parameter name>``, the name inside the
``PeftModel`` that ``rellm.models.plora.add_lora`` builds, e.g.
``llm.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight``. peft saves the same
parameter without the adapter name (``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``).

Such an adapter applies LoRA at every position of every forward; the trained model applies it at the
speech positions of the prompt only (docs/method.md#partial-lora), so the plain peft model is not
RE-LLM: the model card says so.
"""
import re
from pathlib import Path

ADAPTER_DIR = "lora_adapter"
_NAME = re.compile(r"^llm\.(.*\.lora_[AB])\.[^.]+\.weight$")


def peft_state_dict(state):
    """``{peft name: tensor}`` of the LoRA matrices in a SpeechLLM state (``final/trainable.safetensors``)."""
    out = {}
    for name, tensor in state.items():
        match = _NAME.match(name)
        if match:
            out[f"{match.group(1)}.weight"] = tensor
    return out


def write_peft_adapter(state, model_config, folder, base_model_name_or_path=None):
    """Write ``folder/adapter_config.json`` and ``folder/adapter_model.safetensors``; returns the tensor count
    (0 and nothing written for a model without LoRA)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    tensors = peft_state_dict(state)
    if not tensors or int(model_config.get("lora_r", 0)) <= 0:
        return 0
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = LoraConfig(r=int(model_config["lora_r"]), lora_alpha=model_config["lora_alpha"],
                        lora_dropout=float(model_config.get("lora_dropout", 0.0)),
                        target_modules=list(model_config["lora_target_modules"]), bias="none",
                        task_type="CAUSAL_LM", base_model_name_or_path=base_model_name_or_path)
    config.save_pretrained(str(folder))
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    return len(tensors)
