"""Fig. 6: subtractive-reset (SIF) vs reset-to-zero (RIF) IF neurons: accuracy vs timesteps
and the layer-wise input firing rate (IFR: spikes per neuron over the window), for the
converted full-precision SNN and the B-SNN.

Needs the trained ``<prefix>-fp`` and ``<prefix>-bwn`` runs (``experiments.fig3_training_curves``).
Nothing is selected on the test set here; accuracies measured on fewer than 10,000 test images
carry their 95 % Wilson interval (printed, and ``*_interval`` in results.json).

    python -m experiments.fig6_reset_ifr --dataset fashion-mnist   # ~6 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import pyplot, savefig, trained_models, write_results
from experiments.harness import (RESETS, Setup, add_setup_arguments, ann_accuracy, load_data,
                                 setup_from, simulate_curve)

NETWORKS = {"fp": "SNN", "bwn": "B-SNN"}


def parse_args(argv: Sequence[str] | None = None) -> tuple[Setup, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig6", timesteps=64, limit=2000)
    p.add_argument("--v-init", choices=("zero", "half"), default="half")
    args = p.parse_args(argv)
    return setup_from(args), args


def curves(setup: Setup, v_init: str = "half") -> dict:
    """``{"ann": {label: acc}, "curves": {"B-SNN SIF": row, ...}}`` for SNN/B-SNN x SIF/RIF."""
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.convert import ann_to_bsnn

    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    calib, test = load_data(setup)
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


def plot(results: dict, path: Path) -> Path:
    plt = pyplot()
    fig, (acc_ax, ifr_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, row) in enumerate(results["curves"].items()):
        acc_ax.plot(range(1, len(row["accuracy"]) + 1), [100 * a for a in row["accuracy"]],
                    color=f"C{i}", ls="-" if "SIF" in name else "--", label=name)
        layers = list(row["ifr"])
        width = 0.8 / len(results["curves"])
        ifr_ax.bar([j + i * width for j in range(len(layers))], [row["ifr"][k] for k in layers],
                   width, color=f"C{i}", label=name)
    acc_ax.set_xscale("log", base=2)
    acc_ax.set_xlabel("timesteps")
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.grid(alpha=0.3)
    acc_ax.legend()
    ifr_ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=45)
    ifr_ax.set_ylabel(f"IFR (spikes per neuron over T={len(row['accuracy'])})")
    ifr_ax.legend()
    return savefig(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
    setup, args = parse_args(argv)
    results = curves(setup, args.v_init)
    write_results(setup.out_dir, {**asdict(setup), "v_init": args.v_init}, results)
    plot(results, setup.out_dir / "fig6_reset_ifr.png")
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= setup.timesteps]
    print(f"\n{setup.dataset}, {results['n']} test samples, v(0)={args.v_init}, "
          f"{setup.percentile}th percentile; test accuracy (%) [95 % interval]\n")
    print("| network | " + " | ".join(f"T={t}" for t in steps) + " | IFR per layer |")
    print("|---|" + "---|" * len(steps) + "---|")
    for name, row in results["curves"].items():
        ifr = ", ".join(f"{v:.2f}" for v in row["ifr"].values())
        print(f"| {name} | " + " | ".join(format_accuracy(row["accuracy"][t - 1], results["n"])
                                         for t in steps)
              + f" | {ifr} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig6_reset_ifr.png")
    return results


if __name__ == "__main__":
    main()
