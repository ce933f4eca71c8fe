import pytest
import torch
from torch import nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.ann.models import ANN_MODELS as MODELS
from bsnn_bindsnet.training.models import get_model


def _kinds(model):
    return [type(m).__name__ for m in model.children()]


@pytest.mark.parametrize("pool,position,expected", [
    ("avg", "before", ["Conv2d", "AvgPool2d", "ReLU", "Dropout"]),
    ("avg", "after", ["Conv2d", "ReLU", "AvgPool2d"]),
    ("max", "before", ["Conv2d", "MaxPool2d", "ReLU", "Dropout"]),
    ("max", "after", ["Conv2d", "ReLU", "MaxPool2d"]),
])
def test_four_pooling_placements(pool, position, expected):
    model = get_model("vgg_small", pool=pool, pool_position=position)
    kinds = _kinds(model)
    # block 1 = conv1 relu1 drop1, then conv2 with its pool
    assert kinds[:3] == ["Conv2d", "ReLU", "Dropout"]
    assert kinds[3:3 + len(expected)] == expected
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_vgg15_matches_the_paper():
    model = get_model("vgg15")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 13 and len(fcs) == 2
    assert (fcs[0].in_features, fcs[0].out_features, fcs[1].out_features) == (512, 4096, 100)
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert [p.ceil_mode for p in pools] == [False, False, True, True, True]
    assert all(m.bias is None for m in convs + fcs)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())
    assert get_model("vgg15_imagenet").fc1.in_features == 512 * 7 * 7


def test_dropout_follows_every_relu_not_followed_by_pooling():
    for position in ("before", "after"):
        children = list(get_model("vgg15", pool_position=position).children())
        for i, m in enumerate(children[:-1]):
            if isinstance(m, nn.ReLU):
                nxt = children[i + 1]
                assert isinstance(nxt, (nn.Dropout, nn.AvgPool2d)), (position, i)


@pytest.mark.parametrize("name", ["mlp", "vgg_small", "vgg_tiny", "vgg15"])
def test_bwn_keeps_first_and_last_layer_full_precision(name):
    model = get_model(name, quant="bwn")
    synaptic = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert not isinstance(synaptic[0], (BinaryConv2d, BinaryLinear))
    assert not isinstance(synaptic[-1], (BinaryConv2d, BinaryLinear))
    assert all(isinstance(m, (BinaryConv2d, BinaryLinear)) for m in synaptic[1:-1])


def test_initialisation_follows_the_recipe():
    torch.manual_seed(0)
    model = get_model("vgg15")
    # Kaiming normal, fan_out: std = sqrt(2 / (out * 3 * 3)) = sqrt(2 / 4608) for 512 channels
    assert model.conv13.weight.std().item() == pytest.approx((2 / 4608) ** 0.5, rel=0.02)
    assert model.fc1.weight.std().item() == pytest.approx(0.01, rel=0.02)


def test_xnor_net_has_binary_activations():
    model = get_model("vgg_tiny", quant="xnor").eval()
    acts = {}
    model.sign2.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    model(torch.randn(4, 1, 8, 8))
    assert set(acts["a"].unique().tolist()) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="pool_position='before'"):
        get_model("vgg_tiny", quant="xnor", pool_position="after")


def test_wrong_input_shape_names_expected_and_got():
    with pytest.raises(ValueError, match=r"expected \[B, 1, 8, 8\], got \[2, 1, 28, 28\]"):
        get_model("vgg_tiny")(torch.randn(2, 1, 28, 28))


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="vgg15"):
        get_model("resnet")
    with pytest.raises(ValueError, match="avg, max"):
        get_model("vgg_small", pool="median")
    assert set(MODELS) == {"mlp", "vgg15", "vgg15_imagenet", "vgg_small", "vgg_tiny"}


@pytest.mark.parametrize("name, shape", [("vgg_tiny", (1, 8, 8)), ("vgg_small", (1, 28, 28)),
                                         ("mlp", None)])
@pytest.mark.parametrize("quant", ["fp", "bwn"])
def test_models_trace_with_torch_fx_and_still_check_shapes_eagerly(name, shape, quant):
    # nirtorch, SpikingJelly's converter and torch.ao's FX mode trace models with torch.fx
    torch.manual_seed(0)
    model = get_model(name, quant=quant).eval()
    shape = shape or model.input_shape
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(3, *shape)
    torch.testing.assert_close(traced(x), model(x))
    with pytest.raises(ValueError, match="wrong input shape"):
        model(torch.randn(3, 2, *shape[1:]) if len(shape) == 3 else torch.randn(3, shape[0] + 1))
