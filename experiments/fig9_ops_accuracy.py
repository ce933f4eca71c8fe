"""Fig. 9: accuracy against the normalized #OPS spent so far (1.0 = one ANN forward pass over
the hidden layers), for the SNN and the B-SNN with SIF and RIF neurons: the energy-accuracy
trade-off of latency.

Reuses ``experiments.fig6_reset_ifr``'s curves when ``--from`` names its results.json (same
models); otherwise simulates them. The "#OPS to within 1 (0.5) point" is chosen on the val
split (issue 22): each network is also simulated on the first ``--select-limit`` val images,
``T_val`` is the first step whose val accuracy comes within 1 (0.5) point of the ANN's val
accuracy, and the test curve is read at ``T_val`` (:func:`experiments.common.chosen_on_val`).
The crossing points of the test curves themselves are kept beside it for comparison only. The
ANN accuracy is printed with its 95 % Wilson interval when measured on fewer than 10,000 test
images.

    python -m experiments.fig9_ops_accuracy --dataset fashion-mnist --from results/fig6/results.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import chosen_on_val, ops_to_reach, pyplot, savefig, write_results
from experiments.harness import (Setup, add_selection_argument, add_setup_arguments,
                                 reset_curves, selection_data, setup_dict, setup_from)


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the Fig. 6 results to reuse."""

    source: Path | None = None
    select_limit: int | None = None


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig9", timesteps=64, limit=2000)
    p.add_argument("--from", dest="source", type=Path,
                   help="results.json of experiments.fig6_reset_ifr to reuse")
    add_selection_argument(p)
    return setup_from(p.parse_args(argv), Config)


def val_curves(setup: Config, v_init: str = "half") -> dict:
    """``{name: {"ann_val", "n_val", "accuracy", "normalized_ops"}}``: the networks and resets
    of :func:`experiments.harness.reset_curves` (same models, thresholds and v(0)) on the
    first ``--select-limit`` val images."""
    val = reset_curves(setup, v_init, data=selection_data(setup, setup.select_limit))
    return {name: {"ann_val": val["ann"][name.split()[0]], "n_val": val["n"],
                   "accuracy": row["accuracy"], "normalized_ops": row["normalized_ops"]}
            for name, row in val["curves"].items()}


def main(argv: Sequence[str] | None = None) -> dict:
    setup = parse_args(argv)
    if setup.source:
        saved = json.loads(setup.source.read_text())
        if saved["config"]["dataset"] != setup.dataset:
            raise ValueError(f"--from {setup.source} holds {saved['config']['dataset']!r} "
                             f"results; expected {setup.dataset!r}")
        results = saved["results"]
        # the val curves must come from the same networks: fig6's thresholds and window
        setup = replace(setup, percentile=saved["config"]["percentile"],
                        timesteps=saved["config"]["timesteps"])
    else:
        results = reset_curves(setup)
    val = val_curves(setup, saved["config"].get("v_init", "half") if setup.source else "half")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows, n = [], results.get("n")  # n: absent from results.json files written before
    for i, (name, row) in enumerate(results["curves"].items()):
        ax.plot(row["normalized_ops"], [100 * a for a in row["accuracy"]], color=f"C{i}",
                ls="-" if "SIF" in name else "--", label=name)
        ann, v = results["ann"][name.split()[0]], val[name]
        rows.append({"network": name, "ann": ann, "ann_val": v["ann_val"], "n_val": v["n_val"],
                     "ann_interval": None if n is None else accuracy_interval(ann, n),
                     "within_1pt_on_val": chosen_on_val(v, row, v["ann_val"] - 0.01),
                     "within_0.5pt_on_val": chosen_on_val(v, row, v["ann_val"] - 0.005),
                     "ops_within_1pt_test": ops_to_reach(row, ann - 0.01),  # comparison only
                     "ops_within_0.5pt_test": ops_to_reach(row, ann - 0.005)})
    ax.set_xscale("log")
    ax.set_xlabel("normalized #OPS (1.0 = the ANN)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    savefig(fig, setup.out_dir / "fig9_ops_accuracy.png")
    write_results(setup.out_dir, {**setup_dict(setup), "from": setup.source}, rows)
    fmt = lambda v: "never" if v is None else f"{v:.3f}"  # noqa: E731
    acc = (lambda a: f"{100 * a:.2f}") if n is None else (lambda a: format_accuracy(a, n))
    at = lambda c: ("never on val" if c["t_val"] is None else  # noqa: E731
                    f"T = {c['t_val']}: {fmt(c['test_ops'])}, "
                    + ("-" if c["test_accuracy"] is None else acc(c["test_accuracy"])))
    print(f"{setup.dataset}, {n or 'unknown number of'} test samples; ANN accuracy (%)"
          + ("" if n is None else " [95 % interval]")
          + f"; T chosen on {rows[0]['n_val']} val images, read on test\n")
    print("| network | ANN (test) | ANN (val) | within 1 pt on val: T, test #OPS, test acc "
          "| within 0.5 pt on val: T, test #OPS, test acc | test crossing 1 / 0.5 pt "
          "(comparison only) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {acc(r['ann'])} | {100 * r['ann_val']:.2f} | "
              f"{at(r['within_1pt_on_val'])} | {at(r['within_0.5pt_on_val'])} | "
              f"{fmt(r['ops_within_1pt_test'])} / {fmt(r['ops_within_0.5pt_test'])} |")
    print(f"\nresults: {setup.out_dir}/results.json, fig9_ops_accuracy.png")
    return {"rows": rows}


if __name__ == "__main__":
    main()
