"""SIF vs RIF as a paired comparison (issue 22, item 2): both resets of the same converted
network on the same test images, judged by McNemar's exact test on the images where exactly
one of them is right, with the Agresti-Min interval of the accuracy difference, at each
reported T (Fig. 6 and the conversion tables compared them by overlapping Wilson intervals).

    python -m experiments.paired_reset --model zoo:fmnist-bwn --limit 2000 --timesteps 64
    python -m experiments.paired_reset --smoke

Writes ``results.json`` (per T: both accuracies with intervals, the 2x2 table, the difference,
its interval, the p-value and the verdict at 5 %) to ``--out-dir``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bsnn_bindsnet.analysis.stats import compare_predictions, format_accuracy
from experiments.common import claim_out_dir, write_results

REPORT = (8, 16, 32, 64)


@dataclass(frozen=True)
class Config:
    """The network, its conversion and the test images."""

    model: str = "zoo:fmnist-bwn"
    dataset: str = "fashion-mnist"
    percentile: float = 99.9
    v_init: str = "half"
    timesteps: int = 64
    limit: int = 2000
    batch_size: int = 256
    data_root: str | None = None
    out_dir: Path = Path("results/paired_reset")
    overwrite: bool = False
    smoke: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=Config.model, help="zoo:NAME or a model.pt (an ANN)")
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--percentile", type=float, default=Config.percentile)
    p.add_argument("--v-init", choices=("zero", "half"), default=Config.v_init)
    p.add_argument("--timesteps", type=int, default=Config.timesteps)
    p.add_argument("--limit", type=int, default=Config.limit,
                   help="first N test images (0 = all)")
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--data-root")
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, the zoo's digits BWN, 64 images, T = 16")
    cfg = Config(**vars(p.parse_args(argv)))
    if cfg.timesteps < 1 or cfg.limit < 0:
        p.error("--timesteps must be >= 1 and --limit >= 0")
    if cfg.smoke:
        cfg = replace(cfg, model="zoo:digits-bwn", dataset="digits", timesteps=16, limit=64)
    return cfg


def run(cfg: Config) -> dict:
    """Simulate SIF and RIF with per-sample predictions; compare them at each reported T."""
    from dataclasses import replace as plan_replace

    from torch.utils.data import Subset

    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.zoo.registry import load_spec

    model = load_spec(cfg.model)
    calib = load_dataset(cfg.dataset, "calib", data_root=cfg.data_root)
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root)
    if cfg.limit:
        test = Subset(test, range(min(cfg.limit, len(test))))
    plan = ann_to_bsnn(model, calib, percentile=cfg.percentile, build=False)
    results = {}
    for reset in ("subtract", "zero"):
        net = build_network(plan_replace(plan, reset=reset, v_init=cfg.v_init))
        results[reset] = simulate(net, test, cfg.timesteps, batch_size=cfg.batch_size,
                                  per_sample=True)
    sif, rif = results["subtract"], results["zero"]
    n = sif.n
    out: dict = {"n": n, "steps": {}}
    for t in [t for t in REPORT if t <= cfg.timesteps] or [cfg.timesteps]:
        cmp = compare_predictions(sif.step_predictions[t - 1], rif.step_predictions[t - 1],
                                  sif.labels)
        out["steps"][t] = {"sif": sif.accuracy[t - 1], "rif": rif.accuracy[t - 1],
                           **cmp.summary(), "verdict": cmp.verdict(names=("SIF", "RIF"))}
        print(f"T = {t:3d}: SIF {format_accuracy(sif.accuracy[t - 1], n)} % vs RIF "
              f"{format_accuracy(rif.accuracy[t - 1], n)} %: discordant {cmp.a_only} vs "
              f"{cmp.b_only}, difference {100 * cmp.difference:+.2f} points "
              f"[{100 * cmp.interval[0]:+.2f}, {100 * cmp.interval[1]:+.2f}], McNemar p = "
              f"{cmp.p_value:.2g} -> {out['steps'][t]['verdict']}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)
    out = run(cfg)
    print(f"wrote {write_results(cfg.out_dir, asdict(cfg), out)}", flush=True)
    return out


if __name__ == "__main__":
    main()
