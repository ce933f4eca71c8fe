"""XNOR-BSNN's two batch-norm departures, measured (issue 22, item 7).

Algorithm 1 of XNOR-BSNN normalizes the readout (step 19), and its batch-norm has no learned
scale and shift. This experiment trains the direct preset of ``--dataset`` four ways, with
every seed of ``--seeds`` (the same seed gives every variant the same initial weights,
batches and Poisson draws):

* ``default``: readout batch-norm, affine batch-norm (``bsnn train --preset *-direct``);
* ``no-readout-bn``: affine batch-norm only (the preset before issue 22: ``--no-readout-norm``);
* ``paper``: readout batch-norm, batch-norm without scale and shift (``--no-bn-affine``);
* ``no-readout-bn, no-affine``.

Each trained network is folded (batch-norm into thresholds and biases), converted to
BindsNET and simulated on the test split with its own input coding at its training T (a
fixed seed for the Poisson encoder). No choice is made on test: the recipe is fixed, and the
last epoch is scored. Per variant: the test accuracy of every seed, their mean and spread,
and McNemar's exact test against ``default`` on the pooled (seed, image) pairs. The same test
images recur in every seed, so the pooled pairs are not independent and the p-values are
optimistic: read them with the per-seed spread.

    python -m experiments.direct_norms --dataset digits --seeds 0 1 2 3 4   # ~4 min on 2 cores
    python -m experiments.direct_norms --smoke                             # seconds
    python -m experiments.direct_norms --dataset fashion-mnist --coding current --epochs 4 \
        --seeds 0 --variants default no-readout-bn paper                   # ~90 min on 2 cores

``--variants`` trains a subset (``default`` is always one: the others are compared with it);
``--coding`` overrides the preset's input coding (``bsnn train --coding``).

Outputs ``results.json`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import claim_out_dir, preset_prefix, write_results

VARIANTS = {"default": (True, True), "no-readout-bn": (False, True),
            "paper": (True, False), "no-readout-bn, no-affine": (False, False)}


@dataclass(frozen=True)
class Config:
    dataset: str = "digits"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int | None = None
    coding: str | None = None
    variants: tuple[str, ...] = tuple(VARIANTS)
    train_subset: int | None = None
    limit: int = 0
    data_root: str | None = None
    out_dir: Path = Path("results/direct_norms")
    overwrite: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--seeds", type=int, nargs="+", default=list(Config.seeds))
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--coding", choices=("current", "poisson", "poisson-intensity"),
                   help="input coding (default: the preset's), as bsnn train --coding")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="which variants to train; must include 'default'")
    p.add_argument("--train-subset", type=int, help="train on the first N training images")
    p.add_argument("--limit", type=int, default=0, help="first N test images (0 = all)")
    p.add_argument("--data-root")
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--smoke", action="store_true",
                   help="digits, seed 0, 1 epoch, 64 test images")
    args = vars(p.parse_args(argv))
    if args.pop("smoke"):
        args.update(dataset="digits", seeds=[0], epochs=1, limit=64)
    for flag in ("epochs", "train_subset"):
        if args[flag] is not None and args[flag] < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {args[flag]}")
    if args["limit"] < 0:
        p.error(f"--limit must be >= 0, got {args['limit']}")
    if "default" not in args["variants"]:
        p.error(f"--variants must include 'default' (the others are compared with it), "
                f"got {args['variants']}")
    variants = tuple(v for v in VARIANTS if v in args["variants"])
    return Config(**{**args, "seeds": tuple(args["seeds"]), "variants": variants})


def train_and_score(cfg: Config, variant: str, seed: int) -> dict:
    """Train one variant with one seed (its run folder under ``--out-dir/runs``), then its
    BindsNET test accuracy and per-image correctness."""
    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.direct.export import direct_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.training.fit import RunConfig, fit
    from bsnn_bindsnet.training.models import load_model

    readout_norm, affine = VARIANTS[variant]
    run = cfg.out_dir / "runs" / f"{variant.replace(', ', '+')}-seed{seed}"
    history = fit(RunConfig(f"{preset_prefix(cfg.dataset)}-direct", str(run), seed=seed,
                            dataset=cfg.dataset, readout_norm=readout_norm, bn_affine=affine,
                            coding=cfg.coding,
                            epochs=cfg.epochs, train_subset=cfg.train_subset,
                            data_root=cfg.data_root, progress=False), overwrite=True)
    model = load_model(run / "model.pt")
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root)
    if cfg.limit:
        test = Subset(test, range(min(cfg.limit, len(test))))
    result = simulate(direct_to_bsnn(model), test, model.timesteps, encoding=model.coding,
                      generator=torch.Generator().manual_seed(seed), batch_size=256)
    return {"seed": seed, "val_acc": history[-1].get("val_acc"),
            "test_acc_pytorch": history[-1]["test_acc"], "test_acc": result.accuracy[-1],
            "correct": result.predictions.eq(result.labels).tolist()}


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per variant: mean and spread over seeds, and McNemar against ``default`` on the
    pooled (seed, image) pairs."""
    from bsnn_bindsnet.analysis.stats import compare_paired

    ref = [c for r in runs["default"] for c in r["correct"]]
    out = {}
    for variant, rows in runs.items():
        accs = [r["test_acc"] for r in rows]
        pooled = [c for r in rows for c in r["correct"]]
        row = {"test_acc": accs, "mean": statistics.fmean(accs),
               "stdev": statistics.stdev(accs) if len(accs) > 1 else 0.0}
        if variant != "default":
            c = compare_paired(pooled, ref)
            row["vs_default"] = {"difference": c.difference, "interval": c.interval,
                                 "p_value": c.p_value, "variant_only": c.a_only,
                                 "default_only": c.b_only, "pairs": c.n}
        out[variant] = row
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)
    runs: dict[str, list[dict]] = {v: [] for v in cfg.variants}
    for seed in cfg.seeds:
        for variant in cfg.variants:
            runs[variant].append(train_and_score(cfg, variant, seed))
            r = runs[variant][-1]
            print(f"{variant} seed {seed}: test {100 * r['test_acc']:.2f} % (BindsNET)",
                  flush=True)
    summary = summarize(runs)
    print(f"\n| variant | test accuracy (%), seeds {', '.join(map(str, cfg.seeds))} | mean ± sd "
          f"| vs default (pooled pairs): difference [95 %], McNemar p |\n|---|---|---|---|")
    for variant, row in summary.items():
        cmp = row.get("vs_default")
        vs = "–" if cmp is None else (f"{100 * cmp['difference']:+.2f} [{100 * cmp['interval'][0]:+.2f}, "
                                      f"{100 * cmp['interval'][1]:+.2f}], p = {cmp['p_value']:.2g}")
        print(f"| {variant} | {', '.join(f'{100 * a:.2f}' for a in row['test_acc'])} | "
              f"{100 * row['mean']:.2f} ± {100 * row['stdev']:.2f} | {vs} |")
    results = {"summary": summary,
               "runs": {v: [{k: x for k, x in r.items() if k != "correct"} for r in rs]
                        for v, rs in runs.items()}}
    write_results(cfg.out_dir, {**asdict(cfg), "variants": {v: VARIANTS[v] for v in cfg.variants}},
                  results)
    return results


if __name__ == "__main__":
    main()
