"""Constrained ANNs, binary weights and their training (no BindsNET import)."""

from bsnn_bindsnet.ann.binarize import (BinaryConv2d, BinaryLinear, SignActivation, SignSTE,
                                        binarize_weight, binary_layers, sign_ste)
from bsnn_bindsnet.ann.models import MODELS, ConstrainedNet, get_model
from bsnn_bindsnet.ann.recipes import PRESETS, Preset, Recipe, get_preset

__all__ = ["MODELS", "PRESETS", "BinaryConv2d", "BinaryLinear", "ConstrainedNet", "Preset",
           "Recipe", "SignActivation", "SignSTE", "binarize_weight", "binary_layers",
           "get_model", "get_preset", "sign_ste"]
