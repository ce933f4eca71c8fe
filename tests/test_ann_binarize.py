import pytest
import torch
from torch import nn

from bsnn_bindsnet.ann.binarize import (BinaryConv2d, BinaryLinear, SignActivation,
                                        binarize_weight, binary_layers, sign_ste)
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.snn.functional import sign_nonzero


@pytest.mark.parametrize("shape", [(7,), (3, 4, 4)])
def test_sign_nonzero_is_two_valued(shape):
    x = torch.randn(shape)
    x.view(-1)[0] = 0.0
    s = sign_nonzero(x)
    assert set(s.unique().tolist()) <= {-1.0, 1.0}
    assert s.view(-1)[0] == 1.0


def test_sign_ste_gradient_is_gated_on_clip():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    sign_ste(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_binary_linear_forward_and_xnor_net_gradient_by_hand():
    layer = BinaryLinear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, 2.0]]))
    out = layer(torch.ones(1, 2))
    # alpha = (0.5 + 2.0) / 2 = 1.25; sign = (+1, +1); out = 1.25 * 2
    assert out.item() == pytest.approx(2.5)
    out.sum().backward()
    # d out / d W_i = (sum_j sign_j x_j) * d alpha / d W_i + alpha * x_i * [|W_i| <= 1]
    #               = 2 * 0.5 + 1.25 * [i == 0]  ->  (2.25, 1.0)
    assert layer.weight.grad.tolist() == [[pytest.approx(2.25), pytest.approx(1.0)]]


def test_every_binary_filter_holds_exactly_two_values_plus_minus_alpha():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 5, 3, padding=1)
    w = conv.binary_weight().detach()
    for c in range(5):
        alpha = conv.weight[c].abs().mean().item()
        values = sorted(set(w[c].flatten().tolist()))
        assert values == [pytest.approx(-alpha), pytest.approx(alpha)]
    sign, alpha = conv.export_weight()
    assert sign.shape == conv.weight.shape and alpha.shape == (5,)
    assert torch.allclose(sign * alpha.view(5, 1, 1, 1), w)


def test_per_layer_alpha_is_one_value():
    w = torch.tensor([[1.0, -3.0], [2.0, -2.0]])
    # mean |W| = 2 over the whole layer
    assert binarize_weight(w, per_channel=False).tolist() == [[2.0, -2.0], [2.0, -2.0]]
    # per row: (1 + 3) / 2 = 2 and (2 + 2) / 2 = 2 happen to agree; change row 0
    w[0] = torch.tensor([1.0, -5.0])
    assert binarize_weight(w).tolist() == [[3.0, -3.0], [2.0, -2.0]]


def test_binary_conv_equals_conv_with_alpha_sign_weights():
    torch.manual_seed(1)
    conv = BinaryConv2d(2, 4, 3, padding=1, stride=2)
    x = torch.randn(3, 2, 9, 9)
    sign, alpha = conv.export_weight()
    expect = nn.functional.conv2d(x, sign * alpha.view(4, 1, 1, 1), stride=2, padding=1)
    assert torch.allclose(conv(x), expect, atol=1e-6)
    assert conv.bias is None and conv.precision == 1


def test_full_precision_state_dict_loads_into_binary_model():
    torch.manual_seed(0)
    fp = get_model("vgg_tiny")
    bwn = get_model("vgg_tiny", quant="bwn")
    bwn.load_state_dict(fp.state_dict())  # strict: same keys, real proxies in .weight
    assert torch.equal(bwn.conv2.weight, fp.conv2.weight)
    assert [n for n, _ in binary_layers(bwn)] == ["conv2", "conv3", "conv4", "fc1"]


def test_sign_activation_is_binary():
    x = torch.tensor([-0.2, 0.0, 3.0])
    assert SignActivation()(x).tolist() == [-1.0, 1.0, 1.0]
