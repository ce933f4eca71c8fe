"""Constrained ANNs and binary weights (no BindsNET import); training is
:mod:`bsnn_bindsnet.training`."""

from bsnn_bindsnet.ann.binarize import (BinaryConv2d, BinaryLinear, SignActivation, SignSTE,
                                        binarize_weight, binary_layers, sign_ste)
from bsnn_bindsnet.ann.models import MODELS, ConstrainedNet, get_model

__all__ = ["MODELS", "BinaryConv2d", "BinaryLinear", "ConstrainedNet", "SignActivation",
           "SignSTE", "binarize_weight", "binary_layers", "get_model", "sign_ste"]
