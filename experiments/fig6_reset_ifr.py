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
from dataclasses import dataclass
from pathlib import Path

from bsnn_bindsnet.analysis.stats import format_accuracy
from experiments.common import pyplot, savefig, write_results
from experiments.harness import Setup, add_setup_arguments, reset_curves, setup_dict, setup_from


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the initial membrane potential."""

    v_init: str = "half"


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig6", timesteps=64, limit=2000)
    p.add_argument("--v-init", choices=("zero", "half"), default=Config.v_init)
    return setup_from(p.parse_args(argv), Config)


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
    setup = parse_args(argv)
    results = reset_curves(setup, setup.v_init)
    write_results(setup.out_dir, {**setup_dict(setup), "v_init": setup.v_init}, results)
    plot(results, setup.out_dir / "fig6_reset_ifr.png")
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= setup.timesteps]
    print(f"\n{setup.dataset}, {results['n']} test samples, v(0)={setup.v_init}, "
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
