"""Fig. 5: accuracy vs timesteps for the four pooling placements (avg/max x before/after the
ReLU), full precision (SNN) and binary weights (B-SNN).

Trains, for each placement, a full-precision model and a hybrid BWN from it with the same
(shortened) budget into ``RUNS_DIR/<prefix>-{fp,bwn}-<placement>/`` (finished runs are reused,
interrupted ones resumed; default ``RUNS_DIR``: ``OUT_DIR/models``), converts both (subtractive IF, v(0) = theta/2) and simulates them.

    python -m experiments.fig5_pooling --dataset fashion-mnist   # ~35 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from experiments.common import preset_prefix, pyplot, savefig, write_results
from experiments.harness import (Setup, add_setup_arguments, ann_accuracy, load_data,
                                 setup_from, simulate_curve)

PLACEMENTS = ("avg-before", "avg-after", "max-before", "max-after")


def parse_args(argv: Sequence[str] | None = None) -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig5", timesteps=64, limit=2000)
    p.add_argument("--fp-epochs", type=int, default=3)
    p.add_argument("--bwn-epochs", type=int, default=2)
    p.add_argument("--train-subset", type=int,
                   help="train on the first N training images (a shorter budget for every "
                        "placement alike)")
    p.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=PLACEMENTS)
    args = p.parse_args(argv)
    if args.runs_dir is None:  # its own models, one pair per placement
        args.runs_dir = args.out_dir / "models"
    return setup_from(args), args


def train(setup: Setup, placement: str, args: argparse.Namespace) -> dict[str, Path]:
    """FP and hybrid-BWN ``model.pt`` for one placement (trained, resumed or reused)."""
    from bsnn_bindsnet.ann.fit import RunConfig, fit
    from bsnn_bindsnet.cli import print_epoch

    prefix = preset_prefix(setup.dataset)
    paths = {}
    for mode, epochs in (("fp", args.fp_epochs), ("bwn", args.bwn_epochs)):
        run_dir = setup.runs_dir / f"{prefix}-{mode}-{placement}"
        run = RunConfig(preset=f"{prefix}-{mode}", out_dir=str(run_dir), pool=placement,
                        init_from=str(paths["fp"]) if mode == "bwn" else None,
                        epochs=2 if setup.smoke else epochs,
                        train_subset=256 if setup.smoke else args.train_subset,
                        data_root=setup.data_root,
                        device=setup.device, progress=False)
        print(f"== {run.preset} {placement} -> {run_dir}", flush=True)
        fit(run, resume=(run_dir / "checkpoint.pt").exists(), on_epoch=print_epoch)
        paths[mode] = run_dir / "model.pt"
    return paths


def plot(results: dict, path: Path, timesteps: int) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, label in zip(axes, ("SNN", "B-SNN")):
        for i, (placement, rows) in enumerate(results.items()):
            color = f"C{i}"
            ax.plot(range(1, timesteps + 1), [100 * a for a in rows[label]["accuracy"]],
                    color=color, label=placement)
            ax.axhline(100 * rows[label]["ann"], color=color, ls=":", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{label} ({'full precision' if label == 'SNN' else 'binary weights'})")
        ax.set_xlabel("timesteps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)  (dotted: ANN)")
    axes[1].legend(title="pooling vs ReLU")
    return savefig(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    setup, args = parse_args(argv)
    calib, test = load_data(setup)
    results: dict = {}
    for placement in args.placements:
        paths = train(setup, placement, args)
        results[placement] = {}
        for mode, label in (("fp", "SNN"), ("bwn", "B-SNN")):
            model = load_model(paths[mode])
            plan = ann_to_bsnn(model, calib, percentile=setup.percentile, device=setup.device,
                               build=False)
            row, _ = simulate_curve(plan, test, setup)
            row["ann"] = ann_accuracy(model, test, setup)
            results[placement][label] = row
            print(f"{placement} {label}: ANN {100 * row['ann']:.2f} %, T=8 "
                  f"{100 * row['accuracy'][min(8, setup.timesteps) - 1]:.2f} %, "
                  f"T={setup.timesteps} {100 * row['final_accuracy']:.2f} %", flush=True)
    write_results(setup.out_dir, {**asdict(setup), **vars(args)}, results)
    plot(results, setup.out_dir / "fig5_pooling.png", setup.timesteps)
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= setup.timesteps]
    print(f"\n{setup.dataset}, {len(test)} test samples, SIF, v(0)=theta/2, "
          f"{setup.percentile}th percentile\n")
    print("| pooling | network | ANN | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for placement, rows in results.items():
        for label, row in rows.items():
            accs = " | ".join(f"{100 * row['accuracy'][t - 1]:.2f}" for t in steps)
            print(f"| {placement} | {label} | {100 * row['ann']:.2f} | {accs} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig5_pooling.png")
    return results


if __name__ == "__main__":
    main()
