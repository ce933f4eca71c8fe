"""Fig. 5: accuracy vs timesteps for the four pooling placements (avg/max x before/after the
ReLU), full precision (SNN) and binary weights (B-SNN).

Trains, for each placement, a full-precision model and a hybrid BWN from it with the same
(shortened) budget into ``RUNS_DIR/<prefix>-{fp,bwn}-<placement>/`` (finished runs are reused,
interrupted ones resumed; default ``RUNS_DIR``: ``OUT_DIR/models``), converts both (subtractive
IF, v(0) = theta/2) and simulates them. Max-pool after the ReLU is converted twice: with the
spike OR passed on unchanged (``maxpool_after="or"``, the paper) and with an extra balanced IF
layer after the pool (``maxpool_after="if"``). Every accuracy comes with its 95 % Wilson
interval (printed when fewer than 10,000 test samples; saved in results.json as
``accuracy_interval`` per timestep, ``final_accuracy_interval`` and ``ann_interval``).

    python -m experiments.fig5_pooling --dataset fashion-mnist   # ~40 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import preset_prefix, print_epoch, pyplot, savefig, write_results
from experiments.harness import (Setup, add_setup_arguments, ann_accuracy, load_data,
                                 setup_from, simulate_curve)

PLACEMENTS = ("avg-before", "avg-after", "max-before", "max-after")
# Rows of the figure per placement: (label, maxpool_after); the option only acts on max-after.
VARIANTS = {"avg-before": [("avg-before", "or")], "avg-after": [("avg-after", "or")],
            "max-before": [("max-before", "or")],
            "max-after": [("max-after (OR, paper)", "or"), ("max-after (extra IF)", "if")]}


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the training budget and the placements."""

    fp_epochs: int = 3
    bwn_epochs: int = 2
    train_subset: int | None = None
    placements: tuple[str, ...] = PLACEMENTS


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig5", timesteps=64, limit=2000)
    p.add_argument("--fp-epochs", type=int, default=Config.fp_epochs)
    p.add_argument("--bwn-epochs", type=int, default=Config.bwn_epochs)
    p.add_argument("--train-subset", type=int,
                   help="train on the first N training images (a shorter budget for every "
                        "placement alike)")
    p.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=Config.placements)
    args = p.parse_args(argv)
    if args.runs_dir is None:  # its own models, one pair per placement
        args.runs_dir = args.out_dir / "models"
    return setup_from(args, Config)


def train(setup: Config, placement: str) -> dict[str, Path]:
    """FP and hybrid-BWN ``model.pt`` for one placement (trained, resumed or reused)."""
    from bsnn_bindsnet.training.fit import RunConfig, fit

    prefix = preset_prefix(setup.dataset)
    paths = {}
    for mode, epochs in (("fp", setup.fp_epochs), ("bwn", setup.bwn_epochs)):
        run_dir = setup.runs_dir / f"{prefix}-{mode}-{placement}"
        run = RunConfig(preset=f"{prefix}-{mode}", out_dir=str(run_dir), pool=placement,
                        init_from=str(paths["fp"]) if mode == "bwn" else None,
                        epochs=2 if setup.smoke else epochs,
                        train_subset=256 if setup.smoke else setup.train_subset,
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
        for i, (name, rows) in enumerate(results.items()):
            color = f"C{i}"
            ax.plot(range(1, timesteps + 1), [100 * a for a in rows[label]["accuracy"]],
                    color=color, label=name, ls="--" if rows["maxpool_after"] == "if" else "-")
            ax.axhline(100 * rows[label]["ann"], color=color, ls=":", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{label} ({'full precision' if label == 'SNN' else 'binary weights'})")
        ax.set_xlabel("timesteps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)  (dotted: ANN)")
    axes[1].legend(title="pooling vs ReLU")
    return savefig(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    setup = parse_args(argv)
    calib, test = load_data(setup)
    results: dict = {}
    for placement in setup.placements:
        paths = train(setup, placement)
        models = {mode: load_model(paths[mode]) for mode in ("fp", "bwn")}
        ann = {mode: ann_accuracy(model, test, setup) for mode, model in models.items()}
        for name, maxpool_after in VARIANTS[placement]:
            results[name] = {"placement": placement,
                             "maxpool_after": maxpool_after if placement == "max-after"
                             else None}
            for mode, label in (("fp", "SNN"), ("bwn", "B-SNN")):
                plan = ann_to_bsnn(models[mode], calib, percentile=setup.percentile,
                                   maxpool_after=maxpool_after, device=setup.device,
                                   build=False)
                row, _ = simulate_curve(plan, test, setup)
                n = row["n"]
                row["ann"] = ann[mode]
                row["ann_interval"] = accuracy_interval(ann[mode], n)
                row["accuracy_interval"] = [accuracy_interval(a, n) for a in row["accuracy"]]
                row["final_accuracy_interval"] = accuracy_interval(row["final_accuracy"], n)
                results[name][label] = row
                t8 = min(8, setup.timesteps)
                print(f"{name} {label}: ANN {format_accuracy(row['ann'], n)} %, T={t8} "
                      f"{format_accuracy(row['accuracy'][t8 - 1], n)} %, "
                      f"T={setup.timesteps} {format_accuracy(row['final_accuracy'], n)} %",
                      flush=True)
    write_results(setup.out_dir, asdict(setup), results)
    plot(results, setup.out_dir / "fig5_pooling.png", setup.timesteps)
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= setup.timesteps]
    n = len(test)
    ci = " (%, 95 % Wilson interval)" if n < 10_000 else " (%)"
    print(f"\n{setup.dataset}, {n} test samples, SIF, v(0)=theta/2, "
          f"{setup.percentile}th percentile; accuracy{ci}\n")
    print("| pooling | network | ANN | " + " | ".join(f"T={t}" for t in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for name, rows in results.items():
        for label in ("SNN", "B-SNN"):
            row = rows[label]
            accs = " | ".join(format_accuracy(row["accuracy"][t - 1], row["n"]) for t in steps)
            print(f"| {name} | {label} | {format_accuracy(row['ann'], row['n'])} | {accs} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig5_pooling.png")
    return results


if __name__ == "__main__":
    main()
