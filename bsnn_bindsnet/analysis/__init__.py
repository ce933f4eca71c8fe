"""Analyses of simulated B-SNNs: operation counts (energy proxy) and firing rates."""

from bsnn_bindsnet.analysis.ops import LayerOps, layer_ops, normalized_ops

__all__ = ["LayerOps", "layer_ops", "normalized_ops"]
