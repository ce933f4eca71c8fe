"""Analyses of simulated B-SNNs: operation counts (energy proxy), firing rates, early exit.

The offline early-exit analysis is the submodule :mod:`bsnn_bindsnet.analysis.early_exit`
(its function ``early_exit`` is not re-exported here: the name would hide the submodule, and
``import bsnn_bindsnet.analysis.early_exit as m`` would give the function). The runtime early
exit, which stops computing for exited samples, is :mod:`bsnn_bindsnet.simulation.early_exit`.
"""

from bsnn_bindsnet.analysis.early_exit import (EarlyExit, exit_histogram, exit_steps,
                                               rates_until_exit, sweep)
from bsnn_bindsnet.analysis.ops import (LayerOps, layer_ops, normalized_events, normalized_ops,
                                        ops_report, synaptic_events)

__all__ = ["EarlyExit", "LayerOps", "exit_histogram", "exit_steps", "layer_ops",
           "normalized_events", "normalized_ops", "ops_report", "rates_until_exit", "sweep",
           "synaptic_events"]
