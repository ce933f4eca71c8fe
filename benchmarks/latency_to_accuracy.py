"""Wall time for a B-SNN to come within 1 point of the BWN, in dense ANN passes (issue 14).

For each converted network: ``T*`` is chosen on the val split (training-set images that no
model trains on; ``--select-limit`` of them): the first step whose validation accuracy is
within ``--within`` of the reference ANN's (the ReLU BWN) validation accuracy
(:func:`choose_t_star`; the test set plays no part in it). Then ``simulate`` to ``T*`` on the
test set is timed (and its test accuracy at ``T*`` reported) against one dense forward pass
of the reference ANN over the same set (same batch size, same threads,
``torch.inference_mode``), interleaved, best of ``--repeats``. The ratio is what the issue's aim bounds (≤ 4).

    python -m benchmarks.latency_to_accuracy --reference zoo:fmnist-bwn \\
        --model relu=zoo:fmnist-bwn --model qcfs-L2-snn=runs/fmnist-qcfs-snn-L2/model.pt

ReLU layers get percentile thresholds (``--percentile``, calibration split), QCFS layers
θ = λ (no statistics: the converter takes calibration data only where a layer needs it). Never time this while anything else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch


def _ann_pass(model, x: torch.Tensor, batch_size: int) -> float:
    """Seconds of one dense pass over ``x``."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        for xb in x.split(batch_size):
            model(xb)
    return time.perf_counter() - t0


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


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default="zoo:fmnist-bwn", help="the ANN to come close to")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--within", type=float, default=0.01, help="accuracy gap (0.01 = 1 point)")
    p.add_argument("--max-timesteps", type=int, default=32)
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, default=0, help="first N test images (0 = all)")
    p.add_argument("--select-limit", type=int, default=0,
                   help="first N val images T* is chosen on (0 = all)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/latency.json"))
    args = p.parse_args(argv)

    from bsnn_bindsnet.checkpoint import atomic_write_json
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.zoo.registry import load_spec

    test = load_dataset(args.dataset, "test")
    n = min(args.limit, len(test)) if args.limit else len(test)
    x = torch.stack([test[i][0] for i in range(n)])
    y = torch.tensor([int(test[i][1]) for i in range(n)])
    val = load_dataset(args.dataset, "val")
    n_val = min(args.select_limit, len(val)) if args.select_limit else len(val)
    xv = torch.stack([val[i][0] for i in range(n_val)])
    yv = torch.tensor([int(val[i][1]) for i in range(n_val)])
    reference = load_spec(args.reference)
    calib = load_dataset(args.dataset, "calib")  # thresholds only
    ref_acc, ref_val = _accuracy(reference, x, y), _accuracy(reference, xv, yv)
    target = ref_val - args.within
    out = {"reference": args.reference, "reference_accuracy": ref_acc,
           "reference_val_accuracy": ref_val, "n": n, "n_val": n_val,
           "threads": torch.get_num_threads(), "batch_size": args.batch_size, "models": {}}
    for spec in args.model:
        name, path = spec.split("=", 1)
        plan = ann_to_bsnn(load_spec(path), calib, percentile=args.percentile, build=False)

        val_curve = simulate(build_network(plan), (xv, yv), args.max_timesteps,
                             batch_size=args.batch_size).accuracy
        t_star = choose_t_star(val_curve, ref_val, args.within)
        row = {"t_star": t_star, "val_accuracy_at_t_star": None if t_star is None else
               val_curve[t_star - 1], "accuracy_at_t_star": None}
        if t_star is not None:
            snn, ann = [], []
            for _ in range(args.repeats):  # interleaved: both see the same machine state
                ann.append(_ann_pass(reference, x, args.batch_size))
                net = build_network(plan)
                t0 = time.perf_counter()
                result = simulate(net, (x, y), t_star, batch_size=args.batch_size)
                snn.append(time.perf_counter() - t0)
            row.update(accuracy_at_t_star=result.accuracy[-1], ann_seconds=min(ann),
                       bsnn_seconds=min(snn), ratio=min(snn) / min(ann))
        out["models"][name] = row
        print(f"{name}: T* = {t_star} chosen on {n_val} val images (reference "
              f"{100 * ref_val:.2f} %, target {100 * target:.2f} %)"
              + (f"; test {100 * row['accuracy_at_t_star']:.2f} % at T* (reference "
                 f"{100 * ref_acc:.2f} %)" if t_star else "")
              + (f", {row['bsnn_seconds']:.2f} s vs one ANN pass "
                                          f"{row['ann_seconds']:.2f} s: {row['ratio']:.2f}x"
                                          if t_star else ", never reached"), flush=True)
    atomic_write_json(out, args.out)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
