"""Simulation speed and memory: T dense ANN forwards vs the converted B-SNN in BindsNET's
``Network`` runner, interleaved in one process (issue 6).

Cases, per model and T (batch 64, random weights, constant-current input):

- ``ann``: T forward passes of the ANN (the dense lower bound), ``torch.inference_mode``;
- ``bsnn``: ``simulate()`` (BindsNET ``Network.run`` with our spike counters and readout
  tracker, one-step mode);
- ``bsnn-bare``: ``Network.run`` alone, no monitors (the counters' cost is ``bsnn`` / this);
- ``bsnn-record``: BindsNET ``Monitor`` recording every layer's spikes over all T steps;
- ``early-exit``: ``simulate_early_exit`` with the threshold that half the samples cross by
  T/2, so its timestep saving is measured, and compared with its wall-clock saving.

Each case runs ``--repeats`` times, interleaved; the best time is kept. Peak memory is the
largest resident-set growth seen during the case (sampled from /proc every 2 ms).
Never time this while anything else runs on the machine.

    python -m benchmarks.simulation_speed --models vgg_small --timesteps 32 128   # ~1 min
    python -m benchmarks.simulation_speed --models vgg15 --timesteps 32 --repeats 1   # ~1.5 min
    python -m benchmarks.simulation_speed --models vgg15 --timesteps 128 --repeats 1  # ~5 min

(2 CPU cores; the default, both models at both T with 2 repeats, takes ~15 min.)
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

MODELS = {"vgg_small": ((1, 28, 28), 10), "vgg15": ((3, 32, 32), 100)}


class PeakRSS:
    """Largest resident-set size seen while the context is open, minus the size at entry."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def grown(self) -> int:
        return self.peak - self.start


def build(name: str, batch: int):
    from bsnn_bindsnet.training.models import get_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    shape, classes = MODELS[name]
    torch.manual_seed(0)
    model = get_model(name, quant="bwn", input_shape=shape, num_classes=classes).eval()
    x = torch.randn(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    plan = ann_to_bsnn(model, torch.randn(128, *shape), percentile=99.9, build=False)
    return model, plan, x, y


def cases(model, plan, x, y, T: int) -> dict[str, Callable[[], object]]:
    from bindsnet.network.monitors import Monitor

    from bsnn_bindsnet.conversion.convert import INPUT
    from bsnn_bindsnet.simulation.early_exit import simulate_early_exit
    from bsnn_bindsnet.snn.encoding import constant_current
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate

    nets = {k: build_network(plan) for k in ("bsnn", "bare", "record", "exit")}
    probe = simulate(build_network(plan), (x, y), T, batch_size=len(x), per_sample=True)
    threshold = float(probe.step_confidence[T // 2 - 1].median())

    def ann():
        with torch.inference_mode():
            for _ in range(T):
                model(x)

    def bare():  # no_grad as simulate(): the same autograd mode, without the monitors
        with torch.no_grad():
            net = nets["bare"]
            net.reset_state_variables()
            net.run(inputs={INPUT: constant_current(x, T)}, time=T, one_step=True)

    def record():
        net = nets["record"]
        for name in net.layers:
            net.add_monitor(Monitor(net.layers[name], ("s",), time=T), name=f"rec_{name}")
        try:
            with torch.no_grad():
                net.reset_state_variables()
                net.run(inputs={INPUT: constant_current(x, T)}, time=T, one_step=True)
        finally:
            for name in list(net.monitors):
                del net.monitors[name]

    def early():
        return simulate_early_exit(nets["exit"], (x, y), T, threshold, batch_size=len(x))

    return {"ann": ann,
            "bsnn": lambda: simulate(nets["bsnn"], (x, y), T, batch_size=len(x)),
            "bsnn-bare": bare, "bsnn-record": record, "early-exit": early}


def run(models: Sequence[str], timesteps: Sequence[int], batch: int, repeats: int) -> list[dict]:
    rows = []
    for name in models:
        model, plan, x, y = build(name, batch)
        for T in timesteps:
            fns = cases(model, plan, x, y, T)
            for fn in fns.values():  # warm-up
                fn()
            best = {k: float("inf") for k in fns}
            memory = {k: 0 for k in fns}
            mean_exit = None
            for _ in range(repeats):
                for k, fn in fns.items():
                    with PeakRSS() as mem:
                        t0 = time.perf_counter()
                        out = fn()
                        best[k] = min(best[k], time.perf_counter() - t0)
                    memory[k] = max(memory[k], mem.grown)
                    if k == "early-exit":
                        mean_exit = out.mean_exit
            step_saving = 1 - mean_exit / T
            wall_saving = 1 - best["early-exit"] / best["bsnn"]
            row = {"model": name, "timesteps": T, "batch": batch, "seconds": best,
                   "peak_rss_growth_mb": {k: v / 2**20 for k, v in memory.items()},
                   "ratio_to_ann": {k: v / best["ann"] for k, v in best.items()},
                   "counter_cost": best["bsnn"] / best["bsnn-bare"] - 1,
                   "early_exit_mean_step": mean_exit, "timestep_saving": step_saving,
                   "wall_saving": wall_saving,
                   "wall_vs_timestep_saving": wall_saving / step_saving if step_saving else None}
            rows.append(row)
            print(f"{name} T={T}: " + ", ".join(f"{k} {v:.2f}x" for k, v in
                                                row["ratio_to_ann"].items())
                  + f" (ANN {best['ann']:.2f} s); counters +{100 * row['counter_cost']:.1f} %; "
                  f"early exit saves {100 * step_saving:.0f} % of steps, "
                  f"{100 * wall_saving:.0f} % of time", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=tuple(MODELS))
    p.add_argument("--timesteps", type=int, nargs="+", default=(32, 128))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/simulation_speed.json"))
    args = p.parse_args(argv)
    rows = run(args.models, args.timesteps, args.batch, args.repeats)
    from bsnn_bindsnet.checkpoint import atomic_write_json

    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    atomic_write_json({"meta": meta, "rows": rows}, args.out)
    print("\n| model | T | B-SNN / ANN | bare / ANN | recording / ANN | early exit / ANN | "
          "counters | steps saved | time saved |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q = r["ratio_to_ann"]
        print(f"| {r['model']} | {r['timesteps']} | {q['bsnn']:.2f} | {q['bsnn-bare']:.2f} | "
              f"{q['bsnn-record']:.2f} | {q['early-exit']:.2f} | "
              f"{100 * r['counter_cost']:+.1f} % | {100 * r['timestep_saving']:.0f} % | "
              f"{100 * r['wall_saving']:.0f} % |")
    print(f"\n{json.dumps(meta)}; results: {args.out}")
    return rows


if __name__ == "__main__":
    main()
