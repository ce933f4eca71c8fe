"""Fig. 8: threshold balancing percentile: B-SNN accuracy vs timesteps for several
percentiles (100 = max-normalization), and the normalized #OPS each one spends to come
within 1 point of the ANN and over the whole window.

Lower percentiles lower the thresholds: more spikes per step, faster convergence, but a
larger clipping error at the end; the #OPS panel shows the cost side.

Choosing a percentile: the curves of the table are measured on the test set, which therefore
names no "best" percentile. Every choice is made on the val split (training-set images that no
model trains on; its first ``--select-limit`` images are simulated too): for each percentile,
``T_val`` is the first step at which its validation curve comes within 1 point of the ANN's
validation accuracy, and the table gives the test accuracy and normalized #OPS at that step
(:func:`experiments.common.chosen_on_val`). The chosen percentile is the one needing the
fewest validation #OPS to get there (ties: the first listed; none if no curve gets there),
scored on test at its ``T_val``. For comparison the script also names the percentile that the
same rule applied to the test curves would pick. Accuracies on fewer than 10,000 images carry
their 95 % Wilson interval.

    python -m experiments.fig8_percentile --dataset fashion-mnist   # ~20 min on 2 CPU cores
    python -m experiments.fig8_percentile --dataset fashion-mnist --select-limit 1000  # ~12 min
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import (chosen_on_val, ops_to_reach, pyplot, savefig, trained_models,
                                write_results)
from experiments.harness import (Setup, add_selection_argument, add_setup_arguments,
                                 ann_accuracy, load_data, selection_data, setup_dict,
                                 setup_from, simulate_curve)

PERCENTILES = (100.0, 99.99, 99.9, 99.7, 99.0)


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the percentiles, the network and v(0)."""

    percentiles: tuple[float, ...] = PERCENTILES
    model: str = "bwn"
    v_init: str = "half"
    select_limit: int | None = None


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig8", timesteps=64, limit=2000)
    p.add_argument("--percentiles", type=float, nargs="+", default=Config.percentiles)
    p.add_argument("--model", choices=("fp", "bwn"), default=Config.model)
    p.add_argument("--v-init", choices=("zero", "half"), default=Config.v_init)
    add_selection_argument(p)
    return setup_from(p.parse_args(argv), Config)


def choose_percentile(ops_within: Mapping[float, float | None]) -> float | None:
    """The percentile needing the fewest #OPS to reach its target (None: never reached);
    ties go to the first listed. None when no percentile reaches it."""
    reached = [(ops, i, q) for i, (q, ops) in enumerate(ops_within.items()) if ops is not None]
    return min(reached)[2] if reached else None


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    setup = parse_args(argv)
    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    model = load_model(paths[setup.model])
    calib, test = load_data(setup)  # calibration: the thresholds only
    select = selection_data(setup, setup.select_limit)
    n, n_val = len(test), len(select)
    ann = ann_accuracy(model, test, setup)
    ann_val = ann_accuracy(model, select, setup)
    rows, val_rows = {}, {}
    for q in setup.percentiles:
        plan = ann_to_bsnn(model, calib, percentile=q, device=setup.device, build=False)
        val_row, _ = simulate_curve(plan, select, setup, v_init=setup.v_init)
        row, _ = simulate_curve(plan, test, setup, v_init=setup.v_init)
        row["accuracy_interval"] = [accuracy_interval(a, n) for a in row["accuracy"]]
        row["within_1pt_on_val"] = chosen_on_val(val_row, row, ann_val - 0.01)
        row["ops_within_1pt_test"] = ops_to_reach(row, ann - 0.01)  # comparison only
        val_rows[q] = {"accuracy": val_row["accuracy"],
                       "normalized_ops": val_row["normalized_ops"]}
        rows[q] = row
        print(f"percentile {q}: {format_accuracy(row['final_accuracy'], n)} % at "
              f"T={setup.timesteps}", flush=True)
    chosen = choose_percentile({q: r["within_1pt_on_val"]["val_ops"] for q, r in rows.items()})
    choice = {"rule": "fewest normalized #OPS to within 1 pt of the ANN, on validation",
              "n_val": n_val, "ann_val": ann_val, "percentile": chosen,
              "on_test_would_be": choose_percentile({q: r["ops_within_1pt_test"]
                                                     for q, r in rows.items()})}
    if chosen is not None:
        sel = rows[chosen]["within_1pt_on_val"]
        choice.update({"t_val": sel["t_val"], "test_accuracy": sel["test_accuracy"],
                       "test_accuracy_interval": accuracy_interval(sel["test_accuracy"], n),
                       "test_ops": sel["test_ops"]})
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
    reach = [(lab, r["within_1pt_on_val"]["test_ops"]) for lab, r in zip(labels, rows.values())
             if r["within_1pt_on_val"]["test_ops"] is not None]
    if reach:
        ops_ax.plot(*zip(*reach), "s--", label="at T_val (within 1 pt of the ANN on val)")
    ops_ax.set(xlabel="percentile", ylabel="normalized #OPS")
    ops_ax.grid(alpha=0.3)
    ops_ax.legend()
    savefig(fig, setup.out_dir / "fig8_percentile.png")
    config = {**setup_dict(setup), "model": setup.model, "v_init": setup.v_init}
    config = {**config, "select_limit": setup.select_limit}
    write_results(setup.out_dir, config,
                  {"ann": ann, "ann_interval": accuracy_interval(ann, n), "n": n,
                   "curves": {str(q): r for q, r in rows.items()},
                   "val_curves": {str(q): r for q, r in val_rows.items()},
                   "choice": choice})
    steps = [t for t in (8, 16, 32, 64, 128, 256) if t <= T]
    fmt = lambda v: "never" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\n{setup.dataset} {setup.model}, {n} test samples, SIF, v(0)={setup.v_init}; "
          f"ANN {format_accuracy(ann, n)} %; test accuracy (%) [95 % interval]\n")
    print("| percentile | " + " | ".join(f"T={t}" for t in steps)
          + f" | #OPS over T={T} | T_val | test accuracy at T_val | #OPS at T_val (test) | "
          "the same on val |")
    print("|---|" + "---|" * (len(steps) + 5))
    for q, r in rows.items():
        sel = r["within_1pt_on_val"]
        acc = "-" if sel["test_accuracy"] is None else format_accuracy(sel["test_accuracy"], n)
        print(f"| {q} | " + " | ".join(format_accuracy(r["accuracy"][t - 1], n) for t in steps)
              + f" | {r['normalized_ops'][-1]:.3f} | {sel['t_val'] or 'never'} | {acc} | "
              f"{fmt(sel['test_ops'])} | {fmt(sel['val_ops'])} |")
    print(f"\nT_val: first step within 1 pt of the ANN on {n_val} validation images (ANN "
          f"{format_accuracy(ann_val, n_val)} %); chosen percentile ({choice['rule']}): ",
          end="")
    if chosen is None:
        print("none (no percentile comes within 1 pt of the ANN on validation)")
    else:
        print(f"{chosen}, at T_val={choice['t_val']}; on test there: "
              f"{format_accuracy(choice['test_accuracy'], n)} %, normalized #OPS "
              f"{choice['test_ops']:.3f}")
    print(f"the same rule applied to the test curves would pick: {choice['on_test_would_be']}")
    print(f"\nresults: {setup.out_dir}/results.json, fig8_percentile.png")
    return rows


if __name__ == "__main__":
    main()
