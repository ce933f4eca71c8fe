"""Conversion accuracy: ANN vs converted SNN (full precision) and B-SNN (binary weights), with
subtractive-reset (SIF) and reset-to-zero (RIF) IF neurons, accuracy after every timestep; and a
sweep of threshold choices (percentile, v(0) = 0 or theta/2) at a short latency.

The sweep is a table of test accuracies for every percentile and v(0): no selection is made
(it names no "best" percentile; a choice must be made on the held-out val split, as
``experiments.fig8_percentile`` does). Accuracies measured on fewer than 10,000 test images
carry their 95 % Wilson interval, in the tables and (``*_interval``) in results.json.

Needs the trained ``<prefix>-fp`` and ``<prefix>-bwn`` runs (``experiments.fig3_training_curves``).

    python -m experiments.conversion_accuracy --dataset fashion-mnist --runs-dir results/fig3
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import claim_out_dir, trained_models, write_results
from experiments.harness import RESETS, Setup, ann_accuracy, load_data, simulate_curve

SWEEP_PERCENTILES = (99.9, 99.7, 99.0, 98.0, 95.0)


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"
    runs_dir: Path = Path("results/fig3")
    out_dir: Path = Path("results/conversion")
    timesteps: int = 256
    percentile: float = 99.9
    statistic: str = "all"
    resets: tuple[str, ...] = ("subtract", "zero")
    v_init: str = "half"
    sweep: bool = True
    sweep_timesteps: int = 8
    limit: int | None = None
    batch_size: int = 256
    data_root: str | None = None
    device: str = "cpu"
    smoke: bool = False
    overwrite: bool = False

    def setup(self, timesteps: int | None = None) -> Setup:
        """The harness :class:`~experiments.harness.Setup` of this run (another window:
        ``timesteps``)."""
        return Setup(self.dataset, self.runs_dir, self.out_dir, timesteps or self.timesteps,
                     self.percentile, self.limit, self.batch_size, self.data_root, self.device,
                     self.smoke)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--runs-dir", type=Path,
                   help="trained runs (default: results/fig3; with --smoke: OUT_DIR/models)")
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--timesteps", type=int, default=Config.timesteps)
    p.add_argument("--percentile", type=float, default=Config.percentile)
    p.add_argument("--statistic", choices=("all", "sample-max"), default=Config.statistic)
    p.add_argument("--resets", nargs="+", choices=tuple(RESETS), default=Config.resets,
                   help="IF reset modes to simulate")
    p.add_argument("--v-init", choices=("zero", "half"), default=Config.v_init,
                   help="initial membrane potential of the accuracy curves: 0 or theta/2")
    p.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True,
                   help="also sweep threshold choices (percentile x v(0)) at --sweep-timesteps")
    p.add_argument("--sweep-timesteps", type=int, default=Config.sweep_timesteps)
    p.add_argument("--limit", type=int, help="only the first N test samples")
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--data-root")
    p.add_argument("--device", default=Config.device)
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, tiny models trained on the spot, T=16, 64 samples")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results.json in --out-dir (refused otherwise)")
    args = vars(p.parse_args(argv))
    if args["runs_dir"] is None:
        args["runs_dir"] = args["out_dir"] / "models" if args["smoke"] else Config.runs_dir
    cfg = Config(**{**args, "resets": tuple(args["resets"])})
    if cfg.smoke:
        cfg = Config(**{**asdict(cfg), "dataset": "digits", "timesteps": 16, "limit": 64})
    return cfg


def _sweep(cfg: Config) -> tuple[float, ...]:
    if not cfg.sweep:
        return ()
    return SWEEP_PERCENTILES[:2] if cfg.smoke else SWEEP_PERCENTILES


def _simulate(plan, test, cfg: Config, timesteps: int, *, reset: str,
              v_init: str = "zero") -> dict:
    """Simulate ``plan`` with the given neuron reset and v(0); #OPS at the report steps."""
    from bsnn_bindsnet.simulation.report import REPORT_STEPS

    row, _ = simulate_curve(plan, test, cfg.setup(timesteps), reset=reset, v_init=v_init)
    row["normalized_ops"] = {t: row["normalized_ops"][t - 1] for t in REPORT_STEPS
                             if t <= timesteps}
    return row


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.report import (accuracy_table, ops_table, plot_accuracy,
                                      write_accuracy_csv)

    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)  # the overwrite rule and the lock, first
    paths = trained_models(cfg.dataset, cfg.runs_dir, smoke=cfg.smoke)
    calib, test = load_data(cfg.setup())
    n = len(test)
    results: dict = {"n": n, "ann": {}, "ann_interval": {}, "curves": {}, "sweep": []}
    for kind, label in (("fp", "SNN"), ("bwn", "B-SNN")):
        model = load_model(paths[kind])
        results["ann"][label] = ann_accuracy(model, test, cfg.setup())
        results["ann_interval"][label] = accuracy_interval(results["ann"][label], n)
        plans = {q: ann_to_bsnn(model, calib, percentile=q, statistic=cfg.statistic,
                                device=cfg.device, build=False)
                 for q in {cfg.percentile, *_sweep(cfg)}}
        for reset in cfg.resets:
            neuron = RESETS[reset]
            row = _simulate(plans[cfg.percentile], test, cfg, cfg.timesteps, reset=reset,
                            v_init=cfg.v_init)
            row["final_accuracy_interval"] = accuracy_interval(row["final_accuracy"], n)
            results["curves"][f"{label} {neuron}"] = row
            print(f"{label} {neuron}: {format_accuracy(row['final_accuracy'], n)} % at "
                  f"T={cfg.timesteps} (ANN {format_accuracy(results['ann'][label], n)} %, "
                  f"{row['seconds']:.0f} s)", flush=True)
        for percentile in _sweep(cfg):
            for v_init in ("zero", "half"):
                row = _simulate(plans[percentile], test, cfg, cfg.sweep_timesteps,
                                reset="subtract", v_init=v_init)
                acc = row["accuracy"][cfg.sweep_timesteps - 1]
                results["sweep"].append({"network": label, "percentile": percentile,
                                         "v_init": v_init, "accuracy": row["accuracy"],
                                         "accuracy_interval": accuracy_interval(acc, n)})
    write_results(cfg.out_dir, asdict(cfg), results)
    curves = {name: row["accuracy"] for name, row in results["curves"].items()}
    ann = {name: results["ann"][name.split()[0]] for name in curves}
    write_accuracy_csv(curves, cfg.out_dir / "accuracy.csv")
    plot_accuracy(curves, cfg.out_dir / "accuracy.png", ann=ann,
                  title=f"{cfg.dataset}: one-step, {cfg.percentile}th percentile")
    print(f"\n{cfg.dataset}, {n} test samples, one-step mode, constant-current input, "
          f"{cfg.percentile}th percentile ({cfg.statistic}), v(0) = "
          f"{'theta/2' if cfg.v_init == 'half' else '0'}\n")
    print(accuracy_table(curves, ann, steps=(8, 16, 32, 64, 128, 256, 512), n=n))
    print("\nnormalized #OPS (hidden layers, first and last excluded; 1.0 = the ANN):\n")
    print(ops_table({name: row["normalized_ops"] for name, row in results["curves"].items()}))
    t = cfg.sweep_timesteps
    if not cfg.sweep:
        print(f"\nresults: {cfg.out_dir}/results.json, accuracy.csv, accuracy.png")
        return results
    print(f"\nSIF test accuracy (%) at T={t} by threshold choice (all listed; none is "
          "selected):\n")
    print("| network | percentile | v(0)=0 | v(0)=theta/2 |\n|---|---|---|---|")
    for label in ("SNN", "B-SNN"):
        for percentile in _sweep(cfg):
            acc = {r["v_init"]: r["accuracy"][t - 1] for r in results["sweep"]
                   if r["network"] == label and r["percentile"] == percentile}
            print(f"| {label} | {percentile} | {format_accuracy(acc['zero'], n)} | "
                  f"{format_accuracy(acc['half'], n)} |")
    print(f"\nresults: {cfg.out_dir}/results.json, accuracy.csv, accuracy.png")
    return results


if __name__ == "__main__":
    main()
