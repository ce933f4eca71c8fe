"""Helpers shared by the experiment scripts: dataset -> preset prefix (from the dataset
registry), the trained runs, epoch lines, JSON and figure output, #OPS to reach an accuracy,
the Table 1/2 printout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bsnn_bindsnet.analysis.stats import format_accuracy
from bsnn_bindsnet.checkpoint import atomic_write_json
from bsnn_bindsnet.data import dataset_info


def preset_prefix(dataset: str) -> str:
    """The prefix of ``dataset``'s presets and runs (``"fashion-mnist"`` -> ``"fmnist"``), from
    its :class:`~bsnn_bindsnet.data.DatasetInfo`; unknown names raise a ValueError listing the
    choices."""
    return dataset_info(dataset).prefix


def print_epoch(row: Mapping[str, Any]) -> None:
    """One line per finished training epoch."""
    from bsnn_bindsnet.training.fit import format_epoch

    print(format_epoch(row), flush=True)


def ops_to_reach(row: Mapping[str, Any], target: float) -> float | None:
    """Normalized #OPS spent when the curve ``row`` first reaches ``target`` accuracy."""
    t = next((i for i, a in enumerate(row["accuracy"]) if a >= target), None)
    return None if t is None else row["normalized_ops"][t]


def write_results(out_dir: Path, config: Mapping[str, Any], results: Any) -> Path:
    """Write ``{"config": ..., "results": ...}`` to ``out_dir/results.json`` atomically."""
    return atomic_write_json({"config": _jsonable(config), "results": results},
                             Path(out_dir) / "results.json")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def savefig(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure (PNG, 150 dpi) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trained_models(dataset: str, runs_dir: Path, *, smoke: bool = False) -> dict[str, Path]:
    """``{"fp": .../model.pt, "bwn": .../model.pt}`` of the dataset's FP and hybrid BWN runs.

    With ``smoke`` missing runs are trained on the spot (4 epochs, all digits: seconds); otherwise a
    missing run is an error that names the command producing it.
    """
    prefix = preset_prefix(dataset)
    paths = {mode: Path(runs_dir) / f"{prefix}-{mode}" / "model.pt" for mode in ("fp", "bwn")}
    if all(p.exists() for p in paths.values()):
        return paths
    if not smoke:
        missing = ", ".join(str(p) for p in paths.values() if not p.exists())
        raise FileNotFoundError(
            f"missing trained models: {missing}; train them with `python -m "
            f"experiments.fig3_training_curves --dataset {dataset} --out-dir {runs_dir}` (or "
            f"`bsnn train --preset {prefix}-fp --out {runs_dir}/{prefix}-fp` and then "
            f"`bsnn train --preset {prefix}-bwn --init-from {runs_dir}/{prefix}-fp/model.pt "
            f"--out {runs_dir}/{prefix}-bwn`)")
    from bsnn_bindsnet.training.fit import RunConfig, fit

    for mode in ("fp", "bwn"):
        init = str(paths["fp"]) if mode == "bwn" else None
        fit(RunConfig(preset=f"{prefix}-{mode}", out_dir=str(paths[mode].parent), epochs=4,
                      init_from=init, progress=False), overwrite=True)
    return paths


# ------------------------------------------------------------------ Tables 1 and 2


def _t_ref(r: dict) -> str:
    return str(r["t_ref"]) if r["reference"] == "ANN" else f"never (best: {r['t_ref']})"


def _exit_cells(r: dict, n: int) -> str:
    """``#OPS with early exit | early-exit accuracy | mean exit T`` (or "no saving")."""
    if r["no_saving"]:
        return f"{r['ops_with_exit']:.3f} (no saving) | {format_accuracy(r['exit_accuracy'], n)} " \
               f"| {r['mean_exit']:.2f} = T_ref |"
    return (f"{r['ops_with_exit']:.3f} | {format_accuracy(r['exit_accuracy'], n)} | "
            f"{r['mean_exit']:.2f} (-{100 * r['timestep_saving']:.1f} %) |")


def print_table(rows: dict, setup: Any, n: int | None = None) -> None:
    """Print the table scored on ``n`` test images (the protocol: see ``experiments.table1``)."""
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
