"""Each reference model declares its settings once (its ``Config``) and what tasks need to know of it
(``normalises``, ``preferred_encoders``); ``Task.model_config`` combines those with the task's facts."""

import dataclasses
import json

import pytest
import torch.nn.functional as F

from polymodal.baselines import MODELS, ReferenceModel, SynergyClip
from polymodal.benchmarks.tasks import TASKS, load_task
from polymodal.benchmarks.tasks.base import Task

INPUTS = {"a": 5, "b": 4, "c": 3}
#: Options off the defaults, per registered model, so that the round trip carries every kind of value.
OPTIONS = {
    "clip": {"temperature": "schedule", "temperature_options": {"end": 3.0, "steps": 4}, "swap_p": 0.25},
    "symile": {"negatives": "n_squared", "learn_logit_scale": False, "logit_scale_init": 0.5},
    "trml": {"objective": "symile", "negatives": "n_squared", "fusion": "concat", "alpha": 0.5, "d_model": 8},
    "synergy-clip": {"gamma": 2.0, "bottleneck": 7, "encoder_options": None},
    "alignclip": {"heads": 2, "imsep_sides": "text", "beta": 0.25, "text": None},
    "gram": {"anchor": "b", "label_smoothing": 0.0, "temperature": "learned"},
    "triangle": {"anchor": "all", "logit_scale_init": 1.0},
    "gated-symile": {"negatives": "pair", "pair_negatives": 3, "gate_type": "softmax", "gate_neutral": "ones"},
    "confu": {"fusion_weight": 0.25, "fusion_hidden": 7, "dropout": 0.0},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_card_config_is_the_declaration_and_rebuilds_the_model(name):
    model = MODELS[name](INPUTS, **OPTIONS[name])
    card = model.card()
    objective = getattr(model, "objective", None)  # the reference models' objective options are on the card too
    own = dataclasses.asdict(model.config) | (dataclasses.asdict(objective) if objective is not None else {})
    assert card["config"] == own
    assert set(card["config"]) == {f.name for f in dataclasses.fields(model.Config)} | set(own)
    rebuilt = MODELS[name](INPUTS, **json.loads(json.dumps(card["config"])))
    assert rebuilt.card() == card and rebuilt.config == model.config


def test_the_card_keeps_the_settings_as_given_and_resolved():
    options = {"end": 3.0, "steps": 4}
    model = MODELS["clip"](INPUTS, temperature="schedule", temperature_options=options, learn_logit_scale=None)
    options["steps"] = 9  # the caller's dict changing later must not change the card
    config = model.card()["config"]
    assert config["temperature_options"] == {"end": 3.0, "steps": 4} and config["encoder_options"] == {}
    assert "learn_logit_scale" not in config  # the older spelling is resolved into temperature
    assert MODELS["trml"](INPUTS, learn_logit_scale=False).card()["config"]["temperature"] == "fixed"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_unknown_setting_is_refused_by_name(name):
    with pytest.raises(TypeError, match=r"has no setting 'bogus'; its settings: .*d_model"):
        MODELS[name](INPUTS, bogus=1)
    with pytest.raises(TypeError, match="no setting 'bottleneck'"):  # another model's setting is unknown here too
        MODELS["alignclip" if name == "synergy-clip" else "symile"](INPUTS, bottleneck=4)


def test_trml_validates_its_own_and_the_reference_settings():
    with pytest.raises(ValueError, match="unknown fusion"):
        MODELS["trml"](INPUTS, fusion="max")
    with pytest.raises(ValueError, match="swap_p"):
        MODELS["trml"](INPUTS, swap_p=1.5)


class LayerNormTask(Task):
    """Only the facts a task states: settings its protocol fixes, and that its encoders end in LayerNorm."""

    model_defaults = {"encoders": "m3-embedded", "d_model": 64}
    layernorm_encoders = True


class UnitSphereClip(ReferenceModel):
    """A new model that L2-normalises whatever its encoders give, and says so."""

    normalises = True

    def encode(self, modality, x):
        return F.normalize(super().encode(modality, x), dim=-1)


class ByHand:
    """A model that is no ContrastiveModel; its declarations are read all the same."""

    normalises = True
    preferred_encoders = {"m3-embedded": {"encoders": "linear_l2"}}


def test_an_l2_normalising_model_keeps_its_own_scale_on_a_layernorm_task():
    for task in (LayerNormTask(), load_task("symile-m3"), load_task("vggsound-plus"), load_task("xor")):
        assert "logit_scale_init" not in task.model_config(UnitSphereClip)
        assert "logit_scale_init" not in task.model_config(ByHand)
    for task in (LayerNormTask(), load_task("symile-m3"), load_task("vggsound-plus")):
        assert task.model_config(ReferenceModel)["logit_scale_init"] == 0.0
        # Gated Symile's own start is a scale of 1, with its ×d factor; CLIP's would be 14× hotter.
        assert "logit_scale_init" not in task.model_config("gated-symile")
    task = load_task("symile-m3")
    model = UnitSphereClip(task.inputs({"config": {"images": "digits"}}), **task.model_config(UnitSphereClip))
    assert model.logit_scale().item() == pytest.approx(1 / 0.07)


def test_a_model_prefers_its_own_encoders_for_a_task_family():
    expected = {"encoders": "linear_l2", "d_model": 64}
    assert LayerNormTask().model_config(ByHand) == expected
    assert load_task("xor").model_config(ByHand) == {"d_model": 16}  # xor names no family to replace
    vgg = load_task("vggsound-plus")
    assert vgg.model_config("synergy-clip") == vgg.model_config(SynergyClip)
    assert vgg.model_config("synergy-clip")["encoders"] == "hf-synergy"
    assert load_task("symile-m3").model_config("synergy-clip")["encoders"] == "m3-embedded"


#: Whether each registered model L2-normalises what it scores, as its docstring says.
MODELS_NORMALISING = {"clip": False, "symile": False, "trml": False, "synergy-clip": True, "alignclip": True,
                      "gram": True, "triangle": True, "gated-symile": True, "confu": True}


def expected_config(task: str, model: str) -> dict:
    """What each task built each registered model with before the models declared themselves."""
    if task == "xor":
        return {"d_model": 16}
    if task == "xnor":  # the official MLP encoders, L2-normalised, so no task sets a scale
        return {"encoders": "mlp", "d_model": 256}
    config = {"encoders": "m3-embedded" if task == "symile-m3" else "av-embedded", "d_model": 64}
    if not MODELS_NORMALISING[model]:  # a model on the unit sphere keeps its own initial scale
        config["logit_scale_init"] = 0.0
    if (task, model) == ("vggsound-plus", "synergy-clip"):
        config |= {"encoders": "hf-synergy", "encoder_options": {"size": "tiny"}}
    if model == "alignclip":  # the embedded layouts keep its texts' distances offline, as before its paper default
        config |= {"semantic": "bytes-ngram"}
    return config


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_builds_every_model_as_before_without_a_table_of_models(task):
    loaded = load_task(task)
    assert {m: loaded.model_config(m) for m in MODELS} == {m: expected_config(task, m) for m in MODELS}
    tables = [k for k, v in vars(type(loaded)).items() if isinstance(v, dict) and set(v) & set(MODELS)]
    assert not tables, f"{task} keys {tables} by model name; let the models declare what they need"
