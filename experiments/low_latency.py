"""Low-latency B-SNNs (issue 14): accuracy and normalized #OPS at T = 1..64 for

(a) the standard conversion of the ReLU BWN (percentile thresholds, v(0) = θ/2),
(b) QCFS BWNs converted with θ = λ (no calibration statistics), one per ``--qcfs NAME=PATH``
    (e.g. the ANN fine-tuned with QCFS, and the same after fine-tuning through its B-SNN),
(c) SpikingJelly 2.0's ``ann2snn`` run on the same trained models (an optional peer: skipped
    with a message when it is not installed; ``--peer-timesteps`` bounds its window),

each beside its ANN, then early exit on the readout of the ``--exit-model``: T_ref and the
confidence threshold chosen on the val split (``--select-limit`` images of it; no model trains
on them) and scored on test, at ≤ ``--tolerance`` loss. "#OPS to within 1 point" is chosen the
same way: the first step at which the validation curve comes within 1 point of the ANN's
validation accuracy, read on test there (:func:`experiments.common.chosen_on_val`).

    python -m experiments.low_latency --dataset fashion-mnist --limit 0 \\
        --qcfs qcfs-L2=runs/fmnist-qcfs-bwn-L2/model.pt \\
        --qcfs qcfs-L2-snn=runs/fmnist-qcfs-snn-L2/model.pt
    python -m experiments.low_latency --smoke       # digits, models trained on the spot

Every accuracy on fewer than 10,000 images carries its 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
from experiments.common import chosen_on_val, pyplot, savefig, write_results
from experiments.harness import (Setup, add_selection_argument, add_setup_arguments,
                                 ann_accuracy, early_exit_study, load_data, selection_data,
                                 setup_from, simulate_curve)

REPORT_STEPS = (1, 2, 4, 8, 16, 32, 64)
RELU_MODELS = {"fashion-mnist": "zoo:fmnist-bwn", "digits": "zoo:digits-bwn"}


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the models, the peer window and the early-exit selection."""

    relu_model: str | None = None
    qcfs: tuple[str, ...] = ()
    peer_timesteps: int = 64
    exit_model: str | None = None
    exit_timesteps: int = 16
    tolerance: float = 0.001
    select_limit: int | None = None


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/low_latency", timesteps=64, limit=0)
    p.add_argument("--relu-model", help="the ReLU BWN (a model.pt or zoo:NAME; default: the "
                                        "dataset's zoo BWN)")
    p.add_argument("--qcfs", action="append", default=[], metavar="NAME=PATH",
                   help="a QCFS model to convert with theta = lambda (repeatable)")
    p.add_argument("--peer-timesteps", type=int, default=Config.peer_timesteps,
                   help="SpikingJelly's window (0: skip the peer)")
    p.add_argument("--exit-model", help="the NAME of the --qcfs model for the early-exit study "
                                        "(default: the last one)")
    p.add_argument("--exit-timesteps", type=int, default=Config.exit_timesteps,
                   help="T_max of the early-exit selection run on validation images")
    p.add_argument("--tolerance", type=float, default=Config.tolerance,
                   help="early-exit accuracy loss allowed (fraction; 0.001 = 0.1 points)")
    add_selection_argument(p)
    cfg = setup_from(p.parse_args(argv), Config)
    for spec in cfg.qcfs:
        if "=" not in spec:
            p.error(f"--qcfs {spec!r}: expected NAME=PATH")
    if cfg.smoke:
        cfg = replace(cfg, peer_timesteps=min(cfg.peer_timesteps, 16), exit_timesteps=8)
    return cfg


