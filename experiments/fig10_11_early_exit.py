"""Figs. 10 and 11: early exit on the readout's confidence (its max membrane potential).

Simulates the B-SNN to ``T_max`` keeping per-sample traces, on validation images (for the
selection) and on test images (for the scores), then evaluates every confidence threshold
offline (accuracy and mean exit step vs threshold: Fig. 10; histogram of exit steps at the
chosen threshold: Fig. 11).

Selection protocol: everything is chosen on the val split (training-set images held out
from training; the first ``--select-limit`` images of it) and scored on the test split.
``T_ref`` is the fixed latency at which the validation run first comes within 0.1 points
(``--tolerance``) of the ANN's validation accuracy. Every sample exits at the first step
whose confidence exceeds the threshold, and at ``T_ref`` at the latest (the cap), so early
exit never runs longer than the fixed latency it is compared with; threshold = inf is that
fixed latency itself. The chosen threshold is the one with the lowest mean exit step whose
validation accuracy stays within 0.1 points of the validation run at ``T_ref``; when its
mean exit is not below ``T_ref`` the study reports "no saving" (saving 0). The test scores
follow, and, for comparison only, what choosing both on the test set would have given.
Accuracies on fewer than 10,000 images carry their 95 % Wilson interval.

Then it *measures* the wall-clock saving on test: the full run to ``T_ref`` against the
early-exit run capped at ``T_ref`` (``simulate_early_exit``, which drops exited samples from
the running batch), best of ``--repeats`` interleaved runs.

    python -m experiments.fig10_11_early_exit --dataset fashion-mnist   # ~6 min + validation
    # (5,000 validation images on top of the 2,000 test images; --select-limit N for less)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bsnn_bindsnet.analysis.stats import format_accuracy
from experiments.common import pyplot, savefig, trained_models, write_results
from experiments.harness import (Setup, add_selection_argument, add_setup_arguments,
                                 converted_early_exit, load_data, setup_from)


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the network, the tolerance and the timing repeats."""

    model: str = "bwn"
    tolerance: float = 0.001
    repeats: int = 2
    select_limit: int | None = None


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig10_11", timesteps=64, limit=2000)
    p.add_argument("--model", choices=("fp", "bwn"), default=Config.model)
    p.add_argument("--tolerance", type=float, default=Config.tolerance,
                   help="accuracy tolerance (fraction; 0.001 = 0.1 points)")
    p.add_argument("--repeats", type=int, default=Config.repeats,
                   help="timed repetitions (best is kept)")
    add_selection_argument(p)
    return setup_from(p.parse_args(argv), Config)


def measure(plan, test, setup: Setup, study: dict, repeats: int) -> dict:
    """Best-of-``repeats`` wall time of the full run to ``T_ref`` and of the early-exit run
    capped at ``T_ref`` (its ``T_max``), so that both stop by ``T_ref``."""
    from bsnn_bindsnet.simulation.early_exit import simulate_early_exit
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate

    full, exit_ = [], []
    for _ in range(repeats):
        net = build_network(plan)
        t0 = time.perf_counter()
        simulate(net, test, study["t_ref"], batch_size=setup.batch_size, device=setup.device)
        full.append(time.perf_counter() - t0)
        net = build_network(plan)
        t0 = time.perf_counter()
        threshold = math.inf if study["threshold"] is None else study["threshold"]
        run = simulate_early_exit(net, test, study["t_ref"], threshold,
                                  batch_size=setup.batch_size, device=setup.device)
        exit_.append(time.perf_counter() - t0)
    saving = 1 - min(exit_) / min(full)
    return {"full_seconds": min(full), "exit_seconds": min(exit_), "wall_saving": saving,
            "wall_vs_timestep_saving": saving / study["timestep_saving"]
            if study["timestep_saving"] > 0 else None,
            "measured_exit_accuracy": run.accuracy, "measured_mean_exit": run.mean_exit}


