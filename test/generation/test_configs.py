"""Every recipe's stage 3 and 5 configs load and have the same keys (no recipe drifts)."""
from pathlib import Path

import pytest

from rellm.generation.prompts import SER_INSTRUCTION, SYSTEM_EMPATHETIC, SYSTEM_PLAIN, TEACHER_EMOTION_INSTRUCTION
from rellm.utils.config import load_config, top_level_keys

EGS = Path(__file__).resolve().parents[2] / "egs"
RECIPES = ("mini", "iemocap", "esd", "msp_podcast")
NEEDED = {
    "respond": {"manifest": "m.json", "output_dir": "o"},
    "infer": {"system": "rellm", "model_dir": "e", "manifest": "m.json", "feats_dir": "d", "output_dir": "o"},
}


@pytest.mark.parametrize("stage", ["respond", "infer"])
def test_recipes_share_the_keys(stage):
    keys = {r: set(top_level_keys(EGS / r / "conf" / f"{stage}.yaml")) for r in RECIPES}
    assert all(k == keys["mini"] for k in keys.values()), keys


@pytest.mark.parametrize("recipe", RECIPES)
def test_configs_load_with_the_paper_prompts(recipe):
    respond = load_config(EGS / recipe / "conf" / "respond.yaml", NEEDED["respond"])
    infer = load_config(EGS / recipe / "conf" / "infer.yaml", NEEDED["infer"])
    assert respond["expected_system_prompt"] == SYSTEM_EMPATHETIC
    assert respond["continuation_system_prompt"] == SYSTEM_PLAIN
    if recipe != "mini":  # mini: 32 tokens after an emotion opening (egs/mini/conf/respond.yaml)
        assert respond["max_new_tokens"] == 48
        assert respond["expected_openings"] == {} and not respond["tidy_replies"]  # the paper's teacher
        assert respond["expected_template"] == TEACHER_EMOTION_INSTRUCTION
        assert infer["response_max_new_tokens"] == 256
    assert infer["response_system_prompt"] == SYSTEM_EMPATHETIC and infer["response_instruction"] == ""
    assert infer["ser_instruction"] == SER_INSTRUCTION and infer["ser_system_prompt"] == SYSTEM_PLAIN
    assert infer["ser_max_new_tokens"] == 128  # released: 128 (an answer cut at 32 tokens can lose its label)
