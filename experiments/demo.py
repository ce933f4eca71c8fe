"""End-to-end demo on the embedded digits data set (8x8, offline): what `make demo` runs.

Stages: train the full-precision constrained VGG, binarize it (hybrid BWN), convert both to
BindsNET networks of subtractive-reset IF neurons (99.7th-percentile thresholds, initial
potential theta/2), simulate them
on the test set (one-step mode, constant-current input) and print accuracy vs timesteps for the
ANN, the SNN and the B-SNN. Results go to ``OUT_DIR/results.json``, ``accuracy.csv`` and
``accuracy.png``; the training runs to ``OUT_DIR/<preset>/``.

Second part (``--no-zoo`` skips it): real images without training. When Fashion-MNIST is
installed, the model zoo's pretrained hybrid BWN (``zoo:fmnist-bwn``) is converted the same way
(thresholds from 1,000 calibration images) and simulated on the first 1,000 test images for
up to 32 timesteps; accuracy vs T is printed with 95 % intervals and written to
``OUT_DIR/zoo-fmnist-bwn.csv``. Without the dataset it says how to install it.

    python -m experiments.demo
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import claim_out_dir, write_results


@dataclass(frozen=True)
class Config:
    out_dir: Path = Path("results/demo")
    seed: int = 0
    timesteps: int = 64
    threads: int = 1
    smoke: bool = False
    zoo: bool = True
    overwrite: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--timesteps", type=int, default=Config.timesteps)
    p.add_argument("--threads", type=int, default=Config.threads,
                   help="torch CPU threads (default 1: the same figures on every run of one "
                        "machine, whatever its core count)")
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="2 epochs per stage, 8 timesteps, 64 test images (for tests)")
    p.add_argument("--zoo", action=argparse.BooleanOptionalAction, default=Config.zoo,
                   help="second part: the zoo's pretrained Fashion-MNIST B-SNN (default: on)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the runs and results.json of an earlier demo in --out-dir "
                        "(`make demo` passes it: results/demo is the demo's own folder)")
    return Config(**vars(p.parse_args(argv)))


def repeatable(threads: int) -> None:
    """Fix the thread count and ask torch for deterministic kernels: a float sum's order then
    no longer depends on the scheduling, so a machine prints the same figures every run.
    Another CPU type (another vector unit, another BLAS kernel) may still round differently,
    and a few different roundings early in training lead to a different network: the README
    says by how much the figures move."""
    import torch

    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def train_stages(cfg: Config) -> dict[str, dict]:
    """Full precision, then the hybrid BWN initialised from it."""
    from bsnn_bindsnet.training.fit import RunConfig, fit

    epochs = 2 if cfg.smoke else None
    rows = {}
    for preset, init in (("digits-fp", None), ("digits-bwn", "digits-fp")):
        run = RunConfig(preset=preset, out_dir=str(cfg.out_dir / preset), seed=cfg.seed,
                        epochs=epochs, progress=False,
                        init_from=str(cfg.out_dir / init / "model.pt") if init else None)
        t0 = time.perf_counter()
        history = fit(run, overwrite=cfg.overwrite)
        rows[preset] = {"test_acc": history[-1]["test_acc"], "epochs": len(history),
                        "seconds": round(time.perf_counter() - t0, 1),
                        "model": str(Path(run.out_dir) / "model.pt")}
        print(f"trained {preset}: test accuracy {100 * rows[preset]['test_acc']:.2f} % "
              f"({rows[preset]['epochs']} epochs, {rows[preset]['seconds']} s)", flush=True)
    return rows


def convert_and_simulate(cfg: Config, ann: dict[str, dict]) -> dict[str, dict]:
    """Convert each trained model and simulate it on the test set."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate

    calib = load_dataset("digits", "calib")
    test = load_dataset("digits", "test")
    if cfg.smoke:
        test = Subset(test, range(64))
    timesteps = 8 if cfg.smoke else cfg.timesteps
    rows = {}
    for preset, label in (("digits-fp", "SNN"), ("digits-bwn", "B-SNN")):
        network = ann_to_bsnn(load_model(ann[preset]["model"]), calib, percentile=99.7)
        result = simulate(network, test, timesteps, one_step=True)
        rows[label] = {**result.summary(), "ann_test_acc": ann[preset]["test_acc"],
                       "thresholds": {layer.name: layer.thresh
                                      for layer in network.bsnn_plan.layers if layer.thresh}}
        print(f"simulated {label} ({preset}): {100 * result.accuracy[-1]:.2f} % after "
              f"{timesteps} steps ({result.seconds:.1f} s)", flush=True)
    return rows