def plot(study: dict, path_10, path_11) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = [r for r in study["sweep"] if r["threshold"] is not None]  # None: +inf
    val = [r for r in study["val"]["sweep"] if r["threshold"] is not None]
    thr = [r["threshold"] for r in finite]
    ax.plot(thr, [100 * r["accuracy"] for r in finite], "C0", label="test")
    ax.plot(thr, [100 * r["accuracy"] for r in val], "C0", ls="--", lw=0.8,
            label="validation (selection)")
    ax.axhline(100 * study["accuracy_at_t_ref"], color="C0", ls=":", lw=0.8,
               label=f"test, fixed T_ref={study['t_ref']}")
    if study["threshold"] is not None:
        ax.axvline(study["threshold"], color="k", ls="--", lw=0.8, label="chosen threshold")
    ax.set(xlabel=f"confidence threshold (readout max potential), exit by T_ref={study['t_ref']}",
           ylabel="accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    twin = ax.twinx()
    twin.plot(thr, [r["mean_exit"] for r in finite], "C1")
    twin.set_ylabel("mean exit timestep", color="C1")
    savefig(fig, path_10)
    fig, ax = plt.subplots(figsize=(6, 4))
    hist = study["histogram"]
    ax.bar(range(1, len(hist) + 1), hist, width=1.0, color="C2")
    ax.axvline(study["mean_exit"], color="k", ls="--", lw=0.8,
               label=f"mean {study['mean_exit']:.1f}")
    ax.set(xlabel="exit timestep", ylabel="samples")
    ax.legend()
    savefig(fig, path_11)


def _threshold(value: float | None) -> str:
    return "inf (the fixed latency)" if value is None else f"{value:.3f}"


def _saving(study: dict) -> str:
    if study["no_saving"]:
        return "no saving"
    return f"saving {100 * study['timestep_saving']:.1f} % of the timesteps"


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.training.models import load_model

    setup = parse_args(argv)
    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    model = load_model(paths[setup.model])
    _, test = load_data(setup)
    plan, row, result, study = converted_early_exit(model, setup, setup.select_limit,
                                                    tolerance=setup.tolerance)
    study.update(measure(plan, test, setup, study, setup.repeats))
    plot(study, setup.out_dir / "fig10_early_exit.png", setup.out_dir / "fig11_exit_histogram.png")
    write_results(setup.out_dir, asdict(setup),
                  {"curve": row, "early_exit": study})
    n, c, m, ann = len(test), study["val"], study["n_val"], study["ann"]
    print(f"\n{setup.dataset} {setup.model}, SIF, v(0)=theta/2; chosen on {m} "
          f"validation images (held out), scored on {n} test images; accuracies in % "
          "[95 % interval]\n")
    print(f"validation: ANN {format_accuracy(study['ann_val'], m)}; "
          f"T_ref = {study['t_ref']} (reference: {study['reference']}; "
          f"{format_accuracy(c['accuracy_at_t_ref'], m)}); threshold "
          f"{_threshold(study['threshold'])}: {format_accuracy(c['exit_accuracy'], m)}, "
          f"mean exit {c['mean_exit']:.2f}")
    print(f"test: ANN {format_accuracy(ann, n)}; fixed T_ref = {study['t_ref']}: "
          f"{format_accuracy(study['accuracy_at_t_ref'], n)}, normalized #OPS "
          f"{study['ops_at_t_ref']:.3f}")
    print(f"test, early exit (threshold {_threshold(study['threshold'])}, exit by T_ref): "
          f"{format_accuracy(study['exit_accuracy'], n)}, mean exit {study['mean_exit']:.2f} "
          f"({_saving(study)}), normalized #OPS {study['ops_with_exit']:.3f}")
    t = study["selected_on_test"]
    print(f"for comparison, both chosen on test: T_ref = {t['t_ref']} "
          f"({format_accuracy(t['accuracy_at_t_ref'], n)}, #OPS {t['ops_at_t_ref']:.3f}); "
          f"threshold {_threshold(t['threshold'])}: {format_accuracy(t['exit_accuracy'], n)}, "
          f"mean exit {t['mean_exit']:.2f} ({_saving(t)}), #OPS {t['ops_with_exit']:.3f}")
    print(f"wall clock: {study['full_seconds']:.2f} s full vs {study['exit_seconds']:.2f} s "
          f"early exit: saving {100 * study['wall_saving']:.1f} % "
          f"({study['wall_vs_timestep_saving'] or 0:.2f} of the timestep saving)")
    print(f"\nresults: {setup.out_dir}/results.json, fig10_early_exit.png, "
          "fig11_exit_histogram.png")
    return study


if __name__ == "__main__":
    main()
