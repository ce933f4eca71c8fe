"""The part every conversion experiment shares: its command-line setup (a frozen
:class:`Setup` that each experiment extends with its own fields), the data, one simulated
accuracy curve of a converted network (accuracy, IFR and normalized #OPS per step), the
SNN/B-SNN x SIF/RIF curves, the early-exit study and the Table 1/2 rows.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from bsnn_bindsnet.snn.neurons import NEURONS
from experiments.common import claim_out_dir, trained_models


class _NeuronLabels(Mapping[str, str]):
    """Name -> table label (``"SIF"``) of every registered neuron model: a live view of
    :data:`bsnn_bindsnet.snn.neurons.NEURONS` (a plugin's model gets its curve too)."""

    def __getitem__(self, name: str) -> str:
        return NEURONS[name].label or name

    def __iter__(self) -> Iterator[str]:
        return iter(NEURONS)

    def __len__(self) -> int:
        return len(NEURONS)


RESETS: Mapping[str, str] = _NeuronLabels()
NETWORKS = {"fp": "SNN", "bwn": "B-SNN"}
S = TypeVar("S", bound="Setup")


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
    overwrite: bool = False


def add_setup_arguments(p: argparse.ArgumentParser, *, out_dir: str, timesteps: int,
                        limit: int | None = None, percentile: float = 99.9) -> None:
    """Add ``--dataset --runs-dir --out-dir --timesteps --percentile --limit --batch-size
    --data-root --device --smoke --overwrite`` to ``p``."""
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
    p.add_argument("--overwrite", action="store_true", help="replace an earlier results.json "
                   "in --out-dir (trained runs are never replaced)")


def setup_from(args: argparse.Namespace, cls: type[S] = Setup) -> S:
    """The setup ``cls`` (:class:`Setup` or an experiment's subclass) of parsed arguments;
    list values become tuples; ``--smoke`` swaps in digits, T=16, 64 samples. Checks the
    outputs before any work (:func:`experiments.common.claim_out_dir`)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if values["runs_dir"] is None:
        values["runs_dir"] = values["out_dir"] / "models" if args.smoke else Path("results/fig3")
    setup = cls(**values)
    if setup.timesteps < 1:
        raise ValueError(f"--timesteps must be >= 1, got {setup.timesteps}")
    if setup.smoke:
        setup = replace(setup, dataset="digits", timesteps=16, limit=64)
    claim_out_dir(setup.out_dir, setup.overwrite)
    return setup


def setup_dict(setup: Setup) -> dict[str, Any]:
    """The fields of :class:`Setup` only (an experiment records its own fields beside them)."""
    return {f.name: getattr(setup, f.name) for f in fields(Setup)}


def load_data(setup: Setup) -> tuple[Any, Any]:
    """``(calibration, test)`` datasets, the test set cut to ``--limit``. Calibration (a subset
    of "train") sets the thresholds only; every selection uses :func:`selection_data`."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset

    calib = load_dataset(setup.dataset, "calib", data_root=setup.data_root)
    test = load_dataset(setup.dataset, "test", data_root=setup.data_root)
    if setup.limit:
        test = Subset(test, range(min(setup.limit, len(test))))
    return calib, test


def ann_accuracy(model: Any, test: Any, setup: Setup) -> float:
    """Test accuracy of the ANN ``model``."""
    from bsnn_bindsnet.training.loop import evaluate
    from bsnn_bindsnet.data.registry import make_loader

    return evaluate(model.to(setup.device),
                    make_loader(test, batch_size=setup.batch_size, shuffle=False),
                    device=setup.device).acc


def simulate_curve(plan: Any, test: Any, setup: Setup, *, timesteps: int | None = None,
                   reset: str = "subtract", v_init: str = "half",
                   per_sample: bool = False) -> tuple[dict, Any]:
    """Build ``plan`` with the given reset and v(0), simulate it one-step on ``test``.

    Returns:
        ``(row, result)``: ``row`` is JSON-ready (the result's summary, the thresholds, IFR
        per layer over the whole window, normalized #OPS after every step); ``result`` the
        :class:`~bsnn_bindsnet.simulation.simulate.SimResult`.
    """
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate

    timesteps = timesteps or setup.timesteps
    plan = replace(plan, reset=reset, v_init=v_init)
    result = simulate(build_network(plan), test, timesteps, one_step=True,
                      batch_size=setup.batch_size, device=setup.device, per_sample=per_sample)
    ops = layer_ops(plan)
    row = {**result.summary(), "reset": reset, "v_init": v_init,
           "percentile": plan.info.percentile,
           "thresholds": {layer.name: layer.thresh for layer in plan.layers if layer.thresh},
           "ifr": result.firing_rates(timesteps),
           "normalized_ops": [normalized_ops(ops, result.firing_rates(t), timesteps=t)
                              for t in range(1, timesteps + 1)]}
    return row, result


def add_selection_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--select-limit``: how many validation images the selection run simulates."""
    p.add_argument("--select-limit", type=int, default=None,
                   help="simulate the first N images of the val split (held out: no model "
                        "trains on it) to choose every setting (T_ref, the early-exit "
                        "threshold, the percentile) before scoring it on test (default: all "
                        "of it; with --smoke: 64; 0 = all)")


def selection_data(setup: Setup, select_limit: int | None) -> Any:
    """The validation images every selection is made on: the first ``select_limit`` of the
    ``"val"`` split (``None`` or 0: all; ``None`` under ``--smoke``: 64). Never the test set,
    and never training images (the calibration split is drawn from "train")."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset

    val = load_dataset(setup.dataset, "val", data_root=setup.data_root)
    if select_limit is None and setup.smoke:
        select_limit = 64
    if select_limit:
        return Subset(val, range(min(select_limit, len(val))))
    return val


def _select_latency(result: Any, ann: float, ref_tol: float) -> tuple[str, int]:
    """``(reference, T_ref)``: the first step within ``ref_tol`` of ``ann``, or if the run
    never gets there, of its own best accuracy."""
    from bsnn_bindsnet.analysis.early_exit import first_step_reaching

    acc = result.accuracy
    t_ref = first_step_reaching(acc, ann - ref_tol)
    if t_ref is not None:
        return "ANN", t_ref
    return "best of the run", first_step_reaching(acc, max(acc) - ref_tol)


def _select(result: Any, ann: float, tolerance: float, ref_tol: float,
            n_thresholds: int) -> dict:
    """T_ref and the early-exit threshold (capped at T_ref) chosen on ``result``'s traces."""
    from bsnn_bindsnet.analysis.early_exit import choose_exit, threshold_grid

    reference, t_ref = _select_latency(result, ann, ref_tol)
    grid = threshold_grid(result.step_confidence[:t_ref], n_thresholds)
    chosen, runs = choose_exit(result.step_predictions, result.step_confidence, result.labels,
                               t_ref, grid, tolerance)
    return {"reference": reference, "t_ref": t_ref, "chosen": chosen, "runs": runs}


def _score(result: Any, plan: Any, t_ref: int, threshold: float) -> dict:
    """Fixed latency ``t_ref`` and the early exit at ``threshold`` capped at ``t_ref``, scored
    on ``result``'s traces, with their 95 % intervals and normalized #OPS."""
    from bsnn_bindsnet.analysis.early_exit import (early_exit, exit_histogram,
                                                   rates_until_exit, timestep_saving)
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops

    run = early_exit(result.step_predictions, result.step_confidence, result.labels,
                     threshold, t_cap=t_ref)
    ops = layer_ops(plan)
    ifr = rates_until_exit(result.sample_spikes, result.layer_neurons, run.exit_steps)
    at_ref = result.accuracy[t_ref - 1]
    return {"t_ref": t_ref, "threshold": None if threshold == math.inf else threshold,
            "accuracy_at_t_ref": at_ref,
            "accuracy_at_t_ref_interval": accuracy_interval(at_ref, result.n),
            "exit_accuracy": run.accuracy,
            "exit_accuracy_interval": accuracy_interval(run.accuracy, result.n),
            "mean_exit": run.mean_exit, "no_saving": run.mean_exit >= t_ref,
            "timestep_saving": timestep_saving(run.mean_exit, t_ref),
            "ops_at_t_ref": normalized_ops(ops, result.firing_rates(t_ref), timesteps=t_ref),
            "ops_with_exit": normalized_ops(ops, ifr, timesteps=run.mean_exit),
            "ifr_with_exit": ifr,
            "histogram": exit_histogram(run.exit_steps, result.timesteps).tolist()}


def _sweep_rows(runs: Any) -> list[dict]:
    return [{"threshold": None if r.threshold == math.inf else r.threshold,
             "accuracy": r.accuracy, "mean_exit": r.mean_exit} for r in runs]


def early_exit_study(val_result: Any, test_result: Any, plan: Any, *, ann_val: float,
                     ann_test: float, tolerance: float = 0.001,
                     reference_tolerance: float | None = None, n_thresholds: int = 96) -> dict:
    """Early exit: settings chosen on validation traces, scored on test traces (both from
    ``simulate(..., per_sample=True)`` of the same network and ``T_max``).

    Selection (on ``val_result``, the held-out "val" split): the fixed latency ``T_ref`` is
    the first step at which the run comes within ``reference_tolerance`` (default
    ``tolerance``) of the ANN's validation accuracy ``ann_val`` (or, if it never does, of its
    own best accuracy: ``reference`` says which). Every sample exits at the first step whose
    confidence exceeds the threshold and at ``T_ref`` at the latest; among a grid of
    thresholds plus ``+inf`` (= the fixed latency itself), the chosen one has the lowest mean
    exit step whose validation accuracy stays within ``tolerance`` of the run at ``T_ref``
    (see :func:`~bsnn_bindsnet.analysis.early_exit.choose_exit`). ``ann_test`` plays no part
    in the selection.

    Scoring (on ``test_result``): the accuracy and normalized #OPS at that ``T_ref``, and the
    early exit's accuracy, mean exit step and #OPS at that threshold, capped at ``T_ref``.
    ``no_saving`` is true when the mean exit is not below ``T_ref`` (then the policy is the
    fixed latency and ``timestep_saving`` is 0; it is never negative). ``met``: the test
    early-exit accuracy is within ``tolerance`` of the test accuracy at ``T_ref``.
    ``selected_on_test`` holds what choosing both on the test traces would have given, for
    comparison only. ``threshold`` is None where it is ``+inf``.
    """
    ref_tol = tolerance if reference_tolerance is None else reference_tolerance
    val = _select(val_result, ann_val, tolerance, ref_tol, n_thresholds)
    scored = _score(test_result, plan, val["t_ref"], val["chosen"].threshold)
    on_test = _select(test_result, ann_test, tolerance, ref_tol, n_thresholds)
    test_scored = _score(test_result, plan, on_test["t_ref"], on_test["chosen"].threshold)
    test_sweep = early_exit_sweep_rows(test_result, val["t_ref"], val["runs"])
    return {"ann": ann_test, "ann_val": ann_val, "n_val": val_result.n,
            "n_test": test_result.n, "tolerance": tolerance, "reference_tolerance": ref_tol,
            "reference": val["reference"], "t_max": test_result.timesteps, **scored,
            "met": scored["exit_accuracy"] >= scored["accuracy_at_t_ref"] - tolerance,
            "val": {"accuracy_at_t_ref": val["runs"][-1].accuracy,
                    "exit_accuracy": val["chosen"].accuracy,
                    "mean_exit": val["chosen"].mean_exit,
                    "sweep": _sweep_rows(val["runs"])},
            "selected_on_test": {"reference": on_test["reference"],
                                 **{k: v for k, v in test_scored.items()
                                    if k not in ("ifr_with_exit", "histogram")}},
            "sweep": test_sweep}


def converted_early_exit(model: Any, setup: Setup, select_limit: int | None, *,
                         tolerance: float, reference_tolerance: float | None = None
                         ) -> tuple[Any, dict, Any, dict]:
    """Convert ``model`` (percentile thresholds on the calibration split), simulate it on the
    validation images (:func:`selection_data`) and on test with per-sample traces, and run
    :func:`early_exit_study`.

    Returns:
        ``(plan, test_row, test_result, study)``.
    """
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    calib, test = load_data(setup)
    select = selection_data(setup, select_limit)
    ann = ann_accuracy(model, test, setup)
    ann_val = ann_accuracy(model, select, setup)
    plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                       build=False)
    _, val_result = simulate_curve(plan, select, setup, per_sample=True)
    row, result = simulate_curve(plan, test, setup, per_sample=True)
    study = early_exit_study(val_result, result, plan, ann_val=ann_val, ann_test=ann,
                             tolerance=tolerance, reference_tolerance=reference_tolerance)
    return plan, row, result, study


