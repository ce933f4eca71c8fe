"""Table 1 (CIFAR-100; ``--dataset fashion-mnist`` on a CPU): ANN, SNN and B-SNN accuracy,
the timesteps the converted networks need to come within 1 point of their ANN, and the
normalized #OPS there without and with early exit, with the mean exit timestep. SIF neurons,
v(0) = theta/2, one-step mode.

Selection protocol: the settings are chosen on the calibration split (a fixed subset of the
*training* set; ``--select-limit`` images of it are simulated) and scored on the test split.
On calibration, ``T_ref`` is the first step within 1 point (``--within``) of the ANN's
calibration accuracy, and the early-exit threshold is the one with the lowest mean exit step
whose accuracy stays within 0.1 points (``--tolerance``) of the run at ``T_ref``; every sample
exits by ``T_ref`` at the latest (the cap), and threshold = inf (the fixed latency itself) is
a candidate, so early exit never runs longer than ``T_ref``. When its mean exit is not below
``T_ref`` the table says "no saving". On test: the accuracy and #OPS at that ``T_ref``, and
the early exit's accuracy, mean exit and #OPS at that threshold. A second table shows what
choosing both on the test set would have given. Accuracies measured on fewer than 10,000
images carry their 95 % Wilson interval.

    python -m experiments.table1 --dataset fashion-mnist --limit 0        # ~12 min + calibration
    # (the calibration run adds 3,500 images per network: ~35 % more; --select-limit N for less)
    python -m experiments.table1 --dataset cifar100 --runs-dir RUNS --data-root DATA \\
        --device cuda --timesteps 512 --percentile 99.7 --limit 0         # the paper's setting
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

from bsnn_bindsnet.analysis.stats import format_accuracy
from experiments.common import trained_models, write_results
from experiments.harness import (Setup, add_selection_argument, add_setup_arguments,
                                 ann_accuracy, early_exit_study, load_data, selection_data,
                                 setup_from, simulate_curve)

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
    add_selection_argument(p)
    args = p.parse_args(argv)
    return setup_from(args), args


def run(setup: Setup, args: argparse.Namespace) -> dict:
    from bsnn_bindsnet.analysis.stats import accuracy_interval
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    calib, test = load_data(setup)
    select = selection_data(calib, setup, args.select_limit)
    rows = {}
    for kind, label in NETWORKS.items():
        model = load_model(paths[kind])
        ann = ann_accuracy(model, test, setup)
        ann_calib = ann_accuracy(model, select, setup)
        plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                           build=False)
        _, calib_result = simulate_curve(plan, select, setup, per_sample=True)
        row, result = simulate_curve(plan, test, setup, per_sample=True)
        study = early_exit_study(calib_result, result, plan, ann_calib=ann_calib, ann_test=ann,
                                 tolerance=args.tolerance, reference_tolerance=args.within)
        rows[label] = {"final_accuracy": row["final_accuracy"],
                       "final_accuracy_interval": accuracy_interval(row["final_accuracy"],
                                                                    result.n),
                       "ann_interval": accuracy_interval(ann, result.n),
                       "ifr": row["ifr"], "ops_full_window": row["normalized_ops"][-1],
                       **{k: v for k, v in study.items() if k != "sweep"},
                       "calib": {k: v for k, v in study["calib"].items() if k != "sweep"}}
        print(f"{label}: {100 * row['final_accuracy']:.2f} % at T={setup.timesteps}", flush=True)
    return rows


def _t_ref(r: dict) -> str:
    return str(r["t_ref"]) if r["reference"] == "ANN" else f"never (best: {r['t_ref']})"


def _exit_cells(r: dict, n: int) -> str:
    """``#OPS with early exit | early-exit accuracy | mean exit T`` (or "no saving")."""
    if r["no_saving"]:
        return f"{r['ops_with_exit']:.3f} (no saving) | {format_accuracy(r['exit_accuracy'], n)} " \
               f"| {r['mean_exit']:.2f} = T_ref |"
    return (f"{r['ops_with_exit']:.3f} | {format_accuracy(r['exit_accuracy'], n)} | "
            f"{r['mean_exit']:.2f} (-{100 * r['timestep_saving']:.1f} %) |")


def print_table(rows: dict, setup: Setup, n: int | None = None) -> None:
    """Print the table scored on ``n`` test images (the protocol: see the module docstring)."""
    first = next(iter(rows.values()))
    n = n or first["n_test"]
    print(f"\n{setup.dataset}, {n} test samples, SIF, v(0)=theta/2, "
          f"{setup.percentile}th percentile, T_max={setup.timesteps}; T_ref and the early-exit "
          f"threshold chosen on {first['n_calib']} calibration images (training set), scored "
          "on test; accuracies in % [95 % interval]\n")
    print("| network | ANN (%) | at T_max (%) | T_ref (calib) | accuracy there (%) | "
          "#OPS there | #OPS with early exit | early-exit accuracy (%) | mean exit T |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {format_accuracy(r['ann'], n)} | "
              f"{format_accuracy(r['final_accuracy'], n)} | {_t_ref(r)} | "
              f"{format_accuracy(r['accuracy_at_t_ref'], n)} | {r['ops_at_t_ref']:.3f} | "
              + _exit_cells(r, n))
    print("\nfor comparison only, both chosen on the test set itself (optimistic):\n")
    print("| network | T_ref (test) | accuracy there (%) | #OPS there | #OPS with early exit | "
          "early-exit accuracy (%) | mean exit T |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        t = r["selected_on_test"]
        print(f"| {label} | {_t_ref(t)} | {format_accuracy(t['accuracy_at_t_ref'], n)} | "
              f"{t['ops_at_t_ref']:.3f} | " + _exit_cells(t, n))


def main(argv: Sequence[str] | None = None, **defaults) -> dict:
    setup, args = parse_args(argv, **defaults)
    rows = run(setup, args)
    write_results(setup.out_dir, {**asdict(setup), **vars(args)}, rows)
    print_table(rows, setup)
    print(f"\nresults: {setup.out_dir}/results.json")
    return rows


if __name__ == "__main__":
    main()
