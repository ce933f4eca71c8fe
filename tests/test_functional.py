"""Hand-computed checks of the pure step functions in bsnn_bindsnet.snn.functional."""

import math

import pytest
import torch

from bsnn_bindsnet.snn import neurons
from bsnn_bindsnet.snn.functional import (
    heaviside,
    if_step,
    if_step_,
    if_step_subtract,
    if_step_zero,
    scale_per_channel,
    sign_nonzero,
)


def run_steps(step, x: float, thresh: float, steps: int) -> tuple[list[int], torch.Tensor]:
    """Drive one neuron with a constant x; return the 1-based spike steps and the final v."""
    v, x_t, th = torch.zeros(1), torch.tensor([x]), torch.tensor(thresh)
    fired = []
    for t in range(1, steps + 1):
        s, v = step(v, x_t, th)
        if s.item():
            fired.append(t)
    return fired, v


def test_sif_constant_03_fires_at_4_7_10_and_ends_empty():
    # v: .3 .6 .9 1.2|.2 .5 .8 1.1|.1 .4 .7 1.0|0  ->  floor(10 * 0.3 / 1) = 3 spikes
    fired, v = run_steps(if_step_subtract, 0.3, 1.0, 10)
    assert fired == [4, 7, 10]
    assert len(fired) == math.floor(10 * 0.3 / 1.0)
    torch.testing.assert_close(v, torch.zeros(1), rtol=0, atol=1e-6)


def test_rif_constant_03_fires_at_4_8_and_loses_the_residue():
    # v: .3 .6 .9 1.2|0 .3 .6 .9 1.2|0 .3 .6  ->  2 spikes; the 0.2 above threshold is lost
    fired, v = run_steps(if_step_zero, 0.3, 1.0, 10)
    assert fired == [4, 8]
    torch.testing.assert_close(v, torch.tensor([0.6]))


@pytest.mark.parametrize("x, thresh", [(2.0, 5.0), (0.5, 1.25)])  # x / thresh = 0.4, exact in fp32
def test_sif_and_rif_differ_as_hand_computed_for_rate_04(x, thresh):
    # In units of thresh: SIF .4 .8 1.2|.2 .6 1.0|0 .4 .8 1.2|.2 .6 1.0|0 -> 3, 5, 8, 10
    #                     RIF .4 .8 1.2|0 .4 .8 1.2|0 .4 .8 1.2|0 .4     -> 3, 6, 9
    sif, v_sif = run_steps(if_step_subtract, x, thresh, 10)
    rif, v_rif = run_steps(if_step_zero, x, thresh, 10)
    assert sif == [3, 5, 8, 10] and rif == [3, 6, 9]
    assert v_sif.item() == 0.0 and v_rif.item() == x


def test_sif_above_threshold_fires_every_step_and_carries_the_residue():
    # x = 1.7 > theta = 1: one spike per step at most, so 0.7 accumulates: v_n = 0.7 n.
    fired, v = run_steps(if_step_subtract, 1.7, 1.0, 10)
    assert fired == list(range(1, 11))
    torch.testing.assert_close(v, torch.tensor([7.0]), rtol=0, atol=1e-5)
    # RIF also fires every step but resets to 0 each time.
    fired, v = run_steps(if_step_zero, 1.7, 1.0, 10)
    assert fired == list(range(1, 11)) and v.item() == 0.0


@pytest.mark.parametrize("step", [if_step_subtract, if_step_zero])
def test_per_channel_threshold_broadcasts_over_conv_and_linear_state(step):
    # Constant x = 0.75 for 16 steps: 12 units of input per neuron.
    # SIF counts floor(12 / theta) = 12, 6, 3. RIF: theta=1 -> .75 1.5|0 ... every 2nd step: 8;
    # theta=2 -> .75 1.5 2.25|0 every 3rd: 5; theta=4 -> fires at v=4.5 every 6th step: 2.
    expected = {if_step_subtract: [12, 6, 3], if_step_zero: [8, 5, 2]}[step]
    thresh = torch.tensor([1.0, 2.0, 4.0])
    for v, th in [
        (torch.zeros(2, 3, 2, 2), thresh.view(3, 1, 1)),  # conv: [B, C, H, W] vs [C, 1, 1]
        (torch.zeros(2, 3), thresh),  # linear: [B, n] vs [n]
    ]:
        x = torch.full_like(v, 0.75)
        count = torch.zeros_like(v)
        for _ in range(16):
            s, v = step(v, x, th)
            assert s.dtype == torch.bool and s.shape == v.shape
            count += s
        per_channel = count.transpose(0, 1).reshape(3, -1)
        assert (per_channel == torch.tensor(expected, dtype=count.dtype)[:, None]).all()


@pytest.mark.parametrize("step", [if_step_subtract, if_step_zero])
def test_step_functions_do_not_modify_their_arguments(step):
    v, x, th = torch.tensor([0.5, 0.75]), torch.tensor([0.625, 0.0]), torch.tensor(1.0)
    s, v_new = step(v, x, th)
    assert s.tolist() == [True, False]
    assert v.tolist() == [0.5, 0.75] and x.tolist() == [0.625, 0.0]
    assert v_new is not v


@pytest.mark.parametrize("name", ["subtract", "zero"])
def test_named_steps_are_the_one_kernel_with_a_registered_reset(name):
    named = {"subtract": if_step_subtract, "zero": if_step_zero}[name]
    gen = torch.Generator().manual_seed(0)
    v, thresh = torch.zeros(4, 3), torch.tensor([0.5, 1.0, 2.0])
    for _ in range(20):
        x = torch.rand(4, 3, generator=gen) * 1.5 - 0.25
        s, v_new = if_step(v, x, thresh, neurons.RESETS[name])
        s_ref, v_ref = named(v, x, thresh)
        assert torch.equal(s, s_ref) and torch.equal(v_new, v_ref)
        v_in_place = v.clone()
        assert torch.equal(if_step_(v_in_place, x, thresh, neurons.RESETS[name]), s)
        assert torch.equal(v_in_place, v_new)
        v = v_new


def test_kernel_takes_any_reset_function_and_spike_function():
    # a plain function as the reset (copied in place by if_step_), a lower spike condition
    halve = lambda v, s, thresh: v / 2  # noqa: E731
    v = torch.tensor([0.5, 0.0])
    assert if_step_(v, torch.tensor([0.5, 0.25]), 1.0, halve).tolist() == [True, False]
    assert v.tolist() == [0.5, 0.125]
    above_half = lambda v, thresh: (v >= thresh / 2).float()  # noqa: E731
    s, v = if_step(torch.zeros(2), torch.tensor([0.5, 0.25]), 1.0, spike=above_half)
    assert s.tolist() == [1.0, 0.0] and v.tolist() == [-0.5, 0.25]
    assert heaviside(torch.tensor([0.999, 1.0]), 1.0).tolist() == [False, True]


def test_sign_nonzero_maps_zero_to_plus_one():
    assert sign_nonzero(torch.tensor([-2.0, 0.0, 3.0, -0.0])).tolist() == [-1.0, 1.0, 1.0, 1.0]


def test_scale_per_channel_is_mean_abs_per_row_or_layer():
    w = torch.tensor([[0.5, 0.0, -1.0], [-0.5, 1.0, 1.5]])
    assert scale_per_channel(w).flatten().tolist() == [0.5, 1.0]
    assert scale_per_channel(w, per_channel=False).item() == 0.75
