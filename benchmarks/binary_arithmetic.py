"""One B-SNN step in dense float ANN passes, float vs exact integer arithmetic (issue 21).

One table for the settings the README used to report apart (issue 6: batch 64, random
weights; issue 14: batch 256, real data) and VGG-15:

- ``vgg_small-b64``: ``vgg_small`` BWN, random weights and inputs, batch 64 (issue 6's case);
- ``fmnist-bwn-b256``: the zoo's ``fmnist-bwn`` converted (calibration split, percentile
  99.9), the first ``--limit`` Fashion-MNIST test images, batch 256;
- ``vgg15``: VGG-15 BWN (3x32x32, 100 classes), random weights and inputs (no CIFAR here).

Per setting, interleaved in one process, best of ``--repeats``: one dense pass of the ANN
over the same images in its fastest float form (NCHW, channels-last, or channels-last with
explicit strides for a one-channel input; whichever is faster
here; ``torch.inference_mode``; the same threads), and ``simulate()`` for ``--timesteps``
steps (counters on) with the float path and the eager IF step (``arithmetic="float"``,
``neuron_kernel="eager"``: the simulator before issue 21), the integer path with the eager
IF step, and the default (``"auto"``: exact integer kernels and the fused IF kernel where they
run), plus ``Network.run`` without monitors and,
if installed, SpikingJelly 2.0's single-step converted model. A step's cost is the run's
time / T; the ratio divides it by the ANN pass. ``identical`` checks, on the first batch,
that both arithmetics give the same spikes (per layer, per sample, per step and per neuron)
and the same readout potentials, bit for bit.

    python -m benchmarks.binary_arithmetic                       # all three, ~3 min idle
    python -m benchmarks.binary_arithmetic --settings fmnist-bwn-b256 --repeats 2

The JSON records the CPU, its flags, the threads and the load average before and after:
never time this while anything else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

SETTINGS = ("vgg_small-b64", "fmnist-bwn-b256", "vgg15")


def _cpu() -> dict:
    info = {"model": "unknown", "avx512": False, "vnni": False}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            info.update(avx512="avx512f" in flags, vnni=any("vnni" in f for f in flags),
                        avx2="avx2" in flags)
            break
    return info


def load_setting(name: str, limit: int, vgg15_batch: int):
    """``(ann, calibration, x, y, batch)`` of one setting."""
    from bsnn_bindsnet.training.models import get_model

    gen = torch.Generator().manual_seed(0)
    if name == "fmnist-bwn-b256":
        from bsnn_bindsnet.data.registry import load_dataset
        from bsnn_bindsnet.zoo.registry import load_spec

        test = load_dataset("fashion-mnist", "test")
        n = min(limit, len(test))
        x = torch.stack([test[i][0] for i in range(n)])
        y = torch.tensor([int(test[i][1]) for i in range(n)])
        return load_spec("zoo:fmnist-bwn"), load_dataset("fashion-mnist", "calib"), x, y, 256
    shape, classes, batch, model = {
        "vgg_small-b64": ((1, 28, 28), 10, 64, "vgg_small"),
        "vgg15": ((3, 32, 32), 100, vgg15_batch, "vgg15")}[name]
    torch.manual_seed(0)
    ann = get_model(model, quant="bwn", input_shape=shape, num_classes=classes).eval()
    x = torch.randn(batch, *shape, generator=gen)
    return ann, torch.randn(128, *shape, generator=gen), x, torch.randint(0, classes, (batch,),
                                                                        generator=gen), batch


def fastest_ann(ann, x: torch.Tensor, batch: int) -> tuple[Callable[[], None], str]:
    """One dense pass over ``x`` in the faster memory format on this machine."""
    import copy

    from bsnn_bindsnet.snn.functional import to_conv_layout

    cl = copy.deepcopy(ann).to(memory_format=torch.channels_last)
    xs = list(x.split(batch))
    xs_cl = [b.contiguous(memory_format=torch.channels_last) for b in xs]
    # one input channel: NCHW and NHWC strides coincide and PyTorch picks NCHW; explicit NHWC
    # strides (to_conv_layout) make oneDNN run the first convolution in NHWC as well
    xs_nhwc = [to_conv_layout(b) for b in xs]

    def run(model, batches):
        def go():
            with torch.inference_mode():
                for b in batches:
                    model(b)
        return go

    forms = {"NCHW": run(ann, xs), "channels-last": run(cl, xs_cl),
             "channels-last, explicit strides": run(cl, xs_nhwc)}
    best = {}
    for name, fn in forms.items():
        fn()
        best[name] = min(_timed(fn)[0] for _ in range(2))
    form = min(best, key=best.get)
    return forms[form], form


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def identical(plan, x, y, timesteps: int) -> bool:
    """The reference (float arithmetic, eager IF step) and the default (integer arithmetic,
    fused IF kernel) give the same spikes and readout potentials."""
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network

    runs = [simulate(build_network(plan), (x, y), timesteps, batch_size=len(x), per_sample=True,
                     per_neuron=True, arithmetic=a, neuron_kernel=k)
            for a, k in (("float", "eager"), ("auto", "auto"))]
    a, b = runs
    return (torch.equal(a.step_confidence, b.step_confidence)
            and torch.equal(a.step_predictions, b.step_predictions)
            and all(torch.equal(a.sample_spikes[k], b.sample_spikes[k]) for k in a.sample_spikes)
            and all(torch.equal(a.neuron_spikes[k], b.neuron_spikes[k]) for k in a.neuron_spikes))


def cases(ann, calib, plan, x, y, batch: int, timesteps: int, peer: bool) -> tuple[dict, dict]:
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.connections.integer import set_arithmetic
    from bsnn_bindsnet.snn.encoding import constant_current
    from bsnn_bindsnet.snn.network import build_network

    ann_pass, form = fastest_ann(ann, x, batch)
    nets = {k: build_network(plan) for k in ("float", "integer_eager", "integer", "bare")}
    ran: dict = {}

    def sim(key, arithmetic, kernel):
        def go():
            ran[key] = simulate(nets[key], (x, y), timesteps, batch_size=batch,
                                arithmetic=arithmetic, neuron_kernel=kernel).arithmetic
        return go

    def bare():  # the integer path without the counters and readout tracker
        net = nets["bare"]
        with torch.no_grad():
            for xb in x.split(batch):
                net.reset_state_variables()
                net.run(inputs={"input": constant_current(xb, timesteps)}, time=timesteps,
                        one_step=True)

    set_arithmetic(nets["bare"], "auto")
    fns = {"ann": ann_pass, "float": sim("float", "float", "eager"),
           "integer_eager": sim("integer_eager", "auto", "eager"),
           "integer": sim("integer", "auto", "auto"), "bare": bare}
    if peer:
        fns["spikingjelly"] = spikingjelly_case(ann, calib, x, batch, timesteps)
    return fns, {"ann_form": form, "ran": ran}


def spikingjelly_case(ann, calib, x, batch: int, timesteps: int) -> Callable[[], None]:
    from spikingjelly.activation_based import functional

    from bsnn_bindsnet.interop.spikingjelly import spikingjelly_convert

    snn, _ = spikingjelly_convert(ann, calib, percentile=99.9)

    def go():
        with torch.inference_mode():
            for xb in x.split(batch):
                functional.reset_net(snn)
                for _ in range(timesteps):
                    snn(xb)
    return go


def run_setting(name: str, args: argparse.Namespace) -> dict:
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    ann, calib, x, y, batch = load_setting(name, args.limit, args.vgg15_batch)
    plan = ann_to_bsnn(ann, calib, percentile=99.9, build=False)
    exact = identical(plan, x[:batch], y[:batch], args.timesteps)
    peer = args.spikingjelly and name != "vgg15"
    if peer:
        try:
            import spikingjelly  # noqa: F401
        except ImportError:
            peer = False
    fns, info = cases(ann, calib, plan, x, y, batch, args.timesteps, peer)
    for fn in fns.values():  # warm-up (oneDNN primitives, packed weights)
        fn()
    wall = {k: float("inf") for k in fns}
    cpu = dict(wall)
    for _ in range(args.repeats):  # interleaved
        for k, fn in fns.items():
            w, c = _timed(fn)
            wall[k], cpu[k] = min(wall[k], w), min(cpu[k], c)
    T = args.timesteps
    step = {k: (v / T / wall["ann"] if k != "ann" else 1.0) for k, v in wall.items()}
    step_cpu = {k: (v / T / cpu["ann"] if k != "ann" else 1.0) for k, v in cpu.items()}
    row = {"setting": name, "n": len(x), "batch": batch, "timesteps": T,
           "ann_form": info["ann_form"], "arithmetic": info["ran"].get("integer"),
           "identical": exact, "seconds": wall, "cpu_seconds": cpu,
           "step_over_ann": step, "step_over_ann_cpu_time": step_cpu,
           "speedup": wall["float"] / wall["integer"]}
    print(f"{name}: ANN pass {wall['ann']:.3f} s ({info['ann_form']}); one step / ANN: "
          + ", ".join(f"{k} {v:.2f}" for k, v in step.items() if k != "ann")
          + f" (CPU time: integer {step_cpu['integer']:.2f}, float {step_cpu['float']:.2f}); "
          f"identical: {exact}", flush=True)
    return row


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=SETTINGS)
    p.add_argument("--timesteps", type=int, default=8)
    p.add_argument("--limit", type=int, default=2048, help="Fashion-MNIST test images")
    p.add_argument("--vgg15-batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--spikingjelly", action=argparse.BooleanOptionalAction, default=True,
                   help="time SpikingJelly 2.0's single-step model too (if installed)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/binary_arithmetic.json"))
    args = p.parse_args(argv)
    if args.timesteps < 1 or args.limit < 1 or args.repeats < 1 or args.vgg15_batch < 1:
        p.error("--timesteps, --limit, --repeats and --vgg15-batch must be >= 1")
    from bsnn_bindsnet.checkpoint import atomic_write_json

    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cpu": _cpu(), "load_before": os.getloadavg()}
    rows = [run_setting(name, args) for name in args.settings]
    meta["load_after"] = os.getloadavg()
    atomic_write_json({"meta": meta, "rows": rows}, args.out)
    print("\n| setting | images | batch | T | ANN pass (s), form | float step / ANN | "
          "integer, eager IF / ANN | integer step / ANN | integer, no counters / ANN | "
          "SpikingJelly step / ANN | speed-up | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q = r["step_over_ann"]
        sj = f"{q['spikingjelly']:.2f}" if "spikingjelly" in q else "–"
        kernels = ", ".join(sorted(set((r["arithmetic"] or {}).values())))
        print(f"| {r['setting']} | {r['n']} | {r['batch']} | {r['timesteps']} | "
              f"{r['seconds']['ann']:.3f}, {r['ann_form']} | {q['float']:.2f} | "
              f"{q['integer_eager']:.2f} | "
              f"{q['integer']:.2f} ({kernels}) | {q['bare']:.2f} | {sj} | "
              f"{r['speedup']:.2f}x | {'yes' if r['identical'] else 'NO'} |")
    print(f"\n{meta}; results: {args.out}")
    return rows


if __name__ == "__main__":
    main()
