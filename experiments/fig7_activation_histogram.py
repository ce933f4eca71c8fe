"""Fig. 7: histogram (log scale) of each layer's maximum activation per calibration sample,
with the thresholds that max-normalization and the percentiles would pick.

The long right tail is why the max (Rueckauer et al. 2017) sets thresholds too high and a
percentile of the activations converts with fewer timesteps.

    python -m experiments.fig7_activation_histogram --dataset fashion-mnist   # ~1 min
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.common import pyplot, savefig, trained_models, write_results
from experiments.harness import Setup, add_setup_arguments, load_data, setup_dict, setup_from

PERCENTILES = (100.0, 99.99, 99.9, 99.7)


@dataclass(frozen=True)
class Config(Setup):
    """The shared setup plus the network and the histogram bins."""

    model: str = "bwn"
    bins: int = 50


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(p, out_dir="results/fig7", timesteps=1)
    p.add_argument("--model", choices=("fp", "bwn"), default=Config.model)
    p.add_argument("--bins", type=int, default=Config.bins)
    return setup_from(p.parse_args(argv), Config)


def sample_maxima(model, points: dict[str, str], data, batch_size: int = 256) -> dict:
    """Layer -> ``[N]`` maximum of ``relu(output)`` of its ANN point, per sample."""
    import torch

    from bsnn_bindsnet.data.registry import make_loader

    modules = dict(model.named_children())
    maxima: dict[str, list] = {name: [] for name in points}
    hooks = [modules[point].register_forward_hook(
        lambda m, i, out, name=name: maxima[name].append(out.clamp(min=0).flatten(1).amax(1)))
        for name, point in points.items()]
    model.eval()
    try:
        with torch.no_grad():
            for x, _ in make_loader(data, batch_size=batch_size, shuffle=False):
                model(x)
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(v) for name, v in maxima.items()}


def main(argv: Sequence[str] | None = None) -> dict:
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    setup = parse_args(argv)
    paths = trained_models(setup.dataset, setup.runs_dir, smoke=setup.smoke)
    model = load_model(paths[setup.model])
    calib, _ = load_data(setup)
    plans = {q: ann_to_bsnn(model, calib, percentile=q, build=False) for q in PERCENTILES}
    points = {layer.name: layer.point for layer in plans[100.0].layers if layer.kind == "if"}
    maxima = sample_maxima(model, points, calib, setup.batch_size)
    lambdas = {q: plan.info.lambdas for q, plan in plans.items()}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(3.2 * len(points), 3), squeeze=False)
    for ax, name in zip(axes[0], points):
        ax.hist(maxima[name].numpy(), bins=setup.bins, color="0.6")
        for i, q in enumerate(PERCENTILES):
            ax.axvline(lambdas[q][name], color=f"C{i}", lw=1,
                       label="max" if q == 100 else f"{q}th pct")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("max activation per sample")
    axes[0][0].set_ylabel("samples (log)")
    axes[0][-1].legend(fontsize=7)
    savefig(fig, setup.out_dir / "fig7_activation_histogram.png")
    results = {name: {"sample_max_quantiles": {str(p): float(maxima[name].quantile(p / 100))
                                               for p in (50, 90, 99, 100)},
                      "lambda": {str(q): lambdas[q][name] for q in PERCENTILES}}
               for name in points}
    write_results(setup.out_dir, {**setup_dict(setup), "model": setup.model}, results)
    print(f"{setup.dataset} {setup.model}, {len(calib)} calibration samples: lambda per layer "
          "(threshold scale) by percentile of all activations\n")
    print("| layer | median sample max | " + " | ".join(
        "max" if q == 100 else f"{q}" for q in PERCENTILES) + " |")
    print("|---|---|" + "---|" * len(PERCENTILES))
    for name, r in results.items():
        print(f"| {name} | {r['sample_max_quantiles']['50']:.3f} | "
              + " | ".join(f"{r['lambda'][str(q)]:.3f}" for q in PERCENTILES) + " |")
    print(f"\nresults: {setup.out_dir}/results.json, fig7_activation_histogram.png")
    return results


if __name__ == "__main__":
    main()
