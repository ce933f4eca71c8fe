"""Low latency, part 2 (issue 20): a binary SNN within about 1 point of its ANN at T = 2.

Two steps, every choice on the held-out "val" split, scored once on test:

``train``: a BWN trained through its B-SNN at T = 2
(:mod:`bsnn_bindsnet.training.through_bsnn`; ``train --help``).

``select``: the standard conversion of the ReLU BWN (v(0) = θ/2, thresholds θ_l =
λ_l/λ_{l-1} from activation percentiles of the calibration split) at each percentile of
``--percentiles``, its B-SNN accuracy after T = 1..max(``--steps``) on the first
``--select-limit`` val images (the unrolled PyTorch twin, which predicts what BindsNET
predicts); the best percentile per T; then, per T of ``--layerwise-steps``, one pass of
coordinate ascent over the percentile of each layer. Writes ``OUT_DIR/select/results.json``.

``evaluate``: BindsNET simulations on test (``--limit`` images, 0 = all 10,000, one-step
mode, constant-current input): (a) the standard conversion at each T's val-chosen
percentile, (a') at the per-layer percentiles, and every ``--model NAME=PATH`` (a QCFS BWN
trained through its B-SNN, θ = λ, no calibration) for T = 1..``--timesteps``, each with its
val accuracy beside it (the ablation table); then early exit on ``--exit-model``:
threshold on the readout's max potential, chosen on val at each fixed T of ``--exit-refs``
(≤ ``--tolerance`` loss on val), scored on test. Writes ``results.json``.

    python -m experiments.low_latency_t2 select --relu-model runs/fmnist-bwn/model.pt
    python -m experiments.low_latency_t2 evaluate --relu-model runs/fmnist-bwn/model.pt \\
        --model t2-kd=zoo:fmnist-bsnn-t2 --exit-model t2-kd
    python -m experiments.low_latency_t2 select --smoke     # digits, seconds

Every accuracy on fewer than 10,000 images carries its 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bsnn_bindsnet.analysis.stats import format_accuracy
from experiments.common import claim_out_dir, write_results

PERCENTILES = (90.0, 93.0, 96.0, 98.0, 99.0, 99.5, 99.7, 99.9)


@dataclass(frozen=True)
class Config:
    """``select`` or ``evaluate`` and their settings (module docstring)."""

    command: str
    dataset: str = "fashion-mnist"
    relu_model: str = "runs/fmnist-bwn/model.pt"
    percentiles: tuple[float, ...] = PERCENTILES
    steps: tuple[int, ...] = (1, 2, 4, 8)
    layerwise_steps: tuple[int, ...] = (2,)
    layerwise_width: int = 2
    select_limit: int | None = 2000
    selection: Path | None = None
    models: tuple[str, ...] = ()
    starts: tuple[str, ...] = ()
    baselines: bool = True
    exit_model: str | None = None
    exit_refs: tuple[int, ...] = (2, 4)
    tolerance: float = 0.001
    timesteps: int = 8
    limit: int | None = 0
    batch_size: int = 500
    out_dir: Path = Path("results/low_latency_t2")
    smoke: bool = False
    overwrite: bool = False
    tune: Any = None


def _spec_path(spec: str | None) -> str | None:
    """``zoo:NAME`` -> the path of its materialized ``model.pt``; a path as it is."""
    if spec is None or not spec.startswith("zoo:"):
        return spec
    from bsnn_bindsnet.zoo.registry import materialize

    return str(materialize(spec[len("zoo:"):]))


def parse_train_args(argv: Sequence[str]) -> Config:
    """``train``: the options of :class:`~bsnn_bindsnet.training.through_bsnn.TuneConfig`."""
    from bsnn_bindsnet.training.through_bsnn import TuneConfig, parse_percentiles

    d = TuneConfig("", "")
    p = argparse.ArgumentParser(prog="python -m experiments.low_latency_t2 train",
                                description="train a BWN through its B-SNN "
                                            "(bsnn_bindsnet.training.through_bsnn)")
    p.add_argument("--init-from", required=True, help="model.pt or zoo:NAME (ReLU or QCFS BWN)")
    p.add_argument("--out", required=True, dest="out_dir")
    p.add_argument("--percentiles", default="", help="ReLU start: NAME=PERCENTILE per ReLU "
                   "(chosen on val by the select step)")
    p.add_argument("--teacher", default=None, help="model.pt or zoo:NAME: distillation teacher")
    for flag, kind in (("dataset", str), ("levels", int), ("timesteps", int),
                       ("kd_weight", float), ("kd_temperature", float), ("epochs", int),
                       ("max_batches", int), ("eval_every", int), ("lr", float),
                       ("batch_size", int), ("eval_steps", int), ("select_step", int),
                       ("val_limit", int), ("train_subset", int), ("calib_size", int),
                       ("seed", int)):
        p.add_argument(f"--{flag.replace('_', '-')}", type=kind, default=getattr(d, flag))
    p.add_argument("--loss-steps", type=int, nargs="+", default=[])
    p.add_argument("--schedule", choices=("halve", "cosine"), default=d.schedule)
    p.add_argument("--eval-start", action=argparse.BooleanOptionalAction, default=True)
    args = vars(p.parse_args(argv))
    try:
        args["percentiles"] = parse_percentiles(args["percentiles"])
        args["loss_steps"] = tuple(args["loss_steps"])
        args["init_from"] = _spec_path(args["init_from"])
        args["teacher"] = _spec_path(args["teacher"])
        tune = TuneConfig(**args)
    except ValueError as err:
        p.error(str(err))
    return Config("train", out_dir=Path(tune.out_dir), tune=tune)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        return parse_train_args(argv[1:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("select", "evaluate", "train"))
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--relu-model", default=Config.relu_model, help="the ReLU BWN (model.pt "
                   "or zoo:NAME)")
    p.add_argument("--percentiles", type=float, nargs="+", default=list(PERCENTILES))
    p.add_argument("--steps", type=int, nargs="+", default=list(Config.steps),
                   help="the T to choose a percentile for")
    p.add_argument("--layerwise-steps", type=int, nargs="*", default=list(Config.layerwise_steps),
                   help="the T to choose per-layer percentiles for")
    p.add_argument("--layerwise-width", type=int, default=Config.layerwise_width,
                   help="per layer, try the percentiles this many grid places either side of "
                        "the global choice")
    p.add_argument("--select-limit", type=int, default=Config.select_limit,
                   help="the first N val images for the selection (0: all 5,000)")
    p.add_argument("--selection", type=Path, help="the select step's results.json "
                   "(evaluate; default: OUT_DIR/select/results.json)")
    p.add_argument("--model", action="append", default=[], dest="models", metavar="NAME=PATH",
                   help="a QCFS BWN trained through its B-SNN (repeatable)")
    p.add_argument("--start", action="append", default=[], dest="starts", metavar="NAME=RUN",
                   help="the network a through_bsnn RUN started from (its config.json's "
                        "start_lambdas on --relu-model), as a row (repeatable)")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="the (a) and (a') rows of the selection (--no-baselines: only --model "
                        "and --start)")
    p.add_argument("--exit-model", help="NAME of the --model for the early-exit study")
    p.add_argument("--exit-refs", type=int, nargs="+", default=list(Config.exit_refs))
    p.add_argument("--tolerance", type=float, default=Config.tolerance)
    p.add_argument("--timesteps", type=int, default=Config.timesteps)
    p.add_argument("--limit", type=int, default=Config.limit, help="test images (0: all)")
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    args = vars(p.parse_args(argv))
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    for spec in args["models"] + args["starts"]:
        if "=" not in spec:
            p.error(f"--model/--start {spec!r}: expected NAME=PATH")
    cfg = Config(**args)
    if cfg.smoke:
        cfg = replace(cfg, dataset="digits", relu_model="zoo:digits-bwn", select_limit=0,
                      percentiles=(96.0, 99.0, 99.9), steps=(1, 2, 4), limit=64, timesteps=4,
                      exit_refs=(2,))
    if cfg.exit_model and cfg.exit_model not in {s.split("=", 1)[0] for s in cfg.models}:
        p.error(f"--exit-model {cfg.exit_model!r} is not the NAME of a --model")
    return cfg


def _val(cfg: Config) -> Any:
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset

    val = load_dataset(cfg.dataset, "val")
    return Subset(val, range(min(cfg.select_limit, len(val)))) if cfg.select_limit else val


def select(cfg: Config) -> dict:
    """Percentile per T (global, then per layer) chosen on val."""
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.training.qcfs import (percentile_table, qcfs_twin, select_percentiles,
                                             step_accuracy)
    from bsnn_bindsnet.zoo.registry import load_spec

    relu = load_spec(cfg.relu_model)
    table = percentile_table(relu, load_dataset(cfg.dataset, "calib"), cfg.percentiles)
    val = _val(cfg)
    curves = {}
    for p in sorted(table):
        t0 = time.perf_counter()
        curves[p] = step_accuracy(qcfs_twin(relu, table[p]), val, max(cfg.steps))
        print(f"p{p:g}: val " + " ".join(f"{100 * a:.2f}" for a in curves[p])
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    best = {t: max(sorted(table), key=lambda p: (curves[p][t - 1], p)) for t in cfg.steps}
    out: dict[str, Any] = {"n_val": len(val), "table": {str(p): v for p, v in table.items()},
                           "curves": {str(p): c for p, c in curves.items()},
                           "global": {str(t): {"percentile": best[t],
                                               "val_accuracy": curves[best[t]][t - 1]}
                                      for t in cfg.steps},
                           "layerwise": {}}
    grid = sorted(table)
    for t in cfg.layerwise_steps:
        i = grid.index(best[t])
        near = grid[max(0, i - cfg.layerwise_width):i + cfg.layerwise_width + 1]
        choice, acc, trace = select_percentiles(relu, {p: table[p] for p in near}, val, t,
                                                log_fn=lambda s: print(s, flush=True))
        out["layerwise"][str(t)] = {"percentiles": choice, "val_accuracy": acc,
                                    "lambdas": {n: table[p][n] for n, p in choice.items()},
                                    "trace": trace}
    for t in cfg.steps:
        g = out["global"][str(t)]
        line = f"T={t}: p{g['percentile']:g}, val {format_accuracy(g['val_accuracy'], len(val))} %"
        if str(t) in out["layerwise"]:
            lw = out["layerwise"][str(t)]
            line += (f"; per layer {lw['percentiles']}: val "
                     f"{format_accuracy(lw['val_accuracy'], len(val))} %")
        print(line, flush=True)
    return out


def _simulate(model: Any, data: Any, timesteps: int, cfg: Config, per_sample: bool = False):
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate

    plan = ann_to_bsnn(model, None, build=False)
    from bsnn_bindsnet.snn.network import build_network

    return plan, simulate(build_network(plan), data, timesteps, one_step=True,
                          batch_size=cfg.batch_size, per_sample=per_sample)


def _ops(plan: Any, result: Any) -> list[dict]:
    """Per step: normalized #OPS over the hidden layers (the paper's Eq. 5), over all layers
    (the full-precision first layer: one MAC pass per step), and that layer's share."""
    from bsnn_bindsnet.analysis.ops import layer_ops, ops_report

    ops = layer_ops(plan)
    return [ops_report(ops, result.firing_rates(t), timesteps=t)
            for t in range(1, result.timesteps + 1)]


