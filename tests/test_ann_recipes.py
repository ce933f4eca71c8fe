import pytest

from bsnn_bindsnet.data.registry import DATASETS, DatasetInfo
from bsnn_bindsnet.training.recipes import (FAMILIES, PRESETS, PresetFamily, Recipe, get_preset,
                                            learning_rate, register_family, weight_decay)


def test_cifar_full_precision_lr_drops_at_epochs_81_and_122():
    r = get_preset("cifar100-fp").recipe
    # 0-based epoch 79 is the 80th epoch; the 81st (index 80) runs at lr / 10
    assert [learning_rate(r, e) for e in (0, 79, 80, 120, 121, 199)] == pytest.approx(
        [5e-2, 5e-2, 5e-3, 5e-3, 5e-4, 5e-4])


def test_binarization_phase_halves_lr_every_30_epochs_and_drops_decay_after_30():
    r = get_preset("cifar100-bwn").recipe
    assert [learning_rate(r, e) for e in (0, 29, 30, 60)] == pytest.approx(
        [5e-4, 5e-4, 2.5e-4, 1.25e-4])
    assert [weight_decay(r, e) for e in (0, 29, 30)] == [5e-4, 5e-4, 0.0]
    assert get_preset("cifar100-bwn").hybrid


def test_imagenet_binarization_uses_zero_beta1():
    assert get_preset("imagenet-bwn").recipe.betas == (0.0, 0.999)


def test_every_dataset_has_the_four_training_modes():
    for prefix in ("cifar100", "imagenet", "fmnist", "digits"):
        assert {f"{prefix}-fp", f"{prefix}-bwn", f"{prefix}-bwn-scratch",
                f"{prefix}-xnor"} <= set(PRESETS)


def test_bad_preset_and_recipe_are_refused():
    with pytest.raises(ValueError, match="fmnist-fp"):
        get_preset("fmnist")
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        Recipe("rmsprop", 1e-3, 32, 1)
    with pytest.raises(ValueError, match="epochs >= 1"):
        Recipe("sgd", 1e-3, 32, 0)


def test_presets_follow_the_dataset_registry(monkeypatch):
    quick = Recipe("adam", 1e-3, 8, 1)
    monkeypatch.setitem(FAMILIES, "tiny", PresetFamily("mlp", quick, quick, quick, "here"))
    monkeypatch.setitem(DATASETS, "toy", DatasetInfo("toy", (1, 4, 4), 2, (0.5,), (0.5,),
                                                     family="tiny", prefix="t"))
    assert set(PRESETS) - set(_builtin()) == {"t-fp", "t-bwn", "t-bwn-scratch", "t-xnor"}
    fp, bwn = get_preset("t-fp"), get_preset("t-bwn")
    assert (fp.dataset, fp.model, fp.quant, fp.recipe) == ("toy", "mlp", "fp", quick)
    assert bwn.hybrid and bwn.description == "hybrid BWN: binarize a t-fp checkpoint"
    monkeypatch.setitem(DATASETS, "toy", DatasetInfo("toy", (1, 4, 4), 2, (0.5,), (0.5,),
                                                     family="nope"))
    with pytest.raises(ValueError, match="names the preset family 'nope'"):
        get_preset("digits-fp")


def _builtin() -> set:
    kinds = ("fp", "bwn", "bwn-scratch", "xnor", "direct", "qcfs-fp", "qcfs-bwn", "qcfs-snn")
    return {f"{p}-{m}" for p in ("cifar100", "imagenet", "fmnist", "digits", "mnist")
            for m in kinds} - {"imagenet-direct", "mnist-direct", "imagenet-qcfs-fp",
                               "imagenet-qcfs-bwn", "imagenet-qcfs-snn"}


def test_builtin_presets_and_families():
    assert set(PRESETS) == _builtin() and len(PRESETS) == 35
    with pytest.raises(ValueError, match="already registered"):
        register_family("digits", FAMILIES["fmnist"])


def test_the_training_registry_adds_the_direct_model_to_the_anns():
    from bsnn_bindsnet.ann.models import ANN_MODELS
    from bsnn_bindsnet.direct.model import DirectBSNN
    from bsnn_bindsnet.training.models import MODELS, get_model

    assert "direct_bsnn" not in ANN_MODELS and set(MODELS) == {*ANN_MODELS, "direct_bsnn"}
    assert isinstance(get_model("direct_bsnn"), DirectBSNN)
    with pytest.raises(ValueError, match="unknown model 'nope'; choose one of direct_bsnn"):
        get_model("nope")


def test_qcfs_presets_and_their_overrides():
    from bsnn_bindsnet.training.fit import RunConfig, resolve

    fp, bwn, snn = (get_preset(f"fmnist-qcfs-{k}") for k in ("fp", "bwn", "snn"))
    assert fp.model_kwargs == {"activation": "qcfs", "levels": 4} and not fp.snn_timesteps
    assert bwn.hybrid and bwn.quant == "bwn" and bwn.recipe == get_preset("fmnist-bwn").recipe
    assert snn.hybrid and snn.snn_timesteps == (2, 4)
    spec = resolve(RunConfig("fmnist-qcfs-snn", "x", levels=2, snn_timesteps=(3,)))
    assert spec.model_kwargs["levels"] == 2 and spec.snn_timesteps == (3,)
    with pytest.raises(ValueError, match="no QCFS activation"):
        resolve(RunConfig("fmnist-bwn", "x", levels=2))
    with pytest.raises(ValueError, match="does not train through"):
        resolve(RunConfig("fmnist-qcfs-bwn", "x", snn_timesteps=(2,)))
