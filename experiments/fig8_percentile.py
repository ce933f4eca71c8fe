"""Fig. 8: threshold balancing percentile: B-SNN accuracy vs timesteps for several
percentiles (100 = max-normalization), and the normalized #OPS each one spends to come
within 1 point of the ANN and over the whole window.

Lower percentiles lower the thresholds: more spikes per step, faster convergence, but a
larger clipping error at the end; the #OPS panel shows the cost side.

    python -m experiments.fig8_percentile --dataset fashion-mnist   # ~8 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

from experiments.common import pyplot, savefig, trained_models, write_results
from experiments.fig9_ops_accuracy import ops_to_reach
from experiments.harness import (Setup, add_setup_arguments, ann_accuracy, load_data,
                                 setup_from, simulate_curve)

PERCENTILES = (100.0, 99.99, 99.9, 99.7, 99.0)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig8", timesteps=64, limit=2000)
    p.add_argument("--percentiles", type=float, nargs="+", default=PERCENTILES)
    p.add_argument("--model", choices=("fp", "bwn"), default="bwn")
    p.add_argument("--v-init", choices=("zero", "half"), default="half")
    args = p.parse_args(argv)
    return setup_from(args), args


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    setup, args = parse_args(argv)
    model = load_model(trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)[args.model])
    calib, test = load_data(setup)
    ann = ann_accuracy(model, test, setup)
    rows = {}
    for q in args.percentiles:
        plan = ann_to_bsnn(model, calib, percentile=q, device=setup.device, build=False)
        row, _ = simulate_curve(plan, test, setup, v_init=args.v_init)
        row["ops_within_1pt"] = ops_to_reach(row, ann - 0.01)
        rows[q] = row
        print(f"percentile {q}: {100 * row['final_accuracy']:.2f} % at T={setup.timesteps}",
              flush=True)
    plt = pyplot()
    fig, (acc_ax, ops_ax) = plt.subplots(1, 2, figsize=(11, 4))
    T = setup.timesteps
    for i, (q, row) in enumerate(rows.items()):
        acc_ax.plot(range(1, T + 1), [100 * a for a in row["accuracy"]], color=f"C{i}",
                    label="max" if q == 100 else f"{q}th pct")
    acc_ax.axhline(100 * ann, color="k", ls=":", lw=0.8, label="ANN")
    acc_ax.set_xscale("log", base=2)
    acc_ax.set(xlabel="timesteps", ylabel="test accuracy (%)")
    acc_ax.grid(alpha=0.3)
    acc_ax.legend()
    labels = [str(q) for q in rows]
    ops_ax.plot(labels, [r["normalized_ops"][-1] for r in rows.values()], "o-",
                label=f"over T={T}")
    reach = [(lab, r["ops_within_1pt"]) for lab, r in zip(labels, rows.values())
             if r["ops_within_1pt"] is not None]
    if reach:
        ops_ax.plot(*zip(*reach), "s--", label="to within 1 pt of the ANN")
    ops_ax.set(xlabel="percentile", ylabel="normalized #OPS")
    ops_ax.grid(alpha=0.3)
    ops_ax.legend()
    savefig(fig, setup.out_dir / "fig8_percentile.png")
    config = {**asdict(setup), "model": args.model, "v_init": args.v_init}
    write_results(setup.out_dir, config, {"ann": ann, "curves": {str(q): r for q, r in rows.items()}})
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= T]
    print(f"\n{setup.dataset} {args.model}, {len(test)} test samples, SIF, v(0)={args.v_init}; "
          f"ANN {100 * ann:.2f} %\n")
    print("| percentile | " + " | ".join(f"T={t}" for t in steps)
          + f" | #OPS over T={T} | #OPS to within 1 pt |")
    print("|---|" + "---|" * (len(steps) + 2))
    for q, r in rows.items():
        reach = "never" if r["ops_within_1pt"] is None else f"{r['ops_within_1pt']:.3f}"
        print(f"| {q} | " + " | ".join(f"{100 * r['accuracy'][t - 1]:.2f}" for t in steps)
              + f" | {r['normalized_ops'][-1]:.3f} | {reach} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig8_percentile.png")
    return rows


if __name__ == "__main__":
    main()
