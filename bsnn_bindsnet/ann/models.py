"""Constrained ANNs for conversion, registered by name.

Constraints (Lu & Sengupta 2020, following Sengupta et al. 2019): no bias anywhere, no
batch-norm, dropout after every ReLU that is not followed by pooling, Kaiming-normal (fan_out)
conv init and N(0, 0.01) linear init. Every model is a flat :class:`ConstrainedNet` (an
``nn.Sequential``) whose children are named ``conv{i}``, ``pool{i}``, ``relu{i}``, ``drop{i}``,
``flatten``, ``fc{j}``, so the converter and the analyses can walk it layer by layer.

Weights come in three precisions (``quant``): ``"fp"`` (32-bit weights and activations),
``"bwn"`` (binary weights, 32-bit activations: the network that is converted) and ``"xnor"``
(XNOR-Net baseline: binary weights and binary activations, with batch-norm before each sign, as
in Rastegari et al. 2016; used only for comparison). In ``bwn`` and ``xnor`` the first and the
last layers stay full precision.

Pooling placement (``pool`` x ``pool_position``): ``"avg"|"max"`` x ``"before"|"after"`` the
ReLU, the four options of the paper's Fig. 4. The authors' published model is avg-before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear, SignActivation
from bsnn_bindsnet.ann.qcfs import QCFS

QUANTS = ("fp", "bwn", "xnor")
ACTIVATIONS = ("relu", "qcfs")
POOLS = ("avg", "max")
POOL_POSITIONS = ("before", "after")

VGG15_CFG: tuple[int | str, ...] = (64, 64, "P", 128, 128, "P", 256, 256, 256, "P",
                                    512, 512, 512, "P", 512, 512, 512, "P")


class ConstrainedNet(nn.Sequential):
    """A flat ``nn.Sequential`` that knows its input shape and checks it.

    Attributes:
        input_shape: ``(C, H, W)`` of one sample (``(C, H, W)`` for the MLP too: it flattens).
        num_classes: Output size.
    """

    def __init__(self, layers: OrderedDict[str, nn.Module], *, input_shape: Sequence[int],
                 num_classes: int) -> None:
        super().__init__(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        # torch.fx (nirtorch, SpikingJelly's converter, torch.ao's FX mode) traces with a
        # Proxy whose shape cannot be compared: the check runs eagerly only
        if not isinstance(x, torch.fx.Proxy) and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"wrong input shape: expected [B, {', '.join(map(str, self.input_shape))}], "
                f"got {list(x.shape)}")
        return super().forward(x)


def _activation(quant: str, channels: int, conv: bool, activation: str = "relu",
                levels: int = 4) -> list[tuple[str, nn.Module]]:
    # a QCFS activation keeps the ReLU's name: it stands where the ReLU stands, and the
    # converted IF layer is named after it either way
    if quant != "xnor":
        return [("relu", QCFS(levels) if activation == "qcfs" else nn.ReLU())]
    bn = nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    return [("bn", bn), ("sign", SignActivation())]


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")


def _check_activation(activation: str, quant: str) -> None:
    _check_choice("activation", activation, ACTIVATIONS)
    if activation == "qcfs" and quant == "xnor":
        raise ValueError("activation='qcfs' needs quant 'fp' or 'bwn': XNOR-Net's activations "
                         "are already binary (sign)")


def constrained_vgg(cfg: Sequence[int | str], *, input_shape: Sequence[int], num_classes: int,
                    hidden: int, pool: str = "avg", pool_position: str = "before",
                    quant: str = "fp", dropout: float = 0.1, per_channel: bool = True,
                    ceil_mode_last: int = 0, activation: str = "relu",
                    levels: int = 4) -> ConstrainedNet:
    """Build a constrained VGG: ``cfg`` lists conv widths and ``"P"`` (2x2 pooling, stride 2).

    Args:
        cfg: Conv output channels in order, ``"P"`` for a pooling layer.
        input_shape: ``(C, H, W)``.
        num_classes: Classifier outputs.
        hidden: Width of the hidden fully connected layer (classifier: Dropout, Linear, ReLU,
            Dropout, Linear).
        pool: ``"avg"`` or ``"max"``.
        pool_position: Pool ``"before"`` or ``"after"`` the ReLU of its block.
        quant: ``"fp"``, ``"bwn"`` or ``"xnor"`` (see the module docstring).
        dropout: Dropout probability.
        per_channel: Binary layers use one alpha per output channel (else one per layer).
        ceil_mode_last: The last ``ceil_mode_last`` pooling layers use ``ceil_mode=True``.
        activation: ``"relu"`` or ``"qcfs"`` (:class:`~bsnn_bindsnet.ann.qcfs.QCFS` with
            ``levels`` levels, for low-latency conversion; not with ``quant="xnor"``).
        levels: QCFS quantization levels :math:`L`.

    Returns:
        A :class:`ConstrainedNet`.
    """
    _check_choice("quant", quant, QUANTS)
    _check_choice("pool", pool, POOLS)
    _check_choice("pool_position", pool_position, POOL_POSITIONS)
    _check_activation(activation, quant)
    if quant == "xnor" and pool_position == "after":
        raise ValueError("quant='xnor' needs pool_position='before': pooling binary activations "
                         "after the sign would make them non-binary")
    layers: list[tuple[str, nn.Module]] = []
    channels, size = int(input_shape[0]), [int(input_shape[1]), int(input_shape[2])]
    n_pools = sum(1 for c in cfg if c == "P")
    pool_idx, conv_idx = 0, 0
    items = list(cfg)
    for pos, item in enumerate(items):
        if item == "P":
            continue
        conv_idx += 1
        binary = quant != "fp" and conv_idx > 1
        conv_cls = BinaryConv2d if binary else nn.Conv2d
        conv_kw = {"per_channel": per_channel} if binary else {}
        layers.append((f"conv{conv_idx}", conv_cls(channels, int(item), 3, padding=1,
                                                   bias=False, **conv_kw)))
        channels = int(item)
        pooled = pos + 1 < len(items) and items[pos + 1] == "P"
        act = [(f"{n}{conv_idx}", m)
               for n, m in _activation(quant, channels, True, activation, levels)]
        if pooled:
            pool_idx += 1
            ceil = pool_idx > n_pools - ceil_mode_last
            pool_cls = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
            pool_layer = (f"pool{conv_idx}", pool_cls(2, stride=2, ceil_mode=ceil))
            size = [(s + 1) // 2 if ceil else s // 2 for s in size]
            if pool_position == "before":
                layers += [pool_layer, *act, (f"drop{conv_idx}", nn.Dropout(dropout))]
            else:
                layers += [*act, pool_layer]
        else:
            layers += [*act, (f"drop{conv_idx}", nn.Dropout(dropout))]
    flat = channels * size[0] * size[1]
    fc_cls = BinaryLinear if quant != "fp" else nn.Linear
    fc_kw = {"per_channel": per_channel} if quant != "fp" else {}
    layers += [("flatten", nn.Flatten()), ("drop_fc1", nn.Dropout(dropout)),
               ("fc1", fc_cls(flat, hidden, bias=False, **fc_kw)),
               *[(f"{n}_fc1", m)
                 for n, m in _activation(quant, hidden, False, activation, levels)],
               ("drop_fc2", nn.Dropout(dropout)),
               ("fc2", nn.Linear(hidden, num_classes, bias=False))]
    model = ConstrainedNet(OrderedDict(layers), input_shape=input_shape, num_classes=num_classes)
    _init_weights(model)
    return model


def vgg15(*, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 100,
          **kw: Any) -> ConstrainedNet:
    """VGG-15 of the paper (VGG-16 less one FC): 13 convs, classifier 512*s*s -> 4096 -> classes.

    The last three pools use ``ceil_mode=True`` as in the authors' code.
    """
    return constrained_vgg(VGG15_CFG, input_shape=input_shape, num_classes=num_classes,
                           hidden=kw.pop("hidden", 4096), ceil_mode_last=3, **kw)


def vgg15_imagenet(*, input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000,
                   **kw: Any) -> ConstrainedNet:
    """VGG-15 with the ImageNet head (224x224 input, 512*7*7 features)."""
    return vgg15(input_shape=input_shape, num_classes=num_classes, **kw)


def vgg_small(*, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
              channels: Sequence[int] = (32, 32, 64, 64), hidden: int = 256,
              **kw: Any) -> ConstrainedNet:
    """Scaled-down constrained VGG for 28x28 input: 4 convs in 2 pooled blocks + 2 FC."""
    c1, c2, c3, c4 = channels
    return constrained_vgg((c1, c2, "P", c3, c4, "P"), input_shape=input_shape,
                           num_classes=num_classes, hidden=hidden, **kw)


def vgg_tiny(*, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10,
             channels: Sequence[int] = (16, 16, 32, 32), hidden: int = 128,
             **kw: Any) -> ConstrainedNet:
    """The same shape as :func:`vgg_small`, narrower, for 8x8 digits."""
    return vgg_small(input_shape=input_shape, num_classes=num_classes, channels=channels,
                     hidden=hidden, **kw)


def mlp(*, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
        hidden: Sequence[int] = (512, 512), quant: str = "fp", dropout: float = 0.1,
        per_channel: bool = True, activation: str = "relu", levels: int = 4) -> ConstrainedNet:
    """Constrained MLP: Flatten, then Linear/ReLU/Dropout blocks; first and last layer FP.

    ``activation``/``levels`` as in :func:`constrained_vgg`.
    """
    _check_choice("quant", quant, QUANTS)
    _check_activation(activation, quant)
    widths = [int(input_shape[0] * input_shape[1] * input_shape[2]), *hidden]
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for j, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        binary = quant != "fp" and j > 1
        lin = BinaryLinear(n_in, n_out, per_channel=per_channel) if binary else nn.Linear(
            n_in, n_out, bias=False)
        layers += [(f"fc{j}", lin),
                   *[(f"{n}_fc{j}", m)
                     for n, m in _activation(quant, n_out, False, activation, levels)],
                   (f"drop_fc{j}", nn.Dropout(dropout))]
    layers.append((f"fc{len(widths)}", nn.Linear(widths[-1], num_classes, bias=False)))
    model = ConstrainedNet(OrderedDict(layers), input_shape=input_shape, num_classes=num_classes)
    _init_weights(model)
    return model


ANN_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp, "vgg15": vgg15, "vgg15_imagenet": vgg15_imagenet,
    "vgg_small": vgg_small, "vgg_tiny": vgg_tiny,
}
"""The ANN builders; the one model registry is :data:`bsnn_bindsnet.training.models.MODELS`
(these and the direct route's), built by name with :func:`bsnn_bindsnet.training.models.get_model`."""
