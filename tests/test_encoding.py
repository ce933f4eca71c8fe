"""Hand-computed checks of the input encoders (constant current, signed and intensity Poisson
rate codes)."""

import math

import pytest
import torch

from bsnn_bindsnet.snn.encoding import constant_current, encode, poisson_intensity, poisson_signed


@pytest.fixture
def x() -> torch.Tensor:
    # Sample 0: c = max|x| = 1.0; sample 1: c = 0.4. Both hold a zero pixel.
    return torch.tensor([[0.5, -0.25, 0.0, 1.0],
                         [0.2, 0.1, -0.4, 0.0]])


def test_constant_current_repeats_the_input_every_step():
    x = torch.tensor([[1.0, -2.0]])
    out = constant_current(x, 3)
    assert out.shape == (3, 1, 2)
    assert out.tolist() == [[[1.0, -2.0]]] * 3


def test_constant_current_is_a_private_copy_whose_memory_does_not_grow_with_t(x):
    original = x.clone()
    out = constant_current(x, 4)
    assert out.shape == (4, 2, 4) and out.dtype == x.dtype
    assert out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    # one copy of x, viewed T times (stride 0 over time)
    assert out.stride(0) == 0 and out.untyped_storage().nbytes() == x.numel() * 4
    # BindsNET's Input layer zeroes the tensor it was given (a step of `out`) on reset: that
    # must not touch the caller's data.
    out[-1].zero_()
    assert torch.equal(x, original)


def test_constant_current_keeps_conv_shapes():
    x = torch.randn(5, 1, 8, 8)
    out = constant_current(x, 2)
    assert out.shape == (2, 5, 1, 8, 8)
    assert torch.equal(out[1], x)


def test_poisson_signed_emits_only_zero_or_signed_sample_scale(x):
    out = poisson_signed(x, 500, generator=torch.Generator().manual_seed(0))
    assert out.shape == (500, 2, 4) and out.is_floating_point()
    c = torch.tensor([1.0, 0.4])  # max |x| per sample
    for b in range(2):
        for i in range(4):
            allowed = {0.0, float(torch.sign(x[b, i]) * c[b])}
            assert set(out[:, b, i].unique().tolist()) <= allowed, (b, i)
    # A zero pixel never emits; a pixel with |x| = c emits sign(x) * c at every step.
    assert (out[:, 0, 2] == 0).all() and (out[:, 1, 3] == 0).all()
    assert (out[:, 0, 3] == 1.0).all()
    assert torch.allclose(out[:, 1, 2], torch.tensor(-0.4))


def test_poisson_signed_sign_matches_the_input(x):
    out = poisson_signed(x, 200, generator=torch.Generator().manual_seed(1))
    nonzero = out != 0
    assert nonzero.any()
    assert (torch.sign(out) == torch.sign(x).expand_as(out))[nonzero].all()


def test_poisson_signed_is_reproducible_with_a_seeded_generator(x):
    a = poisson_signed(x, 64, generator=torch.Generator().manual_seed(7))
    b = poisson_signed(x, 64, generator=torch.Generator().manual_seed(7))
    c = poisson_signed(x, 64, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_poisson_signed_mean_approaches_the_input(x):
    steps = 20_000
    out = poisson_signed(x, steps, generator=torch.Generator().manual_seed(3))
    # Each step emits sign(x) * c with p = |x| / c, so mean = x and the mean over T steps has
    # std c * sqrt(p (1 - p) / T). Allow 5 std (plus rounding).
    c = x.abs().amax(1, keepdim=True)
    p = x.abs() / c
    std = c * torch.sqrt(p * (1 - p) / steps)
    err = (out.mean(0) - x).abs()
    assert (err <= 5 * std + 1e-6).all(), (err, std)
    # The bound is not vacuous: the worst pixel (p = 0.5) has 5 std = 5 * 0.5 / sqrt(T).
    assert 5 * std.max() < 0.02


def test_poisson_signed_does_not_modify_its_input(x):
    original = x.clone()
    poisson_signed(x, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, original)


def test_poisson_signed_all_zero_sample_stays_silent():
    out = poisson_signed(torch.zeros(1, 3), 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.zeros(10, 1, 3))
    assert not math.isnan(out.sum().item())


def test_encode_dispatches_and_rejects_unknown_codings(x):
    assert torch.equal(encode(x, 3), constant_current(x, 3))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(encode(x, 3, encoding="poisson", generator=g1),
                       poisson_signed(x, 3, generator=g2))
    with pytest.raises(ValueError, match="unknown encoding"):
        encode(x, 3, encoding="rank-order")


def test_poisson_intensity_rates_are_the_min_max_scaled_sample():
    # sample 0: min -0.25, span 1.25 -> rates [0.6, 0, 0.2, 1]; sample 1: min -0.4, span 0.6
    # -> rates [1, 5/6, 0, 2/3]
    x = torch.tensor([[0.5, -0.25, 0.0, 1.0], [0.2, 0.1, -0.4, 0.0]])
    steps = 20000
    out = poisson_intensity(x, steps, generator=torch.Generator().manual_seed(0))
    assert out.shape == (steps, 2, 4)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    expected = torch.tensor([[0.6, 0.0, 0.2, 1.0], [1.0, 5 / 6, 0.0, 2 / 3]])
    # binomial std of a mean over 20000 steps is at most 0.0036: 5 sigma
    torch.testing.assert_close(out.mean(0), expected, rtol=0, atol=0.018)
    assert out[:, 0, 1].sum() == 0 and out[:, 1, 2].sum() == 0  # the minimum never spikes
    assert out[:, 0, 3].all() and out[:, 1, 0].all()  # the maximum spikes every step


def test_poisson_intensity_constant_sample_is_silent_and_dispatch_works():
    out = poisson_intensity(torch.full((1, 1, 2, 2), 0.7), 5,
                            generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 1, 1, 2, 2) and out.sum() == 0
    x = torch.randn(3, 2, 4, 4)
    a = encode(x, 4, encoding="poisson-intensity", generator=torch.Generator().manual_seed(1))
    b = poisson_intensity(x, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
