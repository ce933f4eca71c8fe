"""Constrained ANNs and binary weights (no BindsNET import); training is
:mod:`bsnn_bindsnet.training`."""

from bsnn_bindsnet.ann.binarize import (BinaryConv2d, BinaryLinear, SignActivation, SignSTE,
                                        binarize_weight, binary_layers, sign_ste)
from bsnn_bindsnet.ann.models import ANN_MODELS, ConstrainedNet

__all__ = ["ANN_MODELS", "BinaryConv2d", "BinaryLinear", "ConstrainedNet", "SignActivation",
           "SignSTE", "binarize_weight", "binary_layers", "sign_ste"]
