"""Helpers shared by the experiment scripts: dataset -> preset prefix (from the dataset
registry), the trained runs, epoch lines, JSON and figure output, #OPS to reach an accuracy,
a latency chosen on validation and scored on test, the Table 1/2 printout.

Experiments follow the overwrite rule of ``bsnn``: :func:`claim_out_dir` (called by
:func:`experiments.harness.setup_from` before any work) takes the lock on ``--out-dir`` and
refuses an existing ``results.json`` without ``--overwrite``; :func:`write_results` never
replaces one this process was not allowed to; :func:`trained_models` trains only the runs that
are missing, says so, and never replaces a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bsnn_bindsnet.analysis.stats import format_accuracy
from bsnn_bindsnet.checkpoint import atomic_write_json
from bsnn_bindsnet.data.registry import dataset_info


def preset_prefix(dataset: str) -> str:
    """The prefix of ``dataset``'s presets and runs (``"fashion-mnist"`` -> ``"fmnist"``), from
    its :class:`~bsnn_bindsnet.data.registry.DatasetInfo`; unknown names raise a ValueError listing the
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


def chosen_on_val(val_row: Mapping[str, Any], test_row: Mapping[str, Any],
                  val_target: float) -> dict[str, Any]:
    """Choose a latency on validation, score it on test.

    ``T_val`` is the first step at which the validation curve ``val_row`` reaches
    ``val_target`` (e.g. the ANN's *validation* accuracy less 1 point); the test curve
    ``test_row`` plays no part in the choice and is only read at ``T_val``. Both rows hold
    ``accuracy`` and ``normalized_ops`` per step.

    Returns:
        ``{"t_val", "val_accuracy", "val_ops", "test_accuracy", "test_ops"}``; all None when
        the validation curve never reaches the target, test values None when the test curve
        is shorter than ``T_val``.
    """
    t = next((i + 1 for i, a in enumerate(val_row["accuracy"]) if a >= val_target), None)
    if t is None:
        return dict.fromkeys(("t_val", "val_accuracy", "val_ops", "test_accuracy", "test_ops"))
    on_test = t <= len(test_row["accuracy"])
    return {"t_val": t, "val_accuracy": val_row["accuracy"][t - 1],
            "val_ops": val_row["normalized_ops"][t - 1],
            "test_accuracy": test_row["accuracy"][t - 1] if on_test else None,
            "test_ops": test_row["normalized_ops"][t - 1] if on_test else None}


_CLAIMS: dict[Path, Any] = {}   # out_dir (resolved) -> its lock, while this process holds it
_ALLOWED: set[Path] = set()     # out_dirs whose results.json this process may (re)write


def _key(out_dir: Path) -> Path:
    return Path(os.path.abspath(out_dir)).resolve()


def claim_out_dir(out_dir: Path, overwrite: bool = False, *,
                  hint: str = "pass --overwrite to replace it") -> None:
    """The overwrite rule, before any work: take the lock on ``out_dir`` (a second process
    writing there is refused, naming this one; held until :func:`write_results`), and refuse
    an existing ``results.json`` unless ``overwrite`` (``hint``: how to go on)."""
    from bsnn_bindsnet.locking import acquire

    key = _key(out_dir)
    lock = acquire(out_dir)
    try:
        _ALLOWED.discard(key)
        if (Path(out_dir) / "results.json").exists() and not overwrite:
            raise FileExistsError(f"--out-dir {out_dir} already holds results.json; {hint} "
                                  "(or choose another --out-dir)")
    except BaseException:
        lock.release()
        raise
    if key in _CLAIMS:
        lock.release()  # held once per out_dir
    _CLAIMS[key] = lock
    _ALLOWED.add(key)


def write_results(out_dir: Path, config: Mapping[str, Any], results: Any) -> Path:
    """Write ``{"config": ..., "results": ...}`` to ``out_dir/results.json`` atomically, and
    release the lock of :func:`claim_out_dir`. An existing file is replaced only where the
    claim allowed it (``config["overwrite"]`` for an experiment that did not claim first)."""
    key = _key(out_dir)
    if key not in _ALLOWED:  # an experiment without --overwrite that did not claim first
        claim_out_dir(out_dir, bool(config.get("overwrite", False)),
                      hint="move it away to replace it" if "overwrite" not in config else
                      "pass --overwrite to replace it")
    path = atomic_write_json({"config": _jsonable(config), "results": results},
                             Path(out_dir) / "results.json")
    lock = _CLAIMS.pop(key, None)
    if lock is not None:
        lock.release()
    return path


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

    With ``smoke`` the missing runs (only those) are trained on the spot (4 epochs, all
    digits: seconds), each announced; a run folder that holds something else is never replaced
    (an interrupted run is resumed). Otherwise a missing run is an error that names the
    command producing it.
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
        if paths[mode].exists():
            print(f"using {paths[mode]}", flush=True)
            continue
        run_dir = paths[mode].parent
        resume = (run_dir / "checkpoint.pt").exists()
        print(f"{'resuming' if resume else 'training'} {prefix}-{mode} (4 epochs) in "
              f"{run_dir}", flush=True)
        init = str(paths["fp"]) if mode == "bwn" else None
        fit(RunConfig(preset=f"{prefix}-{mode}", out_dir=str(run_dir), epochs=4,
                      init_from=init, progress=False), resume=resume)
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
          f"threshold chosen on {first['n_val']} validation images (held out), scored "
          "on test; accuracies in % [95 % interval]\n")
    print("| network | ANN (%) | at T_max (%) | T_ref (val) | accuracy there (%) | "
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
