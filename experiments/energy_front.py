"""The energy-accuracy front (issue 22, item 5): at which accuracy and latency does a B-SNN
draw less crossbar energy than the BNN it replaces?

For every model, test accuracy (95 % Wilson intervals) against the array energy relative to a
BNN of the same shape, in both hardware pictures of :func:`bsnn_bindsnet.imc.crossbar_energy`:
Lu & Sengupta's event-driven rows (one active row per spike and output position, plus a
per-step column-sensing term of weight ``--sense-weight``) and XNOR-BSNN's array (Eq. 10:
every input XNORed at every step, exactly T times the BNN, so that axis *is* T). Models:

* ``--standard NAME=SPEC``: a ReLU BWN converted with percentile thresholds (v(0) = θ/2); the
  percentile (``--percentiles``) is chosen on validation images;
* ``--qcfs NAME=SPEC``: a QCFS BWN converted with θ = λ (also the models trained through
  their B-SNN);
* ``--direct NAME=SPEC``: a directly trained XNOR-BSNN (its own input coding);
* ``--baseline NAME=SPEC``: a BNN / XNOR-Net ANN, one pass: energy 1 by definition.

SPEC is ``zoo:NAME`` or a ``model.pt``. Operating point of a model: the first T at which its
validation accuracy comes within ``--within`` of its ANN's validation accuracy (a direct model:
of its own best validation accuracy over the window; the best step when never); the standard
conversion's percentile is the one whose operating point meets that target at the least
event-driven energy on validation (the most accurate one when none meets it). Both are
then read on test, and each operating point is compared with the best baseline (on validation)
by McNemar's exact test on the same test images.

    python -m experiments.energy_front --dataset fashion-mnist --limit 2000 --val-limit 2000
    python -m experiments.energy_front --smoke      # digits, seconds

Outputs ``results.json`` and ``energy_front.png`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bsnn_bindsnet.analysis.stats import accuracy_interval, compare_predictions, format_accuracy
from experiments.common import claim_out_dir, pyplot, savefig, write_results

DEFAULTS = {"fashion-mnist": {"standard": ("standard=zoo:fmnist-bwn",),
                              "direct": ("xnor-bsnn=zoo:fmnist-direct-current",)},
            "digits": {"standard": ("standard=zoo:digits-bwn",), "direct": ()}}
KINDS = ("standard", "qcfs", "direct", "baseline")


@dataclass(frozen=True)
class Config:
    """What the experiment takes from its command line (see the module docstring)."""

    dataset: str = "fashion-mnist"
    standard: tuple[str, ...] = ()
    qcfs: tuple[str, ...] = ()
    direct: tuple[str, ...] = ()
    baseline: tuple[str, ...] = ()
    percentiles: tuple[float, ...] = (99.0, 99.9, 99.99)
    timesteps: int = 32
    direct_timesteps: int = 16
    limit: int = 2000
    val_limit: int = 2000
    within: float = 0.01
    sense_weight: float = 1.0
    weighting: str = "rows"
    batch_size: int = 256
    seed: int = 0
    data_root: str | None = None
    out_dir: Path = Path("results/energy_front")
    overwrite: bool = False
    smoke: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=Config.dataset)
    for kind in KINDS:
        p.add_argument(f"--{kind}", action="append", default=None, metavar="NAME=SPEC",
                       help=f"a {kind} model, zoo:NAME or a model.pt (repeatable; default for "
                            f"fashion-mnist: {DEFAULTS['fashion-mnist'].get(kind, ())})")
    p.add_argument("--percentiles", type=float, nargs="+", default=list(Config.percentiles),
                   help="threshold percentiles of the standard conversion, chosen on val")
    p.add_argument("--timesteps", type=int, default=Config.timesteps,
                   help="window of the converted models")
    p.add_argument("--direct-timesteps", type=int, default=Config.direct_timesteps,
                   help="window of the direct models (trained at T = 8)")
    p.add_argument("--limit", type=int, default=Config.limit,
                   help="first N test images (0 = all)")
    p.add_argument("--val-limit", type=int, default=Config.val_limit,
                   help="first N validation images (0 = all)")
    p.add_argument("--within", type=float, default=Config.within,
                   help="operating point: first T within this of the reference on val "
                        "(fraction; 0.01 = 1 point)")
    p.add_argument("--sense-weight", type=float, default=Config.sense_weight,
                   help="energy of sensing one column, in row activations (the dashed curves)")
    p.add_argument("--weighting", choices=("rows", "cells"), default=Config.weighting)
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--seed", type=int, default=Config.seed, help="Poisson input seed")
    p.add_argument("--data-root")
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False,
                   help="replace an existing results.json in --out-dir")
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, T = 8, 64 images, tiny models trained on the spot")
    args = vars(p.parse_args(argv))
    defaults = DEFAULTS.get("digits" if args["smoke"] else args["dataset"], {})
    for kind in KINDS:
        specs = args[kind] if args[kind] is not None else defaults.get(kind, ())
        for spec in specs:
            if "=" not in spec or not spec.split("=", 1)[0] or not spec.split("=", 1)[1]:
                p.error(f"--{kind} {spec!r}: expected NAME=SPEC (zoo:NAME or a model.pt)")
        args[kind] = tuple(specs)
    args["percentiles"] = tuple(args["percentiles"])
    for flag in ("timesteps", "direct_timesteps", "batch_size"):
        if args[flag] < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {args[flag]}")
    if not 0 <= args["within"] < 1 or args["sense_weight"] < 0:
        p.error("--within must lie in [0, 1) and --sense-weight be >= 0")
    cfg = Config(**args)
    if cfg.smoke:
        cfg = replace(cfg, dataset="digits", timesteps=8, direct_timesteps=8, limit=64,
                      val_limit=64, percentiles=cfg.percentiles[:2])
    return cfg


class FanOutCounter:
    """A duck-typed BindsNET monitor: per binary synapse, the active B-SNN rows
    :math:`\\sum_j f_j s_j` at every step, summed over the samples (``rows[key]``: ``[T]``)."""

    def __init__(self, network: Any, maps: dict[str, tuple[str, Any]], timesteps: int) -> None:
        import torch

        self.network, self.timesteps, self.t = network, timesteps, 0
        self.maps = {k: (src, f.float()) for k, (src, f) in maps.items()}
        self.rows = {k: torch.zeros(timesteps, dtype=torch.float64) for k in maps}

    def reset_state_variables(self) -> None:
        self.t = 0

    def record(self) -> None:
        for key, (source, f) in self.maps.items():
            s = self.network.layers[source].s
            self.rows[key][self.t] += float((s.float() * f.to(s.device)).sum())
        self.t += 1


def _ann_predictions(model: Any, data: Any, batch_size: int) -> Any:
    import torch

    from bsnn_bindsnet.data.samples import batches

    model.eval()
    with torch.no_grad():
        return torch.cat([model(x).argmax(1) for x, _ in batches(data, batch_size)])


def _labels(data: Any) -> Any:
    import torch

    return torch.as_tensor([int(y) for _, y in data])


def curve(plan: Any, data: Any, timesteps: int, cfg: Config, encoding: str) -> dict:
    """Simulate ``plan`` on ``data``: per step accuracy, predictions, #OPS (hidden and all
    layers) and the crossbar energy ratios of both pictures."""
    import torch

    from bsnn_bindsnet.analysis.ops import layer_ops, ops_report
    from bsnn_bindsnet.imc.cost import crossbar_energy, fan_out_maps
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network

    network = build_network(plan)
    counter = FanOutCounter(network, fan_out_maps(plan), timesteps)
    network.add_monitor(counter, "_energy_front_rows")
    try:
        result = simulate(network, data, timesteps, encoding=encoding,
                          batch_size=cfg.batch_size, per_sample=True,
                          generator=torch.Generator().manual_seed(cfg.seed))
    finally:
        del network.monitors["_energy_front_rows"]
    n, ops = result.n, layer_ops(plan)
    cum = {k: torch.cumsum(v, 0) / n for k, v in counter.rows.items()}
    out: dict[str, Any] = {"n": n, "accuracy": result.accuracy, "ops_hidden": [],
                           "ops_all": [], "energy": [], "energy_sensed": [],
                           "energy_xnor": [], "predictions": result.step_predictions}
    for t in range(1, timesteps + 1):
        rows = {k: float(v[t - 1]) for k, v in cum.items()}
        rep = ops_report(ops, result.firing_rates(t), timesteps=t)
        out["ops_hidden"].append(rep["hidden"])
        out["ops_all"].append(rep["all"])
        plain = crossbar_energy(plan, rows, timesteps=t, weighting=cfg.weighting)["total"]
        sensed = crossbar_energy(plan, rows, timesteps=t, sense_weight=cfg.sense_weight,
                                 weighting=cfg.weighting)["total"]
        out["energy"].append(plain["ratio"])
        out["energy_sensed"].append(sensed["ratio"])
        out["energy_xnor"].append(plain["xnor_ratio"])
    return out


def operating_point(val: dict, reference: float, within: float) -> tuple[int, bool]:
    """``(T, met)``: the first T (1-based) at which the validation accuracy reaches
    ``reference - within`` (``met``), else the best step (``met`` false)."""
    acc = val["accuracy"]
    hit = next((t for t, a in enumerate(acc, start=1) if a >= reference - within), None)
    if hit is not None:
        return hit, True
    return max(range(1, len(acc) + 1), key=lambda t: acc[t - 1]), False


def choose(vals: dict, points: dict) -> Any:
    """The candidate whose operating point meets its target at the least validation energy;
    when none meets it, the one with the best validation accuracy there."""
    met = [c for c in vals if points[c][1]]
    if met:
        return min(met, key=lambda c: vals[c]["energy"][points[c][0] - 1])
    return max(vals, key=lambda c: vals[c]["accuracy"][points[c][0] - 1])


def _point(test: dict, t: int, extra: dict) -> dict:
    n = test["n"]
    return {"t": t, "accuracy": test["accuracy"][t - 1],
            "interval": accuracy_interval(test["accuracy"][t - 1], n),
            "energy": test["energy"][t - 1], "energy_sensed": test["energy_sensed"][t - 1],
            "energy_xnor": test["energy_xnor"][t - 1], "ops_hidden": test["ops_hidden"][t - 1],
            "ops_all": test["ops_all"][t - 1], **extra}


def _val_choice(val: dict, t: int, met: bool) -> dict:
    return {"t": t, "met": met, "val_accuracy": val["accuracy"][t - 1],
            "val_energy": val["energy"][t - 1]}


def _public(c: dict) -> dict:
    return {k: v for k, v in c.items() if k != "predictions"}


def smoke_models(out_dir: Path) -> dict[str, tuple[str, ...]]:
    """Digits: a direct XNOR-BSNN and an XNOR-Net trained for one epoch on 256 images."""
    from bsnn_bindsnet.training.fit import RunConfig, fit

    specs = {}
    for kind, preset in (("direct", "digits-direct"), ("baseline", "digits-xnor")):
        path = out_dir / "models" / preset
        if not (path / "model.pt").exists():
            fit(RunConfig(preset, str(path), epochs=1, train_subset=256, progress=False),
                overwrite=True)
        specs[kind] = (f"{preset}={path / 'model.pt'}",)
    return specs


def run(cfg: Config) -> dict:
    """Simulate every model on val and test, choose operating points on val, score on test."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.direct.export import direct_to_plan
    from bsnn_bindsnet.direct.model import DirectBSNN
    from bsnn_bindsnet.zoo.registry import load_spec

    if cfg.smoke:
        cfg = replace(cfg, **smoke_models(cfg.out_dir))
    split = {s: load_dataset(cfg.dataset, s, data_root=cfg.data_root)
             for s in ("calib", "val", "test")}
    for s, lim in (("val", cfg.val_limit), ("test", cfg.limit)):
        if lim:
            split[s] = Subset(split[s], range(min(lim, len(split[s]))))
    val, test = split["val"], split["test"]
    labels = {"val": _labels(val), "test": _labels(test)}
    out: dict[str, Any] = {"n_test": len(test), "n_val": len(val), "models": {},
                           "baselines": {}}
    for spec in cfg.baseline:
        name, path = spec.split("=", 1)
        model = load_spec(path)
        pred = {s: _ann_predictions(model, d, cfg.batch_size) for s, d in
                (("val", val), ("test", test))}
        acc = {s: float((pred[s] == labels[s]).double().mean()) for s in pred}
        out["baselines"][name] = {"spec": path, "val_accuracy": acc["val"],
                                  "accuracy": acc["test"],
                                  "interval": accuracy_interval(acc["test"], len(test)),
                                  "predictions": pred["test"]}
        print(f"{name:>14} (BNN baseline, one pass): {format_accuracy(acc['test'], len(test))} %",
              flush=True)
    for kind in ("standard", "qcfs", "direct"):
        for spec in getattr(cfg, kind):
            name, path = spec.split("=", 1)
            model = load_spec(path)
            if kind == "direct":
                if not isinstance(model, DirectBSNN):
                    raise ValueError(f"--direct {spec}: not a direct B-SNN")
                plan, steps, enc = direct_to_plan(model), cfg.direct_timesteps, model.coding
                candidates = {"-": plan}
                ref = None
            else:
                steps, enc = cfg.timesteps, "current"
                candidates = ({p: ann_to_bsnn(model, split["calib"], percentile=p, build=False)
                               for p in cfg.percentiles} if kind == "standard"
                              else {"θ=λ": ann_to_bsnn(model, None, build=False)})
                ann_val = float((_ann_predictions(model, val, cfg.batch_size)
                                 == labels["val"]).double().mean())
                ann_pred = _ann_predictions(model, test, cfg.batch_size)
                ref = ann_val
            vals = {c: curve(p, val, steps, cfg, enc) for c, p in candidates.items()}
            points = {c: operating_point(v, ref if ref is not None else max(v["accuracy"]),
                                         cfg.within) for c, v in vals.items()}
            chosen = choose(vals, points)
            t_op = points[chosen][0]
            tc = curve(candidates[chosen], test, steps, cfg, enc)
            entry: dict[str, Any] = {"kind": kind, "spec": path, "choice": chosen,
                                     "val_choices": {str(c): _val_choice(vals[c], *points[c])
                                                     for c in vals},
                                     "test": _public(tc),
                                     "val": _public(vals[chosen])}
            extra: dict[str, Any] = {}
            if ref is not None:
                ann_acc = float((ann_pred == labels["test"]).double().mean())
                entry["ann"] = {"val_accuracy": ann_val, "accuracy": ann_acc,
                                "interval": accuracy_interval(ann_acc, len(test))}
                extra["vs_ann"] = compare_predictions(tc["predictions"][t_op - 1], ann_pred,
                                                      labels["test"]).summary()
            if out["baselines"]:
                best = max(out["baselines"], key=lambda b: out["baselines"][b]["val_accuracy"])
                extra["vs_baseline"] = {"baseline": best, **compare_predictions(
                    tc["predictions"][t_op - 1], out["baselines"][best]["predictions"],
                    labels["test"]).summary()}
            entry["operating_point"] = _point(tc, t_op, extra)
            out["models"][name] = entry
            op = entry["operating_point"]
            print(f"{name:>14} ({kind}, {chosen}): T = {t_op} (val) -> "
                  f"{format_accuracy(op['accuracy'], len(test))} %, energy / BNN "
                  f"{op['energy']:.3f} (sensed {op['energy_sensed']:.3f}, XNOR array "
                  f"{op['energy_xnor']:.0f}), #OPS hidden {op['ops_hidden']:.3f} / all "
                  f"{op['ops_all']:.3f}", flush=True)
    for b in out["baselines"].values():
        del b["predictions"]
    return out


