"""Fig. 9: accuracy against the normalized #OPS spent so far (1.0 = one ANN forward pass over
the hidden layers), for the SNN and the B-SNN with SIF and RIF neurons: the energy-accuracy
trade-off of latency.

Reuses ``experiments.fig6_reset_ifr``'s curves when ``--from`` names its results.json (same
models); otherwise simulates them. Nothing is selected on the test set here; the ANN accuracy
is printed with its 95 % Wilson interval when measured on fewer than 10,000 test images.

    python -m experiments.fig9_ops_accuracy --dataset fashion-mnist --from results/fig6/results.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import ops_to_reach, pyplot, savefig, write_results
from experiments.harness import Setup, add_setup_arguments, reset_curves, setup_dict, setup_from


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the Fig. 6 results to reuse."""

    source: Path | None = None


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig9", timesteps=64, limit=2000)
    p.add_argument("--from", dest="source", type=Path,
                   help="results.json of experiments.fig6_reset_ifr to reuse")
    return setup_from(p.parse_args(argv), Config)


def main(argv: Sequence[str] | None = None) -> dict:
    setup = parse_args(argv)
    if setup.source:
        saved = json.loads(setup.source.read_text())
        if saved["config"]["dataset"] != setup.dataset:
            raise ValueError(f"--from {setup.source} holds {saved['config']['dataset']!r} "
                             f"results; expected {setup.dataset!r}")
        results = saved["results"]
    else:
        results = reset_curves(setup)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows, n = [], results.get("n")  # n: absent from results.json files written before
    for i, (name, row) in enumerate(results["curves"].items()):
        ax.plot(row["normalized_ops"], [100 * a for a in row["accuracy"]], color=f"C{i}",
                ls="-" if "SIF" in name else "--", label=name)
        ann = results["ann"][name.split()[0]]
        rows.append({"network": name, "ann": ann,
                     "ann_interval": None if n is None else accuracy_interval(ann, n),
                     "ops_within_1pt": ops_to_reach(row, ann - 0.01),
                     "ops_within_0.5pt": ops_to_reach(row, ann - 0.005)})
    ax.set_xscale("log")
    ax.set_xlabel("normalized #OPS (1.0 = the ANN)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    savefig(fig, setup.out_dir / "fig9_ops_accuracy.png")
    write_results(setup.out_dir, {**setup_dict(setup), "from": setup.source}, rows)
    fmt = lambda v: "never" if v is None else f"{v:.3f}"  # noqa: E731
    acc = (lambda a: f"{100 * a:.2f}") if n is None else (lambda a: format_accuracy(a, n))
    print(f"{setup.dataset}, {n or 'unknown number of'} test samples; ANN accuracy (%)"
          + ("" if n is None else " [95 % interval]") + "\n")
    print("| network | ANN | #OPS to within 1 pt | #OPS to within 0.5 pt |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {acc(r['ann'])} | {fmt(r['ops_within_1pt'])} | "
              f"{fmt(r['ops_within_0.5pt'])} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig9_ops_accuracy.png")
    return {"rows": rows}


if __name__ == "__main__":
    main()
