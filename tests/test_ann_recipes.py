import pytest

from bsnn_bindsnet.ann.recipes import PRESETS, Recipe, get_preset, learning_rate, weight_decay


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
