"""Hand-computed checks of the binary, full-precision and pooling connections."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bsnn_bindsnet.snn.connections import (
    AvgPool2dConnection,
    BinaryConnection,
    BinaryConv2dConnection,
    FullPrecisionConnection,
    FullPrecisionConv2dConnection,
    MaxPool2dConnection,
)
from bsnn_bindsnet.snn.functional import sign_nonzero
from bsnn_bindsnet.snn.nodes import ReadoutNodes, SubtractiveIFNodes

with warnings.catch_warnings():
    from bindsnet.network import Network
    from bindsnet.network.nodes import Input

# Row 0 has a zero entry, which must binarize to +1.
W = torch.tensor([[0.5, 0.0, -1.0], [-0.5, 1.0, 1.5]])  # sign [[1, 1, -1], [-1, 1, 1]]
S = torch.tensor([[1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)  # [B=3, in=3]
# sign @ s per sample: [2, 0], [-1, 1], [1, 1]


@pytest.fixture
def binary_fc() -> BinaryConnection:
    return BinaryConnection(Input(n=3), SubtractiveIFNodes(2), weight=W)


def test_binary_compute_is_alpha_times_sign_mac(binary_fc):
    assert binary_fc.sign.dtype == torch.int8
    assert binary_fc.sign.tolist() == [[1, 1, -1], [-1, 1, 1]]
    assert binary_fc.scale.tolist() == [0.5, 1.0]  # mean |W| per row: 1.5 / 3, 3.0 / 3
    out = binary_fc.compute(S)
    assert out.dtype == torch.float32
    assert out.tolist() == [[1.0, 0.0], [-0.5, 1.0], [0.5, 1.0]]
    assert torch.equal(binary_fc.compute(S.float()), out)  # float input (Input layer) too


def test_binary_per_layer_and_explicit_scale():
    per_layer = BinaryConnection(Input(n=3), Input(n=2), weight=W, per_channel=False)
    assert per_layer.scale.tolist() == [0.75, 0.75]  # 4.5 / 6
    assert per_layer.compute(S).tolist() == [[1.5, 0.0], [-0.75, 0.75], [0.75, 0.75]]
    given = BinaryConnection(Input(n=3), Input(n=2), weight=W, scale=torch.tensor([2.0, -1.0]))
    assert given.compute(S).tolist() == [[4.0, -0.0], [-2.0, -1.0], [2.0, -1.0]]
    with pytest.raises(ValueError, match=r"one per output channel \(2,\)"):
        BinaryConnection(Input(n=3), Input(n=2), weight=W, scale=torch.ones(3))


def test_binary_w_is_effective_weight_in_bindsnet_layout(binary_fc):
    assert binary_fc.w.shape == (3, 2)  # [source.n, target.n]
    assert binary_fc.w.tolist() == [[0.5, -1.0], [0.5, 1.0], [-0.5, 1.0]]
    assert torch.equal(S.float() @ binary_fc.w, binary_fc.compute(S))


def test_binary_flattens_a_conv_source_into_a_shaped_target():
    w = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    conn = BinaryConnection(Input(shape=(2, 2, 2)), Input(shape=(2, 3)), weight=w)
    s = torch.rand(4, 2, 2, 2) > 0.5
    expected = s.flatten(1).float() @ (w.abs().mean(1, keepdim=True) * sign_nonzero(w)).t()
    out = conn.compute(s)
    assert out.shape == (4, 2, 3)
    torch.testing.assert_close(out.flatten(1), expected)


def test_float_sign_copy_is_not_saved_but_resynced_on_load(binary_fc):
    state = binary_fc.state_dict()
    assert "sign" in state and "scale" in state and "_sign_float" not in state
    other = BinaryConnection(Input(n=3), SubtractiveIFNodes(2), weight=-W)
    other.load_state_dict(state)
    assert torch.equal(other.compute(S), binary_fc.compute(S))


def test_full_precision_linear_with_bias_and_flatten():
    w = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])
    conn = FullPrecisionConnection(
        Input(shape=(1, 2, 2)), Input(n=2), weight=w, bias=torch.tensor([0.5, -1.0])
    )
    x = torch.tensor([[[[1.0, 0.5], [2.0, 4.0]]]])  # flattened: [1, 0.5, 2, 4]
    assert conn.compute(x).tolist() == [[1.0 - 1.0 + 1.0 + 0.5, 1.875 - 1.0]]
    assert torch.equal(conn.w, w.t())


def test_binary_conv_hand_example_1_channel_3x3():
    w = torch.tensor([[[[0.5, -0.25], [0.0, -0.25]]]])  # sign [[1, -1], [1, -1]], alpha 0.25
    conn = BinaryConv2dConnection(Input(shape=(1, 3, 3)), Input(shape=(1, 2, 2)), weight=w)
    s = torch.tensor([[[[1, 0, 1], [0, 1, 1], [1, 1, 0]]]], dtype=torch.bool)
    # (0,0): 1-0+0-1 = 0; (0,1): 0-1+1-1 = -1; (1,0): 0-1+1-1 = -1; (1,1): 1-1+1-0 = 1
    assert conn.compute(s).tolist() == [[[[0.0, -0.25], [-0.25, 0.25]]]]
    assert conn.sign.dtype == torch.int8 and conn.scale.tolist() == [0.25]


def test_binary_conv_equals_conv2d_with_binarized_weight():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=gen)
    w[0, 0, 0, 0] = 0.0
    conn = BinaryConv2dConnection(
        Input(shape=(3, 7, 7)), Input(shape=(4, 4, 4)), weight=w, stride=2, padding=1
    )
    s = torch.rand(2, 3, 7, 7, generator=gen) > 0.7
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(s.float(), alpha * sign_nonzero(w), stride=2, padding=1)
    torch.testing.assert_close(conn.compute(s), expected)
    assert torch.equal(conn.w, alpha * sign_nonzero(w))


def test_conv_with_avg_pool_equals_conv_then_avg_pool():
    gen = torch.Generator().manual_seed(2)
    w, b = torch.randn(2, 3, 3, 3, generator=gen), torch.randn(2, generator=gen)
    source, target = Input(shape=(3, 6, 6)), Input(shape=(2, 3, 3))
    s = torch.rand(2, 3, 6, 6, generator=gen) > 0.5
    binary = BinaryConv2dConnection(source, target, weight=w, padding=1, pool=nn.AvgPool2d(2))
    w_b = w.abs().mean(dim=(1, 2, 3), keepdim=True) * sign_nonzero(w)
    expected = F.avg_pool2d(F.conv2d(s.float(), w_b, padding=1), 2)
    torch.testing.assert_close(binary.compute(s), expected)
    full = FullPrecisionConv2dConnection(
        source, target, weight=w, bias=b, padding=1, pool=nn.AvgPool2d(2)
    )
    expected = F.avg_pool2d(F.conv2d(s.float(), w, b, padding=1), 2)
    torch.testing.assert_close(full.compute(s), expected)


@pytest.mark.parametrize("cls", [BinaryConv2dConnection, FullPrecisionConv2dConnection])
def test_max_pool_on_currents_is_rejected(cls):
    w = torch.randn(2, 1, 3, 3)
    with pytest.raises(ValueError, match="not linear.*extra IF layer"):
        cls(Input(shape=(1, 4, 4)), Input(shape=(2, 1, 1)), weight=w, pool=nn.MaxPool2d(2))
    with pytest.raises(ValueError, match="nn.AvgPool2d or None, got ReLU"):
        cls(Input(shape=(1, 4, 4)), Input(shape=(2, 2, 2)), weight=w, pool=nn.ReLU())


SPIKES = torch.tensor([[[[1, 1, 1, 0], [1, 0, 0, 0]], [[0, 0, 0, 1], [0, 0, 0, 0]]]], dtype=bool)


def test_avg_pool_connection_gives_the_spike_fraction():
    conn = AvgPool2dConnection(Input(shape=(2, 2, 4)), Input(shape=(2, 1, 2)), kernel_size=2)
    assert conn.compute(SPIKES).tolist() == [[[[0.75, 0.25]], [[0.0, 0.25]]]]


def test_max_pool_connection_is_a_spike_or():
    conn = MaxPool2dConnection(Input(shape=(2, 2, 4)), Input(shape=(2, 1, 2)), kernel_size=2)
    assert conn.compute(SPIKES).tolist() == [[[[1.0, 1.0]], [[0.0, 1.0]]]]
    ceil = MaxPool2dConnection(
        Input(shape=(2, 2, 4)), Input(shape=(2, 1, 2)), kernel_size=3, stride=2, ceil_mode=True
    )
    assert ceil.compute(SPIKES).tolist() == [[[[1.0, 1.0]], [[0.0, 1.0]]]]


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: BinaryConnection(Input(n=3), Input(n=3), weight=W),
            r"source shape \(3,\).*target shape \(3,\).*expected nn.Linear layout \(3, 3\)",
        ),
        (
            lambda: FullPrecisionConnection(Input(shape=(1, 2, 2)), Input(n=2), weight=W),
            r"source shape \(1, 2, 2\) \(n=4\)",
        ),
        (
            lambda: BinaryConv2dConnection(
                Input(shape=(2, 5, 5)), Input(shape=(4, 3, 3)), weight=torch.ones(4, 3, 3, 3)
            ),
            r"cannot be applied to source shape \(2, 5, 5\)",
        ),
        (
            lambda: BinaryConv2dConnection(
                Input(shape=(3, 5, 5)), Input(shape=(4, 5, 5)), weight=torch.ones(4, 3, 3, 3)
            ),
            r"maps source shape \(3, 5, 5\) to \(4, 3, 3\), but the target shape is \(4, 5, 5\)",
        ),
        (
            lambda: FullPrecisionConv2dConnection(
                Input(shape=(3, 4, 4)), Input(shape=(2, 4, 4)), weight=torch.ones(2, 3, 3, 3),
                padding=1, pool=nn.AvgPool2d(2),
            ),
            r"to \(2, 2, 2\), but the target shape is \(2, 4, 4\)",
        ),
        (
            lambda: BinaryConv2dConnection(Input(n=48), Input(n=4), weight=torch.ones(4, 3, 3, 3)),
            r"source shape \(48,\) and target shape \(4,\) must both be \(C, H, W\)",
        ),
        (
            lambda: AvgPool2dConnection(
                Input(shape=(2, 4, 4)), Input(shape=(3, 2, 2)), kernel_size=2
            ),
            r"maps source shape \(2, 4, 4\) to \(2, 2, 2\), but the target shape is \(3, 2, 2\)",
        ),
        (
            lambda: MaxPool2dConnection(
                Input(shape=(2, 5, 5)), Input(shape=(2, 2, 2)), kernel_size=2, ceil_mode=True
            ),
            r"to \(2, 3, 3\), but the target shape is \(2, 2, 2\)",
        ),
        (
            lambda: BinaryConnection(Input(n=3), Input(n=2), weight=torch.ones(2, 3, 1)),
            r"weight must have 2 dims",
        ),
        (
            lambda: FullPrecisionConnection(
                Input(n=3), Input(n=2), weight=W, bias=torch.zeros(3)
            ),
            r"bias of shape \(3,\), expected \(2,\)",
        ),
    ],
)
def test_geometry_mismatch_is_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_update_reset_and_normalize_leave_weights_unchanged(binary_fc):
    sign, scale = binary_fc.sign.clone(), binary_fc.scale.clone()
    binary_fc.update(learning=True, mask=None, reward=1.0)
    binary_fc.normalize()
    binary_fc.reset_state_variables()
    assert torch.equal(binary_fc.sign, sign) and torch.equal(binary_fc.scale, scale)
    assert binary_fc.compute(S).tolist() == [[1.0, 0.0], [-0.5, 1.0], [0.5, 1.0]]
    with pytest.raises(NotImplementedError, match="weight masks"):
        binary_fc.update(learning=True, mask=torch.zeros(3, 2, dtype=torch.bool))


# Input(3) -> FullPrecisionConnection(W1) -> SIF(4, theta=1) -> BinaryConnection(W2) -> Readout(2)
W1 = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.5, 0.0, 1.0], [-1.0, 0.0, 0.0]])
W2 = torch.tensor([[0.5, -0.25, 0.0, 1.0], [-2.0, 1.0, 1.0, -1.0]])
# sign(W2) = [[1, -1, 1, 1], [-1, 1, 1, -1]], alpha = [1.75 / 4, 5 / 4] = [0.4375, 1.25]
X = torch.tensor([[1.0, 0.5, 0.25], [0.5, 1.0, 0.5]])
# Hidden currents c = W1 x: [0.5, 0.25, 0.75, -1.0] and [0.25, 0.5, 0.75, -0.5].
# SIF spike counts after k steps of c: floor(k c).
# one_step, T = 8 (k = 8): [4, 2, 6, 0] -> [4-2+6, -4+2+6] * alpha = [3.5, 5.0]
#                          [2, 4, 6, 0] -> [2-4+6, -2+4+6] * alpha = [1.75, 10.0]
# delayed, T = 8: the hidden layer sees x from step 2 and the readout sees hidden spikes of
# steps 1..7, so k = 6: [3, 1, 4, 0] -> [6, 2] * alpha = [2.625, 2.5]
#                       [1, 3, 4, 0] -> [2, 6] * alpha = [0.875, 7.5]
READOUT = {True: [[3.5, 5.0], [1.75, 10.0]], False: [[2.625, 2.5], [0.875, 7.5]]}


@pytest.mark.parametrize("one_step", [True, False])
def test_two_layer_network_readout_matches_hand_calculation(one_step):
    network = Network(dt=1.0)
    network.add_layer(Input(n=3), name="in")
    network.add_layer(SubtractiveIFNodes(4, thresh=1.0), name="hid")
    network.add_layer(ReadoutNodes(2), name="out")
    layers = network.layers
    network.add_connection(
        FullPrecisionConnection(layers["in"], layers["hid"], weight=W1), source="in", target="hid"
    )
    binary = BinaryConnection(layers["hid"], layers["out"], weight=W2)
    network.add_connection(binary, source="hid", target="out")
    network.train(False)
    for _ in range(2):  # the same answer after reset_state_variables()
        network.run(inputs={"in": X.unsqueeze(0).repeat(8, 1, 1)}, time=8, one_step=one_step)
        assert layers["out"].v.tolist() == READOUT[one_step]
        # the delay flips sample 0's prediction (2.625 > 2.5)
        assert layers["out"].v.argmax(1).tolist() == ([1, 1] if one_step else [0, 1])
        assert binary.sign.tolist() == [[1, -1, 1, 1], [-1, 1, 1, -1]]  # update() changed nothing
        network.reset_state_variables()
