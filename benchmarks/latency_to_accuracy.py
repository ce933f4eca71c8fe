"""Wall time for a B-SNN to classify within 1 point of its ANN, in dense ANN passes (issues 14,
21).

Per converted network, everything is chosen on the val split (training-set images no model
trains on; ``--select-limit`` of them) and then timed and scored on test:

- ``T*``: the first step whose validation accuracy is within ``--within`` of the reference
  ANN's validation accuracy (:func:`choose_t_star`);
- for a network with ReLU layers (the standard conversion), the threshold percentile of
  ``--percentiles`` with the smallest ``T*`` on val (ties: the higher validation accuracy at
  ``T*``): the strongest standard baseline, not one fixed percentile. QCFS layers (the
  low-latency models) take θ = λ and need no choice.

Then ``simulate`` to ``T*`` over the test images is timed against one dense forward pass of
the reference ANN over the same images in its fastest float form on this machine (the
helper of ``benchmarks.binary_arithmetic``: NCHW or channels-last, ``torch.inference_mode``,
same batch, same threads), interleaved, best of ``--repeats``; the simulation runs as
``bsnn simulate`` does by default (counters on, integer arithmetic, fused IF kernel) and
``--eager-too`` adds the float path with the eager IF step for comparison. ``--at T ...``
also times every network at fixed latencies (e.g. T = 2, the low-latency target).

``--early-exit`` adds early exit at ``T*``: each sample stops at the first step whose readout
confidence (max potential) exceeds a threshold, at ``T*`` at the latest. The threshold is
chosen on the val traces (the lowest mean exit step whose val accuracy stays within
``--exit-tolerance`` of the fixed ``T*`` run, :func:`choose_val_exit`); then
:func:`~bsnn_bindsnet.simulation.early_exit.simulate_early_exit` (continuous batching: a
finished row takes the next image) is timed on test against the same ANN pass.

    python -m benchmarks.latency_to_accuracy --reference zoo:fmnist-bwn \\
        --model standard=zoo:fmnist-bwn --model bsnn-t2=zoo:fmnist-bsnn-t2 --at 2 4 --early-exit

Never time this while anything else runs on the machine; the JSON records the CPU and the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

PERCENTILES = (95.0, 97.0, 98.0, 99.0, 99.5, 99.9, 99.99)


def _accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float(torch.cat([model(xb).argmax(1) for xb in x.split(256)]).eq(y)
                     .double().mean())


def choose_t_star(val_curve: Sequence[float], val_reference: float,
                  within: float) -> int | None:
    """The first 1-based step whose *validation* accuracy is at least ``val_reference -
    within`` (the reference ANN's validation accuracy less the gap), or None."""
    from bsnn_bindsnet.analysis.early_exit import first_step_reaching

    return first_step_reaching(val_curve, val_reference - within)


def choose_plan(candidates: dict, val_curves: dict, val_reference: float,
                within: float) -> tuple:
    """``(key, T*)`` of the candidate plan with the smallest ``T*`` on val (ties: the higher
    validation accuracy at ``T*``; none reaching the target: the highest final accuracy,
    ``T*`` None)."""
    scored = []
    for key in candidates:
        curve = val_curves[key]
        t = choose_t_star(curve, val_reference, within)
        scored.append((t is None, t or len(curve), -curve[(t or len(curve)) - 1], key, t))
    best = min(scored, key=lambda r: r[:3])
    return best[3], best[4]


def choose_val_exit(val_predictions: torch.Tensor, val_confidence: torch.Tensor,
                    labels: torch.Tensor, t_star: int, tolerance: float,
                    n_thresholds: int = 96):
    """The early-exit threshold for a run to ``t_star``, chosen on *validation* traces
    (``[T, N]`` argmax and max potential per step, ``T >= t_star``): among a grid of
    thresholds at quantiles of the confidences plus ``+inf`` (the fixed ``t_star`` run), the
    lowest mean exit step whose val accuracy is at least the fixed run's less ``tolerance``
    (:func:`~bsnn_bindsnet.analysis.early_exit.choose_exit`). Returns its
    :class:`~bsnn_bindsnet.analysis.early_exit.EarlyExit` (threshold ``inf``: no saving)."""
    from bsnn_bindsnet.analysis.early_exit import choose_exit, threshold_grid

    conf = val_confidence[:t_star]
    chosen, _ = choose_exit(val_predictions[:t_star], conf, labels, t_star,
                            threshold_grid(conf, n_thresholds), tolerance)
    return chosen


def _timed_exit(plan, x, y, t_star, threshold, ann_pass, repeats: int, batch: int):
    """Best-of-``repeats`` seconds of one ANN pass and of early exit to ``t_star``,
    interleaved; returns ``(ann_s, exit_s, ExitRun)``."""
    from bsnn_bindsnet.simulation.early_exit import simulate_early_exit
    from bsnn_bindsnet.snn.network import build_network

    ann, sim, run = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ann_pass()
        ann.append(time.perf_counter() - t0)
        net = build_network(plan)
        t0 = time.perf_counter()
        run = simulate_early_exit(net, (x, y), t_star, threshold, batch_size=batch)
        sim.append(time.perf_counter() - t0)
    return min(ann), min(sim), run


def _data(dataset: str, split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    from bsnn_bindsnet.data.registry import load_dataset

    data = load_dataset(dataset, split)
    n = min(limit, len(data)) if limit else len(data)
    return (torch.stack([data[i][0] for i in range(n)]),
            torch.tensor([int(data[i][1]) for i in range(n)]))


def _plans(spec: str, percentiles: Sequence[float], calib) -> dict:
    """Percentile (None for a network without ReLU statistics) -> plan."""
    from torch import nn

    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.zoo.registry import load_spec

    model = load_spec(spec)
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        return {None: ann_to_bsnn(model, None, build=False)}
    return {p: ann_to_bsnn(model, calib, percentile=p, build=False) for p in percentiles}


def _timed_runs(plan, x, y, latencies, ann_pass, repeats: int, batch: int, eager: bool):
    """Best-of-``repeats`` seconds of one ANN pass and of ``simulate`` at each latency,
    interleaved; returns ``(ann_s, {T: (seconds, test accuracy, eager seconds or None)})``."""
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network

    ann, runs = [], {t: [] for t in latencies}
    slow = {t: [] for t in latencies}
    acc = {}
    for _ in range(repeats):
        for t in latencies:
            t0 = time.perf_counter()
            ann_pass()
            ann.append(time.perf_counter() - t0)
            net = build_network(plan)
            t0 = time.perf_counter()
            result = simulate(net, (x, y), t, batch_size=batch)
            runs[t].append(time.perf_counter() - t0)
            acc[t] = result.accuracy[-1]
            if eager:
                net = build_network(plan)
                t0 = time.perf_counter()
                simulate(net, (x, y), t, batch_size=batch, arithmetic="float",
                         neuron_kernel="eager")
                slow[t].append(time.perf_counter() - t0)
    return min(ann), {t: (min(runs[t]), acc[t], min(slow[t]) if eager else None)
                      for t in latencies}


def _exit_row(plan, xv, yv, x, y, t_star: int, args, ann_pass) -> dict:
    """Early exit at ``t_star``: the threshold chosen on val traces, then timed and scored
    on test."""
    import math

    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network

    val = simulate(build_network(plan), (xv, yv), t_star, batch_size=args.batch_size,
                   per_sample=True)
    chosen = choose_val_exit(val.step_predictions, val.step_confidence, val.labels, t_star,
                             args.exit_tolerance)
    row = {"tolerance": args.exit_tolerance, "val_accuracy_at_t_star": val.accuracy[-1],
           "threshold": None if math.isinf(chosen.threshold) else chosen.threshold,
           "val_accuracy": chosen.accuracy, "val_mean_exit": chosen.mean_exit}
    if row["threshold"] is None:
        return row
    ann_s, exit_s, run = _timed_exit(plan, x, y, t_star, chosen.threshold, ann_pass,
                                     args.repeats, args.batch_size)
    return {**row, "test_accuracy": run.accuracy,
            "test_mean_exit": float(run.exit_steps.double().mean()),
            "seconds": exit_s, "ann_seconds": ann_s, "ratio": exit_s / ann_s}


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default="zoo:fmnist-bwn", help="the ANN to come close to")
    p.add_argument("--model", action="append", required=True, metavar="NAME=SPEC")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--within", type=float, default=0.01, help="accuracy gap (0.01 = 1 point)")
    p.add_argument("--max-timesteps", type=int, default=32)
    p.add_argument("--percentiles", type=float, nargs="+", default=list(PERCENTILES),
                   help="standard conversion: the percentiles T* is chosen over, on val")
    p.add_argument("--at", type=int, nargs="*", default=[], metavar="T",
                   help="also time every network at these latencies")
    p.add_argument("--eager-too", action="store_true",
                   help="also time the float path with the eager IF step")
    p.add_argument("--early-exit", action="store_true",
                   help="also time early exit at T* (threshold chosen on val)")
    p.add_argument("--exit-tolerance", type=float, default=0.001,
                   help="val accuracy an exit may lose against the fixed T* run (0.001 = 0.1 point)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, default=0, help="first N test images (0 = all)")
    p.add_argument("--select-limit", type=int, default=0,
                   help="first N val images the choices are made on (0 = all)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/latency.json"))
    args = p.parse_args(argv)
    for spec in args.model:
        if "=" not in spec:
            p.error(f"--model {spec!r}: expected NAME=SPEC (zoo:NAME or a model.pt)")
    bad = [t for t in args.at if not 1 <= t <= args.max_timesteps]
    if bad:
        p.error(f"--at {bad[0]}: expected latencies in 1..--max-timesteps ({args.max_timesteps})")
    if not 0 <= args.exit_tolerance < 1:
        p.error(f"--exit-tolerance must be in [0, 1), got {args.exit_tolerance}")

    from benchmarks.binary_arithmetic import _cpu, fastest_ann
    from bsnn_bindsnet.checkpoint import atomic_write_json
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.fused_if import status
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.zoo.registry import load_spec

    load_before = os.getloadavg()
    x, y = _data(args.dataset, "test", args.limit)
    xv, yv = _data(args.dataset, "val", args.select_limit)
    reference = load_spec(args.reference)
    calib = load_dataset(args.dataset, "calib")  # thresholds only
    ref_acc, ref_val = _accuracy(reference, x, y), _accuracy(reference, xv, yv)
    ann_pass, form = fastest_ann(reference, x, args.batch_size)
    out = {"reference": args.reference, "reference_accuracy": ref_acc,
           "reference_val_accuracy": ref_val, "n": len(y), "n_val": len(yv),
           "ann_form": form, "threads": torch.get_num_threads(),
           "batch_size": args.batch_size, "neuron_kernel": status(), "models": {}}
    for spec in args.model:
        name, path = spec.split("=", 1)
        plans = _plans(path, args.percentiles, calib)
        curves = {k: simulate(build_network(plan), (xv, yv), args.max_timesteps,
                              batch_size=args.batch_size).accuracy for k, plan in plans.items()}
        key, t_star = choose_plan(plans, curves, ref_val, args.within)
        latencies = sorted({*args.at, *([t_star] if t_star else [])})
        ann_s, runs = (_timed_runs(plans[key], x, y, latencies, ann_pass, args.repeats,
                                   args.batch_size, args.eager_too) if latencies else (None, {}))
        row = {"percentile": key, "t_star": t_star, "val_curve": curves[key],
               "val_accuracy_at_t_star": curves[key][t_star - 1] if t_star else None,
               "ann_seconds": ann_s, "latencies": {}}
        for t, (sim_s, acc, eager_s) in runs.items():
            row["latencies"][t] = {"test_accuracy": acc, "val_accuracy": curves[key][t - 1],
                                   "seconds": sim_s, "ratio": sim_s / ann_s,
                                   "eager_float_ratio": eager_s / ann_s if eager_s else None}
            print(f"{name}{'' if key is None else f' (p{key:g})'}: T = {t}"
                  f"{' (T*)' if t == t_star else ''}: test {100 * acc:.2f} % (ANN "
                  f"{100 * ref_acc:.2f} %), val {100 * curves[key][t - 1]:.2f} % (ANN "
                  f"{100 * ref_val:.2f} %); {sim_s:.3f} s vs one ANN pass {ann_s:.3f} s: "
                  f"{sim_s / ann_s:.2f}x"
                  + (f" (float + eager IF: {eager_s / ann_s:.2f}x)" if eager_s else ""),
                  flush=True)
        if args.early_exit and t_star is not None:
            row["early_exit"] = _exit_row(plans[key], xv, yv, x, y, t_star, args, ann_pass)
            e = row["early_exit"]
            print(f"{name}: early exit at T* = {t_star} (threshold chosen on val: "
                  + ("none saves steps" if e["threshold"] is None else
                     f"{e['threshold']:.4g}, val {100 * e['val_accuracy']:.2f} %, mean exit "
                     f"{e['val_mean_exit']:.2f}")
                  + (")" if e["threshold"] is None else
                     f"): test {100 * e['test_accuracy']:.2f} %, mean exit "
                     f"{e['test_mean_exit']:.2f} steps; {e['seconds']:.3f} s vs one ANN pass "
                     f"{e['ann_seconds']:.3f} s: {e['ratio']:.2f}x"), flush=True)
        if t_star is None:
            print(f"{name}: never within {100 * args.within:g} point(s) of the ANN on val "
                  f"by T = {args.max_timesteps}", flush=True)
        out["models"][name] = row
    out["meta"] = {"torch": torch.__version__, "cpu": _cpu(), "cpu_count": os.cpu_count(),
                   "load_before": load_before, "load_after": os.getloadavg()}
    atomic_write_json(out, args.out)
    print(json.dumps({k: v for k, v in out.items() if k != "models"}, indent=1))
    return out


if __name__ == "__main__":
    main()
