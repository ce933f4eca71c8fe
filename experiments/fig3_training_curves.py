"""Fig. 3: test accuracy during training, full precision -> hybrid BWN vs BWN from scratch vs
XNOR-Net.

Runs four trainings with the dataset's presets (``<prefix>-fp``, ``<prefix>-bwn`` initialised from
the full-precision model, ``<prefix>-bwn-scratch``, ``<prefix>-xnor``) into
``OUT_DIR/<preset>/``. A run folder that already holds a finished run is reused and an
interrupted one is resumed, so the script can be stopped and started again.

    python -m experiments.fig3_training_curves --dataset fashion-mnist   # ~1 h on 2 CPU cores
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import claim_out_dir, preset_prefix, print_epoch, pyplot, savefig, write_results

MODES = ("fp", "bwn", "bwn-scratch", "xnor")
LABELS = {"fp": "full precision", "bwn": "BWN (hybrid, from FP)",
          "bwn-scratch": "BWN from scratch", "xnor": "XNOR-Net (binary activations)"}


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"
    out_dir: Path = Path("results/fig3")
    seed: int = 0
    epochs: int | None = None
    smoke: bool = False
    data_root: str | None = None
    device: str = "cpu"
    progress: bool = False
    overwrite: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--epochs", type=int, help="override every preset's epoch count")
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, 2 epochs, 256 training samples: seconds")
    p.add_argument("--data-root")
    p.add_argument("--device", default=Config.device)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results.json in --out-dir (refused otherwise)")
    return Config(**vars(p.parse_args(argv)))


def train_all(cfg: Config) -> dict[str, list[dict]]:
    """Train (or reuse, or resume) the four runs; returns each run's per-epoch history."""
    from bsnn_bindsnet.training.fit import RunConfig, fit

    dataset = "digits" if cfg.smoke else cfg.dataset
    prefix = preset_prefix(dataset)
    epochs = 2 if cfg.smoke else cfg.epochs
    histories = {}
    for mode in MODES:
        run_dir = cfg.out_dir / f"{prefix}-{mode}"
        init = str(cfg.out_dir / f"{prefix}-fp" / "model.pt") if mode == "bwn" else None
        run = RunConfig(preset=f"{prefix}-{mode}", out_dir=str(run_dir), seed=cfg.seed,
                        init_from=init, epochs=epochs, train_subset=256 if cfg.smoke else None,
                        data_root=cfg.data_root, device=cfg.device, progress=cfg.progress)
        print(f"== {run.preset} -> {run_dir}", flush=True)
        histories[mode] = fit(run, resume=(run_dir / "checkpoint.pt").exists(),
                              on_epoch=print_epoch)
    return histories


def best_on_val(history: list[dict]) -> dict | None:
    """The epoch with the highest *validation* accuracy (ties: the earliest) and its test
    accuracy: ``{"epoch", "val_acc", "test_acc"}``. The test accuracies play no part in the
    choice. None for a run trained before val was recorded (it has no ``val_acc``)."""
    if not history or any("val_acc" not in r for r in history):
        return None
    best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
    return {"epoch": best["epoch"], "val_acc": best["val_acc"], "test_acc": best["test_acc"]}


def summarize(histories: dict[str, list[dict]]) -> list[dict]:
    """One row per run: final test accuracy, the epoch best on validation and its test
    accuracy, epochs, training seconds."""
    return [{"run": mode, "label": LABELS[mode], "epochs": len(h),
             "final_test_acc": h[-1]["test_acc"], "best_on_val": best_on_val(h),
             "train_seconds": round(sum(r["train_seconds"] for r in h), 1)}
            for mode, h in histories.items()]


def plot(histories: dict[str, list[dict]], path: Path) -> Path:
    """Test accuracy per epoch; the hybrid BWN curve continues where full precision ends."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    offset = {"bwn": len(histories["fp"])}
    for mode, h in histories.items():
        x = [offset.get(mode, 0) + r["epoch"] for r in h]
        ax.plot(x, [100 * r["test_acc"] for r in h], marker="o", ms=3, label=LABELS[mode])
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return savefig(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)  # the overwrite rule and the lock, first
    histories = train_all(cfg)
    rows = summarize(histories)
    write_results(cfg.out_dir, asdict(cfg), {"summary": rows, "histories": histories})
    plot(histories, cfg.out_dir / "fig3_training_curves.png")
    print("| run | epochs | final test acc | best val acc (epoch) | test acc at that epoch | "
          "training time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        best = r["best_on_val"]
        cells = ("not recorded | -" if best is None else
                 f"{100 * best['val_acc']:.2f} % ({best['epoch']}) | {100 * best['test_acc']:.2f} %")
        print(f"| {r['label']} | {r['epochs']} | {100 * r['final_test_acc']:.2f} % | {cells} | "
              f"{r['train_seconds']:.0f} s |")
    print(f"results: {cfg.out_dir / 'results.json'}, {cfg.out_dir / 'fig3_training_curves.png'}")
    return rows


if __name__ == "__main__":
    main()
