"""End-to-end demo on the embedded digits data set (8x8, offline): what `make demo` runs.

Stages: train the full-precision constrained VGG, binarize it (hybrid BWN), and report the
test accuracy of both. Results go to ``OUT_DIR/results.json``; the runs to ``OUT_DIR/<preset>/``.

    python -m experiments.demo
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import write_results


@dataclass(frozen=True)
class Config:
    out_dir: Path = Path("results/demo")
    seed: int = 0
    smoke: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="2 epochs per stage (for tests)")
    return Config(**vars(p.parse_args(argv)))


def train_stages(cfg: Config) -> dict[str, dict]:
    """Full precision, then the hybrid BWN initialised from it."""
    from bsnn_bindsnet.ann.fit import RunConfig, fit

    epochs = 2 if cfg.smoke else None
    rows = {}
    for preset, init in (("digits-fp", None), ("digits-bwn", "digits-fp")):
        run = RunConfig(preset=preset, out_dir=str(cfg.out_dir / preset), seed=cfg.seed,
                        epochs=epochs, progress=False,
                        init_from=str(cfg.out_dir / init / "model.pt") if init else None)
        t0 = time.perf_counter()
        history = fit(run, overwrite=True)
        rows[preset] = {"test_acc": history[-1]["test_acc"], "epochs": len(history),
                        "seconds": round(time.perf_counter() - t0, 1),
                        "model": str(Path(run.out_dir) / "model.pt")}
        print(f"trained {preset}: test accuracy {100 * rows[preset]['test_acc']:.2f} % "
              f"({rows[preset]['epochs']} epochs, {rows[preset]['seconds']} s)", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_args(argv)
    t0 = time.perf_counter()
    results = {"ann": train_stages(cfg)}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_results(cfg.out_dir, asdict(cfg), results)
    print("\n| model (digits, 8x8) | test accuracy |")
    print("|---|---|")
    for name, row in results["ann"].items():
        print(f"| ANN {name} | {100 * row['test_acc']:.2f} % |")
    print(f"\nresults: {path} ({results['seconds']} s)")
    return results


if __name__ == "__main__":
    main()