ZOO_MODEL = "fmnist-bwn"
ZOO_CHECKPOINTS = (1, 2, 4, 8, 16, 32)  # the timesteps printed


def zoo_part(cfg: Config) -> dict | None:
    """Convert and simulate the zoo's Fashion-MNIST B-SNN; None (after saying why) when the
    dataset is not installed or the zoo lacks the entry."""
    from torch.utils.data import Subset

    from bsnn_bindsnet import zoo
    from bsnn_bindsnet.analysis.stats import format_accuracy
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import DatasetNotFoundError, load_dataset
    from bsnn_bindsnet.simulation.report import write_accuracy_csv
    from bsnn_bindsnet.simulation.simulate import simulate

    if ZOO_MODEL not in {e.name for e in zoo.list_models()}:
        print(f"\nPart 2 skipped: this installation's model zoo has no {ZOO_MODEL} entry")
        return None
    entry = zoo.entry(ZOO_MODEL)
    calib_size, n_test, timesteps = (256, 64, 8) if cfg.smoke else (1000, 1000, 32)
    try:
        calib = load_dataset(entry.dataset, "calib", calib_size=calib_size)
        test = Subset(load_dataset(entry.dataset, "test"), range(n_test))
    except DatasetNotFoundError:
        print("\nPart 2 (pretrained B-SNN on real images) needs Fashion-MNIST, which is not "
              "installed.\nInstall it with `apt-get install dataset-fashion-mnist` (Debian/"
              "Ubuntu), then run `make demo` again.")
        return None
    t0 = time.perf_counter()
    network = ann_to_bsnn(zoo.load(ZOO_MODEL), calib, percentile=99.7)
    result = simulate(network, test, timesteps, one_step=True, batch_size=250)
    seconds = round(time.perf_counter() - t0, 1)
    write_accuracy_csv({f"zoo:{ZOO_MODEL}": result.accuracy}, cfg.out_dir / "zoo-fmnist-bwn.csv")
    same = (f"; {format_accuracy(entry.subset_accuracy, entry.subset_n)} % on the first "
            f"{entry.subset_n}, the images below" if entry.subset_n == result.n else "")
    print(f"\nPart 2: zoo:{ZOO_MODEL}, pretrained (no training): {entry.description}\n"
          f"ANN (shipped weights): {100 * entry.test_accuracy:.2f} % on all {entry.test_n} "
          f"test images{same}. Converted B-SNN (SIF, v(0) = θ/2, thresholds from "
          f"{calib_size} calibration images) on the first {result.n} test images, 95 % "
          "intervals:\n")
    print("   T  accuracy (%)")
    for t in (t for t in ZOO_CHECKPOINTS if t <= timesteps):
        print(f"{t:4d}  {format_accuracy(result.accuracy[t - 1], result.n)}")
    print(f"\n({seconds} s: conversion and simulation)")
    return {"model": f"zoo:{ZOO_MODEL}", "sha256": entry.sha256, "n": result.n,
            "calib_size": calib_size, "accuracy": result.accuracy,
            "ann_test_acc": entry.test_accuracy, "ann_subset_acc": entry.subset_accuracy,
            "ifr": result.firing_rates(),
            "seconds": seconds}


# Low latency (issue 20): a B-SNN trained through its unrolled self at T = 2, shown beside the
# standard conversion of the zoo's BWN at the percentile chosen for each T on the first 2,000
# val images by `python -m experiments.low_latency_t2 select --relu-model zoo:fmnist-bwn
# --percentiles 90 93 96 97 98 99 99.5 99.7 99.9 --layerwise-width 1` (README, "Low latency,
# part 2").
LOW_LATENCY_MODEL = "fmnist-bsnn-t2"
STANDARD_PERCENTILES = {1: 90.0, 2: 97.0, 4: 98.0, 8: 99.5}
LOW_LATENCY_STEPS = (1, 2, 4, 8)