def run_table(setup: TableSetup) -> dict:
    """Tables 1 and 2: the rows, written to ``results.json`` and printed."""
    from dataclasses import asdict

    from experiments.common import print_table, write_results

    rows = table_rows(setup)
    write_results(setup.out_dir, asdict(setup), rows)
    print_table(rows, setup)
    print(f"\nresults: {setup.out_dir}/results.json")
    return rows


def early_exit_sweep_rows(result: Any, t_ref: int, runs: Any) -> list[dict]:
    """The thresholds of ``runs`` evaluated on ``result``'s traces, capped at ``t_ref``."""
    from bsnn_bindsnet.analysis.early_exit import sweep

    return _sweep_rows(sweep(result.step_predictions, result.step_confidence, result.labels,
                             [r.threshold for r in runs], t_cap=t_ref))


# ------------------------------------------------------------------ Figs. 6 and 9


def reset_curves(setup: Setup, v_init: str = "half", data: Any = None) -> dict:
    """``{"ann": {label: acc}, "curves": {"B-SNN SIF": row, ...}}`` for SNN/B-SNN x SIF/RIF,
    on the test split (cut to ``--limit``) or on ``data`` (e.g. :func:`selection_data`)."""
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    calib, test = load_data(setup)
    test = test if data is None else data
    n = len(test)
    out: dict = {"ann": {}, "ann_interval": {}, "curves": {}, "n": n}
    for kind, label in NETWORKS.items():
        model = load_model(paths[kind])
        out["ann"][label] = ann_accuracy(model, test, setup)
        out["ann_interval"][label] = accuracy_interval(out["ann"][label], n)
        plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                           build=False)
        for reset, neuron in RESETS.items():
            row, _ = simulate_curve(plan, test, setup, reset=reset, v_init=v_init)
            row["final_accuracy_interval"] = accuracy_interval(row["final_accuracy"], n)
            out["curves"][f"{label} {neuron}"] = row
            print(f"{label} {neuron}: {format_accuracy(row['final_accuracy'], n)} % at "
                  f"T={setup.timesteps} (ANN {format_accuracy(out['ann'][label], n)} %)",
                  flush=True)
    return out