def smoke_models(out_dir: Path) -> tuple[str, list[str]]:
    """Digits: the zoo ReLU BWN, QCFS-fine-tuned (L = 2) for a few epochs on the spot, and that
    model fine-tuned through its B-SNN at T = 2 (seconds)."""
    from bsnn_bindsnet import zoo
    from bsnn_bindsnet.training.fit import RunConfig, fit

    runs = out_dir / "models"
    qcfs = runs / "digits-qcfs-bwn"
    snn = runs / "digits-qcfs-snn"
    common = {"progress": False, "train_subset": 512, "seed": 0}
    if not (qcfs / "model.pt").exists():  # never replace a run: resume an interrupted one
        print(f"training digits-qcfs-bwn (2 epochs) in {qcfs}", flush=True)
        fit(RunConfig("digits-qcfs-bwn", str(qcfs), init_from=str(zoo.materialize("digits-bwn")),
                      levels=2, epochs=2, **common), resume=(qcfs / "checkpoint.pt").exists())
    if not (snn / "model.pt").exists():
        print(f"training digits-qcfs-snn (1 epoch) in {snn}", flush=True)
        fit(RunConfig("digits-qcfs-snn", str(snn), init_from=str(qcfs / "model.pt"),
                      epochs=1, **common), resume=(snn / "checkpoint.pt").exists())
    return "zoo:digits-bwn", [f"qcfs-L2={qcfs / 'model.pt'}", f"qcfs-L2-snn={snn / 'model.pt'}"]


def unrolled_agreement(model: Any, test: Any, result: Any, cfg: Config,
                       steps: Sequence[int] = (1, 2, 4)) -> dict[int, float]:
    """Fraction of test images on which the unrolled PyTorch B-SNN
    (:func:`bsnn_bindsnet.training.unrolled.unroll`, what ``*-qcfs-snn`` trains) predicts what BindsNET
    predicted after the same number of steps."""
    import torch

    from bsnn_bindsnet.data.samples import batches
    from bsnn_bindsnet.training.unrolled import unroll

    out = {}
    for t in steps:
        if t > result.timesteps:
            continue
        snn = unroll(model, t).eval()
        with torch.no_grad():
            pred = torch.cat([snn(x).argmax(1) for x, _ in batches(test, cfg.batch_size)])
        out[t] = float((pred == result.step_predictions[t - 1]).double().mean())
    return out


def _row_cells(row: dict) -> str:
    acc = row["accuracy"]
    return " ".join(f"{100 * acc[t - 1]:6.2f}" if t <= len(acc) else "     -"
                    for t in REPORT_STEPS)


def _peer(model: Any, calib: Any, test: Any, cfg: Config, mode: str, plan: Any) -> dict | None:
    """SpikingJelly's curve on the same model and data, with normalized #OPS counted on our
    plan's synapses from its spikes (its layers carry our IF layers' names)."""
    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
    from bsnn_bindsnet.interop.spikingjelly import SpikingJellyMissingError, spikingjelly_curve

    if cfg.peer_timesteps <= 0:
        return None
    try:
        peer = spikingjelly_curve(model, calib, test, cfg.peer_timesteps, mode=mode,
                                  percentile=cfg.percentile, v_init="half",
                                  batch_size=cfg.batch_size, device=cfg.device)
    except SpikingJellyMissingError as err:
        print(f"SpikingJelly peer skipped: {err}", flush=True)
        return None
    ops = layer_ops(plan)
    return {**peer.summary(),
            "normalized_ops": [normalized_ops(ops, peer.firing_rates(t), timesteps=t)
                               for t in range(1, len(peer.accuracy) + 1)]}


