"""Table 1 (CIFAR-100; ``--dataset fashion-mnist`` on a CPU): ANN, SNN and B-SNN accuracy,
the timesteps the converted networks need to come within 1 point of their ANN, and the
normalized #OPS there without and with early exit (the threshold that keeps the accuracy
within 0.1 points of the fixed-latency run), with the mean exit timestep. SIF neurons,
v(0) = theta/2, one-step mode.

    python -m experiments.table1 --dataset fashion-mnist --limit 0        # ~12 min, 2 CPU cores
    python -m experiments.table1 --dataset cifar100 --runs-dir RUNS --data-root DATA \\
        --device cuda --timesteps 512 --percentile 99.7 --limit 0         # the paper's setting
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

from experiments.common import trained_models, write_results
from experiments.harness import (Setup, add_setup_arguments, ann_accuracy, early_exit_study,
                                 load_data, setup_from, simulate_curve)

NETWORKS = {"fp": "SNN", "bwn": "B-SNN"}


def parse_args(argv: Sequence[str] | None = None, *, dataset: str = "cifar100",
               percentile: float = 99.7,
               out_dir: str = "results/table1") -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir=out_dir, timesteps=64, percentile=percentile)
    p.set_defaults(dataset=dataset)
    p.add_argument("--within", type=float, default=0.01,
                   help="latency reference: within this of the ANN (fraction; 0.01 = 1 point)")
    p.add_argument("--tolerance", type=float, default=0.001,
                   help="early exit keeps the accuracy within this of the reference run")
    args = p.parse_args(argv)
    return setup_from(args), args


def run(setup: Setup, args: argparse.Namespace) -> dict:
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    calib, test = load_data(setup)
    rows = {}
    for kind, label in NETWORKS.items():
        model = load_model(paths[kind])
        ann = ann_accuracy(model, test, setup)
        plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                           build=False)
        row, result = simulate_curve(plan, test, setup, per_sample=True)
        study = early_exit_study(result, plan, ann=ann, tolerance=args.tolerance,
                                 reference_tolerance=args.within)
        rows[label] = {"ann": ann, "final_accuracy": row["final_accuracy"],
                       "ifr": row["ifr"], "ops_full_window": row["normalized_ops"][-1],
                       **{k: v for k, v in study.items() if k != "sweep"}}
        print(f"{label}: {100 * row['final_accuracy']:.2f} % at T={setup.timesteps}", flush=True)
    return rows


def print_table(rows: dict, setup: Setup, n: int | None = None) -> None:
    print(f"\n{setup.dataset}, {n or 'all'} test samples, SIF, v(0)=theta/2, "
          f"{setup.percentile}th percentile, T_max={setup.timesteps}\n")
    print("| network | ANN (%) | at T_max (%) | T within 1 pt | accuracy there (%) | "
          "#OPS there | #OPS with early exit | early-exit accuracy (%) | mean exit T |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        t_ref = r["t_ref"] if r["reference"] == "ANN" else f"never (best: {r['t_ref']})"
        print(f"| {label} | {100 * r['ann']:.2f} | {100 * r['final_accuracy']:.2f} | {t_ref} | "
              f"{100 * r['accuracy_at_t_ref']:.2f} | {r['ops_at_t_ref']:.3f} | "
              f"{r['ops_with_exit']:.3f} | {100 * r['exit_accuracy']:.2f} | "
              f"{r['mean_exit']:.1f} |")


def main(argv: Sequence[str] | None = None, **defaults) -> dict:
    setup, args = parse_args(argv, **defaults)
    rows = run(setup, args)
    write_results(setup.out_dir, {**asdict(setup), **vars(args)}, rows)
    print_table(rows, setup, setup.limit)
    print(f"\nresults: {setup.out_dir}/results.json")
    return rows


if __name__ == "__main__":
    main()