# ------------------------------------------------------------------ Tables 1 and 2


@dataclass(frozen=True)
class TableSetup(Setup):
    """The setup of Tables 1 and 2: :class:`Setup` plus the selection protocol."""

    within: float = 0.01
    tolerance: float = 0.001
    select_limit: int | None = None


def parse_table_args(argv: Sequence[str] | None, doc: str | None, *, dataset: str,
                     percentile: float, out_dir: str) -> TableSetup:
    """The command line of Tables 1 and 2 (they differ in their defaults)."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir=out_dir, timesteps=64, percentile=percentile)
    p.set_defaults(dataset=dataset)
    p.add_argument("--within", type=float, default=TableSetup.within,
                   help="latency reference: within this of the ANN (fraction; 0.01 = 1 point)")
    p.add_argument("--tolerance", type=float, default=TableSetup.tolerance,
                   help="early exit keeps the accuracy within this of the reference run")
    add_selection_argument(p)
    return setup_from(p.parse_args(argv), TableSetup)


def table_rows(setup: TableSetup) -> dict:
    """SNN and B-SNN rows: ANN and final accuracy, and the early-exit study at T_ref."""
    from bsnn_bindsnet.training.models import load_model

    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    rows = {}
    for kind, label in NETWORKS.items():
        model = load_model(paths[kind])
        plan, row, result, study = converted_early_exit(
            model, setup, setup.select_limit, tolerance=setup.tolerance,
            reference_tolerance=setup.within)
        ann = study["ann"]
        rows[label] = {"final_accuracy": row["final_accuracy"],
                       "final_accuracy_interval": accuracy_interval(row["final_accuracy"],
                                                                    result.n),
                       "ann_interval": accuracy_interval(ann, result.n),
                       "ifr": row["ifr"], "ops_full_window": row["normalized_ops"][-1],
                       **{k: v for k, v in study.items() if k != "sweep"},
                       "val": {k: v for k, v in study["val"].items() if k != "sweep"}}
        print(f"{label}: {100 * row['final_accuracy']:.2f} % at T={setup.timesteps}", flush=True)
    return rows
