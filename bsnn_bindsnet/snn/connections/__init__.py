r"""BindsNET connections for converted binary SNNs: no learning rule, weights in buffers.

Binary layers keep :math:`W_b = \alpha \operatorname{sign}(W)` as an ``int8`` sign and one scale
:math:`\alpha` per output (XNOR-Net / BWN): ``compute`` runs the integer-valued binary MAC first
and applies :math:`\alpha` last, in exact integer arithmetic for bool spikes where it runs
(:mod:`bsnn_bindsnet.snn.connections.integer`; ``arithmetic="float"`` forces the float path,
with bitwise the same result). The first and last layers stay full precision
(:class:`FullPrecisionConnection`, :class:`FullPrecisionConv2dConnection`), and pooling between
two spiking layers has its own connections.

Every connection follows the BindsNET contract: ``compute(s)`` receives the raw ``source.s``
(bool from spiking layers, float from an ``Input`` layer), converts it once, and returns the
input current ``[B, *target.shape]``; ``update``, ``reset_state_variables`` and ``normalize`` do
nothing. The geometry is checked at construction: a weight or pooling window that does not map
``source.shape`` to ``target.shape`` raises a ``ValueError`` naming both shapes.
"""

from bsnn_bindsnet.snn.connections.pooling import AvgPool2dConnection, MaxPool2dConnection
from bsnn_bindsnet.snn.connections.weights import (BinaryConnection, BinaryConv2dConnection,
                                               FullPrecisionConnection,
                                               FullPrecisionConv2dConnection)

__all__ = [
    "AvgPool2dConnection", "BinaryConnection", "BinaryConv2dConnection",
    "FullPrecisionConnection", "FullPrecisionConv2dConnection", "MaxPool2dConnection",
]  # fmt: skip
