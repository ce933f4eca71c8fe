"""The part every conversion experiment shares: its command-line setup, the data, and one
simulated accuracy curve of a converted network (accuracy, IFR and normalized #OPS per step).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

RESETS = {"subtract": "SIF", "zero": "RIF"}


@dataclass(frozen=True)
class Setup:
    """What every conversion experiment takes from its command line."""

    dataset: str
    runs_dir: Path
    out_dir: Path
    timesteps: int
    percentile: float
    limit: int | None
    batch_size: int
    data_root: str | None
    device: str
    smoke: bool


def add_setup_arguments(p: argparse.ArgumentParser, *, out_dir: str, timesteps: int,
                        limit: int | None = None, percentile: float = 99.9) -> None:
    """Add ``--dataset --runs-dir --out-dir --timesteps --percentile --limit --batch-size
    --data-root --device --smoke`` to ``p``."""
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--runs-dir", type=Path,
                   help="folder of the trained runs (default: results/fig3, written by "
                        "experiments.fig3_training_curves; with --smoke: OUT_DIR/models)")
    p.add_argument("--out-dir", type=Path, default=Path(out_dir))
    p.add_argument("--timesteps", type=int, default=timesteps)
    p.add_argument("--percentile", type=float, default=percentile,
                   help="threshold balancing percentile (100 = max)")
    p.add_argument("--limit", type=int, default=limit,
                   help="only the first N test samples (default: %(default)s; 0 = all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data-root")
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, tiny models trained on the spot, T=16, 64 samples: seconds")


def setup_from(args: argparse.Namespace) -> Setup:
    """The :class:`Setup` of parsed arguments; ``--smoke`` swaps in digits, T=16, 64 samples."""
    fields = {k: getattr(args, k) for k in Setup.__dataclass_fields__}
    if fields["runs_dir"] is None:
        fields["runs_dir"] = fields["out_dir"] / "models" if args.smoke else Path("results/fig3")
    setup = Setup(**fields)
    if setup.timesteps < 1:
        raise ValueError(f"--timesteps must be >= 1, got {setup.timesteps}")
    if setup.smoke:
        setup = replace(setup, dataset="digits", timesteps=16, limit=64)
    return setup


def load_data(setup: Setup) -> tuple[Any, Any]:
    """``(calibration, test)`` datasets, the test set cut to ``--limit``."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data import load_dataset

    calib = load_dataset(setup.dataset, "calib", data_root=setup.data_root)
    test = load_dataset(setup.dataset, "test", data_root=setup.data_root)
    if setup.limit:
        test = Subset(test, range(min(setup.limit, len(test))))
    return calib, test


def ann_accuracy(model: Any, test: Any, setup: Setup) -> float:
    """Test accuracy of the ANN ``model``."""
    from bsnn_bindsnet.ann.train import evaluate
    from bsnn_bindsnet.data import make_loader

    return evaluate(model.to(setup.device),
                    make_loader(test, batch_size=setup.batch_size, shuffle=False)).acc


def simulate_curve(plan: Any, test: Any, setup: Setup, *, timesteps: int | None = None,
                   reset: str = "subtract", v_init: str = "half",
                   per_sample: bool = False) -> tuple[dict, Any]:
    """Build ``plan`` with the given reset and v(0), simulate it one-step on ``test``.

    Returns:
        ``(row, result)``: ``row`` is JSON-ready (the result's summary, the thresholds, IFR
        per layer over the whole window, normalized #OPS after every step); ``result`` the
        :class:`~bsnn_bindsnet.simulate.SimResult`.
    """
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
    from bsnn_bindsnet.network import build_network
    from bsnn_bindsnet.simulate import simulate

    timesteps = timesteps or setup.timesteps
    plan = replace(plan, reset=reset, v_init=v_init)
    result = simulate(build_network(plan), test, timesteps, one_step=True,
                      batch_size=setup.batch_size, device=setup.device, per_sample=per_sample)
    ops = layer_ops(plan)
    row = {**result.summary(), "reset": reset, "v_init": v_init,
           "percentile": plan.info["percentile"],
           "thresholds": {layer.name: layer.thresh for layer in plan.layers if layer.thresh},
           "ifr": result.firing_rates(timesteps),
           "normalized_ops": [normalized_ops(ops, result.firing_rates(t), timesteps=t)
                              for t in range(1, timesteps + 1)]}
    return row, result


def early_exit_study(result: Any, plan: Any, *, ann: float, tolerance: float = 0.001,
                     reference_tolerance: float | None = None, n_thresholds: int = 96) -> dict:
    """Early exit on the per-sample traces of ``result`` (``simulate(..., per_sample=True)``).

    The reference is the fixed latency ``T_ref`` at which the full run first comes within
    ``reference_tolerance`` (default ``tolerance``) of the ANN's accuracy ``ann`` (or, if it never does, of its own best
    accuracy: ``reference`` says which). The chosen threshold is the one with the lowest mean
    exit step whose accuracy stays within ``tolerance`` of the full run at ``T_ref``; samples
    that never cross it stop at the run's ``T``.
    """
    from bsnn_bindsnet.analysis.early_exit import (exit_histogram, first_step_reaching,
                                                   rates_until_exit, select_threshold, sweep,
                                                   threshold_grid)
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops

    acc = result.accuracy
    ref_tol = tolerance if reference_tolerance is None else reference_tolerance
    reference, t_ref = "ANN", first_step_reaching(acc, ann - ref_tol)
    if t_ref is None:
        reference, t_ref = "best of the run", first_step_reaching(acc, max(acc) - ref_tol)
    runs = sweep(result.step_predictions, result.step_confidence, result.labels,
                 threshold_grid(result.step_confidence, n_thresholds))
    chosen = select_threshold(runs, acc[t_ref - 1] - tolerance)
    met = chosen is not None
    chosen = chosen or runs[-1]  # no threshold keeps the accuracy: everyone runs to T_max
    ops = layer_ops(plan)
    ifr = rates_until_exit(result.sample_spikes, result.layer_neurons, chosen.exit_steps)
    return {"ann": ann, "tolerance": tolerance, "reference_tolerance": ref_tol,
            "reference": reference, "t_ref": t_ref,
            "accuracy_at_t_ref": acc[t_ref - 1], "t_max": result.timesteps,
            "met": met, "threshold": chosen.threshold, "exit_accuracy": chosen.accuracy,
            "mean_exit": chosen.mean_exit, "timestep_saving": 1 - chosen.mean_exit / t_ref,
            "ops_at_t_ref": normalized_ops(ops, result.firing_rates(t_ref), timesteps=t_ref),
            "ops_with_exit": normalized_ops(ops, ifr, timesteps=round(chosen.mean_exit)),
            "ifr_with_exit": ifr,
            "histogram": exit_histogram(chosen.exit_steps, result.timesteps).tolist(),
            "sweep": [{"threshold": r.threshold, "accuracy": r.accuracy,
                       "mean_exit": r.mean_exit} for r in runs]}