def run(cfg: Config) -> dict:
    """Simulate every model, the peer, and the early-exit study; return the results."""
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.zoo.registry import load_spec

    relu_spec, qcfs_specs = cfg.relu_model, list(cfg.qcfs)
    if cfg.smoke:
        relu_spec, qcfs_specs = smoke_models(cfg.out_dir)
    relu_spec = relu_spec or RELU_MODELS.get(cfg.dataset)
    if relu_spec is None:
        raise ValueError(f"no default ReLU BWN for {cfg.dataset!r}; pass --relu-model")
    calib, test = load_data(cfg)  # calibration: the thresholds only
    select = selection_data(cfg, cfg.select_limit)  # every choice is made on these
    n = len(test)
    models = {"relu": (relu_spec, "percentile")}
    models.update({s.split("=", 1)[0]: (s.split("=", 1)[1], "qcfs") for s in qcfs_specs})
    exit_name = cfg.exit_model or (list(models)[-1] if qcfs_specs else None)
    out: dict[str, Any] = {"n": n, "models": {}}
    for name, (spec, mode) in models.items():
        model = load_spec(spec)
        ann, ann_val = ann_accuracy(model, test, cfg), ann_accuracy(model, select, cfg)
        plan = (ann_to_bsnn(model, calib, percentile=cfg.percentile, build=False)
                if mode == "percentile" else ann_to_bsnn(model, None, build=False))
        row, result = simulate_curve(plan, test, cfg, per_sample=mode == "qcfs")
        val_row, _ = simulate_curve(plan, select, cfg)
        within = chosen_on_val(val_row, row, ann_val - 0.01)  # T chosen on val, read on test
        entry = {"spec": spec, "conversion": mode, "ann": ann,
                 "ann_interval": accuracy_interval(ann, n), "ann_val": ann_val, "bsnn": row,
                 "bsnn_val": {k: val_row[k] for k in ("accuracy", "normalized_ops")},
                 "within_1pt": within, "ops_within_1pt": within["test_ops"],
                 "steps_within_1pt": within["t_val"]}
        if mode == "qcfs":
            entry["unrolled_agreement"] = unrolled_agreement(model, test, result, cfg)
        entry["spikingjelly"] = _peer(model, calib, test, cfg, mode, plan)
        out["models"][name] = entry
        print(f"{name:>14} ANN {format_accuracy(ann, n)} % | B-SNN at T = "
              f"{','.join(map(str, REPORT_STEPS))}: {_row_cells(row)}", flush=True)
        if entry["spikingjelly"]:
            peer_ann = format_accuracy(entry["spikingjelly"]["ann_accuracy"], n)
            print(f"{'SpikingJelly':>14} ANN {peer_ann} % | {'':24}"
                  f"{_row_cells(entry['spikingjelly'])}", flush=True)
        if name == exit_name:
            val_result = simulate(ann_to_bsnn(model, None), select, cfg.exit_timesteps,
                                  batch_size=cfg.batch_size, device=cfg.device,
                                  per_sample=True)
            out["early_exit"] = {"model": name, **early_exit_study(
                val_result, result, plan, ann_val=ann_val, ann_test=ann,
                tolerance=cfg.tolerance)}
    relu_val = out["models"]["relu"]["ann_val"]
    for entry in out["models"].values():  # the issue's yardstick: within 1 point of the ReLU BWN
        within = chosen_on_val(entry["bsnn_val"], entry["bsnn"], relu_val - 0.01)
        entry["within_1pt_of_relu_bwn"] = within
        entry["ops_within_1pt_of_relu_bwn"] = within["test_ops"]
    return out


def plot(out: dict, out_dir: Path) -> Path:
    """Accuracy vs T (log) and vs normalized #OPS, one line per model (+ peer, dashed)."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, entry in out["models"].items():
        acc = [100 * a for a in entry["bsnn"]["accuracy"]]
        steps = range(1, len(acc) + 1)
        line, = ax1.plot(steps, acc, label=f"{name} (ANN {100 * entry['ann']:.2f} %)")
        ax2.plot(entry["bsnn"]["normalized_ops"], acc, color=line.get_color(), label=name)
        peer = entry.get("spikingjelly")
        if peer:
            ax1.plot(range(1, len(peer["accuracy"]) + 1), [100 * a for a in peer["accuracy"]],
                     ls="--", color=line.get_color(), label=f"{name}, SpikingJelly")
    for ax in (ax1, ax2):
        ax.set_ylim(max(0, min(ax.get_ylim()[1] - 15, 80)), None)
        ax.grid(alpha=0.3)
        ax.set_ylabel("test accuracy (%)")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("timesteps T")
    ax2.set_xscale("log")
    ax2.set_xlabel("normalized #OPS")
    ax1.legend(fontsize=7)
    return savefig(fig, out_dir / "low_latency.png")


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_args(argv)
    out = run(cfg)
    ee = out.get("early_exit")
    if ee:
        n = ee["n_test"]
        print(f"early exit ({ee['model']}): T_ref {ee['t_ref']} (chosen on {ee['n_val']} "
              f"validation images) -> mean exit {ee['mean_exit']:.2f} steps, "
              f"{format_accuracy(ee['exit_accuracy'], n)} % vs "
              f"{format_accuracy(ee['accuracy_at_t_ref'], n)} % at T_ref; #OPS "
              f"{ee['ops_at_t_ref']:.3f} -> {ee['ops_with_exit']:.3f}"
              + (" (no saving)" if ee["no_saving"] else ""), flush=True)
    path = write_results(cfg.out_dir, asdict(cfg), out)
    fig = plot(out, cfg.out_dir)
    print(f"wrote {path} and {fig}")
    return out


if __name__ == "__main__":
    main()
