"""Analyses of simulated B-SNNs: operation counts (energy proxy), firing rates, early exit."""

from bsnn_bindsnet.analysis.early_exit import (EarlyExit, early_exit, exit_histogram,
                                               exit_steps, rates_until_exit, sweep)
from bsnn_bindsnet.analysis.ops import (LayerOps, layer_ops, normalized_events, normalized_ops,
                                        synaptic_events)

__all__ = ["EarlyExit", "LayerOps", "early_exit", "exit_histogram", "exit_steps", "layer_ops",
           "normalized_events", "normalized_ops", "rates_until_exit", "sweep", "synaptic_events"]
