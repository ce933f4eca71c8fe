"""Figs. 10 and 11: early exit on the readout's confidence (its max membrane potential).

Simulates the B-SNN once to ``T_max`` keeping per-sample traces, then evaluates every
confidence threshold offline (accuracy and mean exit step vs threshold: Fig. 10; histogram of
exit steps at the chosen threshold: Fig. 11). The chosen threshold is the one with the lowest
mean exit step whose accuracy stays within 0.1 points of the full run at ``T_ref``, the fixed
latency at which the full run first comes within 0.1 points of the ANN. Then it *measures*
the wall-clock saving: the full run to ``T_ref`` against the early-exit run
(``simulate_early_exit``, which drops exited samples from the running batch), best of
``--repeats`` interleaved runs.

    python -m experiments.fig10_11_early_exit --dataset fashion-mnist   # ~6 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict

from experiments.common import pyplot, savefig, trained_models, write_results
from experiments.harness import (Setup, add_setup_arguments, ann_accuracy, early_exit_study,
                                 load_data, setup_from, simulate_curve)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig10_11", timesteps=64, limit=2000)
    p.add_argument("--model", choices=("fp", "bwn"), default="bwn")
    p.add_argument("--tolerance", type=float, default=0.001,
                   help="accuracy tolerance (fraction; 0.001 = 0.1 points)")
    p.add_argument("--repeats", type=int, default=2, help="timed repetitions (best is kept)")
    args = p.parse_args(argv)
    return setup_from(args), args


def measure(plan, test, setup: Setup, study: dict, repeats: int) -> dict:
    """Best-of-``repeats`` wall time of the full run to ``T_ref`` and of the early-exit run."""
    from bsnn_bindsnet.early_exit import simulate_early_exit
    from bsnn_bindsnet.network import build_network
    from bsnn_bindsnet.simulate import simulate

    full, exit_ = [], []
    for _ in range(repeats):
        net = build_network(plan)
        t0 = time.perf_counter()
        simulate(net, test, study["t_ref"], batch_size=setup.batch_size, device=setup.device)
        full.append(time.perf_counter() - t0)
        net = build_network(plan)
        t0 = time.perf_counter()
        run = simulate_early_exit(net, test, study["t_max"], study["threshold"],
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
    thr = [r["threshold"] for r in study["sweep"]]
    ax.plot(thr, [100 * r["accuracy"] for r in study["sweep"]], "C0")
    ax.axhline(100 * study["accuracy_at_t_ref"], color="C0", ls=":", lw=0.8,
               label=f"full run at T_ref={study['t_ref']}")
    ax.axvline(study["threshold"], color="k", ls="--", lw=0.8, label="chosen threshold")
    ax.set(xlabel="confidence threshold (readout max potential)", ylabel="accuracy (%)")
    ax.legend(loc="lower right")
    twin = ax.twinx()
    twin.plot(thr, [r["mean_exit"] for r in study["sweep"]], "C1")
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


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    setup, args = parse_args(argv)
    model = load_model(trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)[args.model])
    calib, test = load_data(setup)
    ann = ann_accuracy(model, test, setup)
    plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                       build=False)
    row, result = simulate_curve(plan, test, setup, per_sample=True)
    study = early_exit_study(result, plan, ann=ann, tolerance=args.tolerance)
    study.update(measure(plan, test, setup, study, args.repeats))
    plot(study, setup.out_dir / "fig10_early_exit.png", setup.out_dir / "fig11_exit_histogram.png")
    write_results(setup.out_dir, {**asdict(setup), **vars(args)},
                  {"curve": row, "early_exit": study})
    print(f"\n{setup.dataset} {args.model}, {len(test)} test samples, SIF, v(0)=theta/2; "
          f"ANN {100 * ann:.2f} %; reference: {study['reference']}\n")
    print(f"full run: T_ref = {study['t_ref']} ({100 * study['accuracy_at_t_ref']:.2f} %), "
          f"normalized #OPS {study['ops_at_t_ref']:.3f}")
    print(f"early exit (threshold {study['threshold']:.3f}, T_max {study['t_max']}): "
          f"{100 * study['exit_accuracy']:.2f} %, mean exit {study['mean_exit']:.2f} "
          f"(saving {100 * study['timestep_saving']:.1f} % of the timesteps), normalized #OPS "
          f"{study['ops_with_exit']:.3f}")
    print(f"wall clock: {study['full_seconds']:.2f} s full vs {study['exit_seconds']:.2f} s "
          f"early exit: saving {100 * study['wall_saving']:.1f} % "
          f"({study['wall_vs_timestep_saving'] or 0:.2f} of the timestep saving)")
    print(f"\nresults: {setup.out_dir}/results.json, fig10_early_exit.png, "
          "fig11_exit_histogram.png")
    return study


if __name__ == "__main__":
    main()
