"""The matched control and the ablations differ from RE-LLM in one factor each, checked on the resolved configs.

``blsp_emo_ft`` (conf/train_blsp_emo_ft.yaml) is RE-LLM's configuration without the emotion nuance module: in every
recipe, its resolved config equals train_rellm.yaml's but for the module's keys and its folder. Each ablation of
``rellm.recipes.ablations`` changes only the keys of its one factor.
"""
from pathlib import Path

import pytest

from rellm.recipes.ablations import ABLATIONS
from rellm.utils.config import plain_yaml, resolved_yaml

EGS = Path(__file__).resolve().parents[2] / "egs"
RECIPES = ("TEMPLATE", "mini", "iemocap", "esd", "msp_podcast")
MODULE_KEYS = {"emotion_encoder", "emotion_dim", "lambda_dim"}  # the emotion nuance module: embedding and A/V/D loss


def _resolved(path, overrides=None):
    return plain_yaml(resolved_yaml(path, overrides or {}))


@pytest.mark.parametrize("recipe", RECIPES)
def test_blsp_emo_ft_is_rellm_without_the_emotion_nuance_module(recipe):
    rellm = _resolved(EGS / recipe / "conf" / "train_rellm.yaml")
    control = _resolved(EGS / recipe / "conf" / "train_blsp_emo_ft.yaml")
    differ = {k for k in set(rellm) | set(control) if rellm.get(k) != control.get(k)}
    assert differ == MODULE_KEYS | {"output_folder"}, sorted(differ)
    assert control["emotion_dim"] == 0 and control["lambda_dim"] == 0 and control["emotion_encoder"] is None
    assert control["output_folder"] == rellm["output_folder"].replace("/rellm/", "/blsp_emo_ft/")
    # the same starting point and schedule: both continue the same BLSP-Emo with the same adapter initialisation
    for key in ("init_from", "fusion_init", "step2_epochs", "step2_lr", "step2_batch_size",
                "step2_grad_accumulation_factor", "lambda_cat", "train_emotion_head", "responses_dir"):
        assert control[key] == rellm[key], key


@pytest.mark.parametrize("name", sorted(ABLATIONS))
@pytest.mark.parametrize("recipe", ("TEMPLATE", "iemocap"))
def test_each_ablation_changes_only_its_own_factor(recipe, name):
    ablation = ABLATIONS[name]
    base = _resolved(EGS / recipe / "conf" / "train_rellm.yaml")
    changed = _resolved(EGS / recipe / "conf" / "train_rellm.yaml", ablation.overrides)
    differ = {k for k in set(base) | set(changed) if base.get(k) != changed.get(k)}
    assert differ and differ <= set(ablation.overrides), sorted(differ)
    assert set(ablation.overrides) <= ablation.factor_keys, name