def low_latency_part(cfg: Config) -> dict | None:
    """The low-latency B-SNN of the zoo beside the standard conversion of ``zoo:fmnist-bwn``
    at each T's val-chosen percentile, T = 1, 2, 4, 8 (BindsNET, one-step mode), on the first
    1,000 test images with 95 % intervals; None (after saying why) without the entry."""
    from torch.utils.data import Subset

    from bsnn_bindsnet import zoo
    from bsnn_bindsnet.analysis.stats import format_accuracy
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import DatasetNotFoundError, load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.training.qcfs import percentile_table, qcfs_twin

    names = {e.name for e in zoo.list_models()}
    if not {LOW_LATENCY_MODEL, ZOO_MODEL} <= names:
        print(f"\nLow-latency part skipped: the zoo has no {LOW_LATENCY_MODEL} entry")
        return None
    n_test = 64 if cfg.smoke else 1000
    try:
        calib = load_dataset("fashion-mnist", "calib")
        test = Subset(load_dataset("fashion-mnist", "test"), range(n_test))
    except DatasetNotFoundError:
        return None  # part 2 has said how to install it
    t0 = time.perf_counter()
    relu = zoo.load(ZOO_MODEL)
    table = percentile_table(relu, calib, sorted(set(STANDARD_PERCENTILES.values())))
    standard = {}
    for p in sorted(set(STANDARD_PERCENTILES.values())):
        steps = max(t for t, q in STANDARD_PERCENTILES.items() if q == p)
        result = simulate(ann_to_bsnn(qcfs_twin(relu, table[p]), None), test, steps,
                          one_step=True, batch_size=250)
        standard.update({t: result.accuracy[t - 1] for t, q in STANDARD_PERCENTILES.items()
                         if q == p})
    trained = simulate(ann_to_bsnn(zoo.load(LOW_LATENCY_MODEL), None), test,
                       max(LOW_LATENCY_STEPS), one_step=True, batch_size=250)
    seconds = round(time.perf_counter() - t0, 1)
    entry = zoo.entry(LOW_LATENCY_MODEL)
    print(f"\nLow latency: zoo:{LOW_LATENCY_MODEL} ({entry.description}) beside the standard "
          f"conversion of zoo:{ZOO_MODEL} at the percentile chosen on val for each T; first "
          f"{n_test} test images, 95 % intervals:\n")
    print(f"   T  {'standard conversion':>30}  {LOW_LATENCY_MODEL:>22}")
    for t in LOW_LATENCY_STEPS:
        print(f"{t:4d}  {'p' + format(STANDARD_PERCENTILES[t], 'g'):>7} "
              f"{format_accuracy(standard[t], n_test):>22}  "
              f"{format_accuracy(trained.accuracy[t - 1], n_test):>22}")
    print(f"\n({seconds} s: calibration, conversion and simulation)")
    return {"model": f"zoo:{LOW_LATENCY_MODEL}", "sha256": entry.sha256, "n": n_test,
            "standard_percentiles": STANDARD_PERCENTILES, "standard": standard,
            "trained": {t: trained.accuracy[t - 1] for t in LOW_LATENCY_STEPS},
            "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.simulation.report import accuracy_table, plot_accuracy, write_accuracy_csv

    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)  # the overwrite rule and the lock, before any work
    repeatable(cfg.threads)
    t0 = time.perf_counter()
    results = {"ann": train_stages(cfg)}
    results["snn"] = convert_and_simulate(cfg, results["ann"])
    results["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_results(cfg.out_dir, asdict(cfg), results)
    curves = {label: row["accuracy"] for label, row in results["snn"].items()}
    ann = {label: row["ann_test_acc"] for label, row in results["snn"].items()}
    write_accuracy_csv(curves, cfg.out_dir / "accuracy.csv")
    plot_accuracy(curves, cfg.out_dir / "accuracy.png", ann=ann,
                  title="digits: converted networks (SIF, v(0)=θ/2, one-step, 99.7th pct.)")
    print("\nTest accuracy (%) on digits: ANN column = the trained network; T = timesteps of "
          "the converted\nnetwork (subtractive-reset IF, 99.7th-percentile thresholds, v(0) = θ/2, "
          "one-step mode, constant-current input)\n")
    n = results["snn"]["SNN"]["n"]
    if cfg.smoke:  # the ANN column is over all 360 test images, the SNN rows over 64
        print(accuracy_table(curves, ann))
    else:
        print(f"({n} test images; in brackets the 95 % interval of each accuracy)\n")
        print(accuracy_table(curves, ann, n=n))
    print(f"\nresults: {path}, {cfg.out_dir / 'accuracy.png'} ({results['seconds']} s)")
    if cfg.zoo:
        results["zoo"] = zoo_part(cfg)
        if results["zoo"] is not None:
            results["low_latency"] = low_latency_part(cfg)
        path = write_results(cfg.out_dir, asdict(cfg), results)
    return results


if __name__ == "__main__":
    main()
