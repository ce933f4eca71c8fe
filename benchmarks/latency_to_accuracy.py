"""Wall time for a B-SNN to come within 1 point of the BWN, in dense ANN passes (issue 14).

For each converted network: the test-set accuracy curve gives ``T*``, the first step whose
accuracy is within ``--within`` of the reference ANN (the ReLU BWN); then ``simulate`` to
``T*`` on the whole test set is timed against one dense forward pass of the reference ANN
over the same set (same batch size, same threads, ``torch.inference_mode``), interleaved, best
of ``--repeats``. The ratio is what the issue's aim bounds (≤ 4).

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
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/latency.json"))
    args = p.parse_args(argv)

    from bsnn_bindsnet.checkpoint import atomic_write_json
    from bsnn_bindsnet.convert import ann_to_bsnn
    from bsnn_bindsnet.data import load_dataset
    from bsnn_bindsnet.network import build_network
    from bsnn_bindsnet.simulate import simulate
    from bsnn_bindsnet.zoo import load_spec

    test = load_dataset(args.dataset, "test")
    n = min(args.limit, len(test)) if args.limit else len(test)
    x = torch.stack([test[i][0] for i in range(n)])
    y = torch.tensor([int(test[i][1]) for i in range(n)])
    reference = load_spec(args.reference)
    calib = load_dataset(args.dataset, "calib")
    with torch.inference_mode():
        ref_acc = float(torch.cat([reference(xb).argmax(1) for xb in x.split(256)]).eq(y)
                        .double().mean())
    target = ref_acc - args.within
    out = {"reference": args.reference, "reference_accuracy": ref_acc, "n": n,
           "threads": torch.get_num_threads(), "batch_size": args.batch_size, "models": {}}
    for spec in args.model:
        name, path = spec.split("=", 1)
        plan = ann_to_bsnn(load_spec(path), calib, percentile=args.percentile, build=False)

        curve = simulate(build_network(plan), (x, y), args.max_timesteps,
                         batch_size=args.batch_size).accuracy
        t_star = next((t + 1 for t, a in enumerate(curve) if a >= target), None)
        row = {"t_star": t_star, "accuracy_at_t_star": None if t_star is None else
               curve[t_star - 1]}
        if t_star is not None:
            snn, ann = [], []
            for _ in range(args.repeats):  # interleaved: both see the same machine state
                ann.append(_ann_pass(reference, x, args.batch_size))
                net = build_network(plan)
                t0 = time.perf_counter()
                simulate(net, (x, y), t_star, batch_size=args.batch_size)
                snn.append(time.perf_counter() - t0)
            row.update(ann_seconds=min(ann), bsnn_seconds=min(snn),
                       ratio=min(snn) / min(ann))
        out["models"][name] = row
        print(f"{name}: T* = {t_star} (reference {100 * ref_acc:.2f} %, target "
              f"{100 * target:.2f} %)" + (f", {row['bsnn_seconds']:.2f} s vs one ANN pass "
                                          f"{row['ann_seconds']:.2f} s: {row['ratio']:.2f}x"
                                          if t_star else ", never reached"), flush=True)
    atomic_write_json(out, args.out)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