def early_exit_rows(val_res: Any, test_res: Any, plan: Any, refs: Sequence[int],
                    tolerance: float) -> list[dict]:
    """Per fixed T of ``refs``: the threshold chosen on the val traces (lowest mean exit within
    ``tolerance`` of the fixed T on val), scored on the test traces."""
    from bsnn_bindsnet.analysis.early_exit import choose_exit, early_exit, threshold_grid
    from bsnn_bindsnet.analysis.early_exit import rates_until_exit
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops

    rows = []
    for t_ref in refs:
        grid = threshold_grid(val_res.step_confidence[:t_ref], 96)
        chosen, _ = choose_exit(val_res.step_predictions, val_res.step_confidence,
                                val_res.labels, t_ref, grid, tolerance)
        run = early_exit(test_res.step_predictions, test_res.step_confidence, test_res.labels,
                         chosen.threshold, t_cap=t_ref)
        ifr = rates_until_exit(test_res.sample_spikes, test_res.layer_neurons, run.exit_steps)
        rows.append({"t_ref": t_ref, "threshold": None if chosen.threshold == float("inf")
                     else chosen.threshold, "val_fixed": val_res.accuracy[t_ref - 1],
                     "val_exit": chosen.accuracy, "val_mean_exit": chosen.mean_exit,
                     "test_fixed": test_res.accuracy[t_ref - 1], "test_exit": run.accuracy,
                     "test_mean_exit": run.mean_exit,
                     "test_ops_fixed": normalized_ops(layer_ops(plan),
                                                      test_res.firing_rates(t_ref),
                                                      timesteps=t_ref),
                     "test_ops_exit": normalized_ops(layer_ops(plan), ifr,
                                                     timesteps=run.mean_exit)})
    return rows