def plot(out: dict, cfg: Config) -> Path:
    """Accuracy vs event-driven energy / BNN (solid: rows, dashed: with sensing) and vs T
    (= XNOR-BSNN array energy / BNN); operating points with their intervals."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, e in out["models"].items():
        acc = [100 * a for a in e["test"]["accuracy"]]
        steps = range(1, len(acc) + 1)
        line, = ax1.plot(e["test"]["energy"], acc, label=f"{name} ({e['choice']})")
        ax1.plot(e["test"]["energy_sensed"], acc, ls="--", color=line.get_color())
        ax2.plot(steps, acc, color=line.get_color(), label=name)
        op = e["operating_point"]
        err = [[100 * (op["accuracy"] - op["interval"][0])],
               [100 * (op["interval"][1] - op["accuracy"])]]
        for ax, x in ((ax1, op["energy"]), (ax1, op["energy_sensed"]), (ax2, op["t"])):
            ax.errorbar([x], [100 * op["accuracy"]], yerr=err, fmt="o",
                        color=line.get_color(), capsize=3)
        if "ann" in e:
            ax2.axhline(100 * e["ann"]["accuracy"], color=line.get_color(), ls=":", lw=0.8)
    for name, b in out["baselines"].items():
        err = [[100 * (b["accuracy"] - b["interval"][0])],
               [100 * (b["interval"][1] - b["accuracy"])]]
        for ax in (ax1, ax2):
            ax.errorbar([1.0], [100 * b["accuracy"]], yerr=err, fmt="s", color="k",
                        capsize=3, label=f"{name} (BNN, one pass)" if ax is ax1 else None)
    ax1.axvline(1.0, color="k", lw=0.8, ls=":")
    ax1.set_xscale("log")
    ax1.set_xlabel(f"crossbar energy / BNN, event-driven rows (dashed: + sensing, weight "
                   f"{cfg.sense_weight:g}; {cfg.weighting})")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("timesteps T  (= XNOR-BSNN array energy / BNN, Eq. 10)")
    lows = [100 * e["operating_point"]["accuracy"] for e in out["models"].values()]
    lows += [100 * b["accuracy"] for b in out["baselines"].values()]
    for ax in (ax1, ax2):
        ax.set_ylim(max(0.0, min(lows, default=80.0) - 8), None)
        ax.set_ylabel(f"test accuracy (%), {out['n_test']} images")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{cfg.dataset}: energy-accuracy front (operating points chosen on "
                 f"{out['n_val']} validation images)", fontsize=9)
    return savefig(fig, cfg.out_dir / "energy_front.png")


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)
    out = run(cfg)
    path = write_results(cfg.out_dir, asdict(cfg), out)
    fig = plot(out, cfg)
    print(f"wrote {path} and {fig}", flush=True)
    return out


if __name__ == "__main__":
    main()