def evaluate(cfg: Config) -> dict:
    """Test curves (BindsNET) beside the val curves of every network, and early exit."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.training.loop import evaluate as ann_eval
    from bsnn_bindsnet.data.registry import make_loader
    from bsnn_bindsnet.training.qcfs import qcfs_twin, step_accuracy, step_predictions
    from bsnn_bindsnet.zoo.registry import load_spec

    sel_path = cfg.selection or cfg.out_dir / "select" / "results.json"
    sel = json.loads(Path(sel_path).read_text())["results"]
    relu = load_spec(cfg.relu_model)
    test = load_dataset(cfg.dataset, "test")
    if cfg.limit:
        test = Subset(test, range(min(cfg.limit, len(test))))
    val = _val(cfg)
    n = len(test)

    def ann_acc(model: Any, data: Any) -> float:
        return ann_eval(model, make_loader(data, batch_size=cfg.batch_size, shuffle=False)).acc

    out: dict[str, Any] = {"n_test": n, "n_val": len(val), "relu_ann": ann_acc(relu, test),
                           "relu_ann_val": ann_acc(relu, val), "rows": {}}
    val_steps = min(4, cfg.timesteps)

    def run(name: str, model: Any, steps: int, val_curve: list[float] | None = None,
            per_sample: bool = False) -> tuple[Any, Any]:
        t0 = time.perf_counter()
        plan, res = _simulate(model, test, steps, cfg, per_sample=per_sample)
        row = {"test": res.accuracy, "test_ops": _ops(plan, res),
               "val": val_curve or step_accuracy(model, val, val_steps),
               "lambdas": plan.info.lambdas, "seconds": round(time.perf_counter() - t0, 1)}
        out["rows"][name] = row
        print(f"{name:>24} test {' '.join(f'{100 * a:6.2f}' for a in res.accuracy)}  | val "
              f"{' '.join(f'{100 * a:6.2f}' for a in row['val'])} ({row['seconds']} s)",
              flush=True)
        return plan, res

    # (a) the standard conversion, one network per chosen percentile, simulated up to the
    # largest T it was chosen for; its val curve is the selection's
    chosen: dict[float, list[int]] = {}
    for t, g in sel["global"].items() if cfg.baselines else ():
        chosen.setdefault(g["percentile"], []).append(int(t))
    for p, ts in sorted(chosen.items()):
        twin = qcfs_twin(relu, dict(sel["table"][str(p)]))
        run(f"(a) p{p:g}", twin, min(max(ts), cfg.timesteps), sel["curves"][str(p)])
    for t, lw in sel["layerwise"].items() if cfg.baselines else ():
        run(f"(a') per layer, T={t}", qcfs_twin(relu, lw["lambdas"]), min(4, cfg.timesteps))
    for spec in cfg.starts:
        name, run_dir = spec.split("=", 1)
        start = json.loads((Path(run_dir) / "config.json").read_text())["start_lambdas"]
        run(name, qcfs_twin(relu, start), min(4, cfg.timesteps))
    traces = {}
    for spec in cfg.models:
        name, path = spec.split("=", 1)
        model = load_spec(path)
        plan, res = run(name, model, cfg.timesteps, per_sample=name == cfg.exit_model)
        out["rows"][name]["ann_test"] = ann_acc(model, test)
        out["rows"][name]["ann_val"] = ann_acc(model, val)
        if name == cfg.exit_model:
            traces[name] = (plan, res, model)
            preds, _, _ = step_predictions(model, test, 2)  # the twin that was trained
            out["rows"][name]["unrolled_agreement"] = (
                (preds == res.step_predictions[:2]).double().mean(1).tolist())
            first = res.step_predictions[:, :1000] == res.labels[:1000]  # tests/test_through_bsnn
            out["rows"][name]["first_1000_correct"] = first.sum(1).tolist()
    if cfg.exit_model:
        plan, test_res, model = traces[cfg.exit_model]
        full_val = _val(replace(cfg, select_limit=0))  # the threshold: on all of val
        _, val_res = _simulate(model, full_val, max(cfg.exit_refs), cfg, per_sample=True)
        out["early_exit"] = early_exit_rows(val_res, test_res, plan, cfg.exit_refs,
                                            cfg.tolerance)
        for r in out["early_exit"]:
            print(f"early exit at T_ref={r['t_ref']}: test {format_accuracy(r['test_exit'], n)} "
                  f"vs fixed {format_accuracy(r['test_fixed'], n)} %, mean exit "
                  f"{r['test_mean_exit']:.3f} (val {100 * r['val_exit']:.2f} vs "
                  f"{100 * r['val_fixed']:.2f}, {r['val_mean_exit']:.3f})", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> Any:
    cfg = parse_args(argv)
    if cfg.command == "train":
        import logging

        from bsnn_bindsnet.training.through_bsnn import tune

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        history = tune(cfg.tune, progress=True)
        for r in history:
            print(f"epoch {r['epoch']:g}: val after steps 1..{len(r['val_acc'])}: "
                  + " ".join(f"{100 * a:.2f}" for a in r["val_acc"]), flush=True)
        return history
    out_dir = cfg.out_dir / "select" if cfg.command == "select" else cfg.out_dir
    claim_out_dir(out_dir, cfg.overwrite)
    out = select(cfg) if cfg.command == "select" else evaluate(cfg)
    path = write_results(out_dir, asdict(cfg), out)
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
