"""XNOR-BSNN Table I: a B-SNN trained directly with surrogate gradients (T = 8, the model's
input coding, batch-norm, residual inputs from layer l-2), folded and run in BindsNET, with
its accuracy, IFR per layer, normalized #OPS, the XNOR-array check of every binary MAC and
the crossbar row activations against a BNN of the same shape.

Needs the trained ``<prefix>-direct`` run (trained on the spot with ``--smoke``):

    bsnn train --preset fmnist-direct --route direct --out results/direct/fmnist-direct
    python -m experiments.xnor_bsnn_table1 --dataset fashion-mnist      # ~1.2 min, 2 CPU cores

Any other direct run (e.g. trained with ``bsnn train ... --coding current``): ``--model
RUN/model.pt``.

The paper's setting (CIFAR-100, VGG-11 residual schedule, T = 8) on a GPU:

    bsnn train --preset cifar100-direct --route direct --out RUNS/cifar100-direct \\
        --data-root DATA --device cuda
    python -m experiments.xnor_bsnn_table1 --dataset cifar100 --runs-dir RUNS \\
        --data-root DATA --device cuda
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common import preset_prefix, write_results


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"
    runs_dir: Path = Path("results/direct")
    model: Path | None = None
    out_dir: Path = Path("results/xnor_bsnn")
    limit: int | None = None
    batch_size: int = 256
    seed: int = 0
    data_root: str | None = None
    device: str = "cpu"
    smoke: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=Config.dataset)
    p.add_argument("--runs-dir", type=Path, help="folder holding <prefix>-direct/model.pt "
                   "(default: results/direct; with --smoke: OUT_DIR/models)")
    p.add_argument("--model", type=Path, help="a direct run's model.pt (default: "
                   "RUNS_DIR/<prefix>-direct/model.pt)")
    p.add_argument("--out-dir", type=Path, default=Config.out_dir)
    p.add_argument("--limit", type=int, help="only the first N test samples")
    p.add_argument("--batch-size", type=int, default=Config.batch_size)
    p.add_argument("--seed", type=int, default=Config.seed, help="Poisson generator seed")
    p.add_argument("--data-root")
    p.add_argument("--device", default=Config.device)
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, a tiny model trained on the spot, 64 samples: seconds")
    args = vars(p.parse_args(argv))
    if args["runs_dir"] is None:
        args["runs_dir"] = args["out_dir"] / "models" if args["smoke"] else Config.runs_dir
    cfg = Config(**args)
    if cfg.smoke:
        cfg = Config(**{**asdict(cfg), "dataset": "digits", "limit": 64})
    return cfg


def trained_direct(cfg: Config) -> Path:
    if cfg.model is not None:
        if not cfg.model.exists():
            raise FileNotFoundError(f"--model {cfg.model}: no such file; expected the "
                                    "model.pt of a `bsnn train --route direct` run")
        return cfg.model
    prefix = preset_prefix(cfg.dataset)
    path = cfg.runs_dir / f"{prefix}-direct" / "model.pt"
    if path.exists():
        return path
    if not cfg.smoke:
        raise FileNotFoundError(f"missing trained model {path}; train it with `bsnn train "
                                f"--preset {prefix}-direct --route direct --out {path.parent}`")
    from bsnn_bindsnet.ann.fit import RunConfig, fit

    fit(RunConfig(preset=f"{prefix}-direct", out_dir=str(path.parent), epochs=3,
                  progress=False), overwrite=True)
    return path


def pytorch_accuracy(model, test, cfg: Config) -> tuple[float, list]:
    """Accuracy and predictions of the PyTorch model on the same coded input as simulate()
    (the same Poisson draws: both use a generator seeded with ``cfg.seed``)."""
    import torch

    from bsnn_bindsnet.data import make_loader

    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    preds, correct, n = [], 0, 0
    model.eval().to(cfg.device)
    with torch.no_grad():
        for x, y in make_loader(test, batch_size=cfg.batch_size, shuffle=False):
            p = model(x.to(cfg.device), generator=gen).argmax(1).cpu()
            preds.append(p)
            correct += int((p == y).sum())
            n += len(y)
    return correct / n, torch.cat(preds).tolist()


def main(argv: Sequence[str] | None = None) -> dict:
    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.data import load_dataset
    from bsnn_bindsnet.direct.export import direct_to_bsnn
    from bsnn_bindsnet.imc import export_imc, row_activations, verify_network
    from bsnn_bindsnet.simulate import simulate

    cfg = parse_args(argv)
    model = load_model(trained_direct(cfg))
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root)
    if cfg.limit:
        test = Subset(test, range(min(cfg.limit, len(test))))
    acc_torch, preds_torch = pytorch_accuracy(model, test, cfg)
    network = direct_to_bsnn(model)
    plan = network.bsnn_plan
    T = model.timesteps
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    result = simulate(network, test, T, encoding=model.coding, generator=gen,
                      batch_size=cfg.batch_size, device=cfg.device, per_neuron=True)
    agree = sum(int(a == b) for a, b in zip(result.predictions.tolist(), preds_torch))
    ifr = result.firing_rates()
    # the XNOR array on every binary MAC of the trained network, over one batch's spikes
    x = torch.stack([test[i][0] for i in range(min(64, len(test)))])
    with torch.no_grad():
        _, outs = model.eval().cpu().run(model.encode(x, torch.Generator().manual_seed(cfg.seed)))
    spikes = {f"block{i}": o.flatten(0, 1) for i, o in enumerate(outs, start=1)}
    xnor_errors = verify_network(plan, spikes)
    rows = row_activations(plan, {k: v.cpu() for k, v in result.neuron_spikes.items()},
                           result.n)
    npz, manifest = export_imc(plan, cfg.out_dir / "imc")
    results = {"timesteps": T, "coding": model.coding, "n": result.n,
               "accuracy_pytorch": acc_torch,
               "accuracy_bindsnet": result.accuracy[-1], "accuracy_per_step": result.accuracy,
               "prediction_agreement": agree / result.n, "ifr": ifr,
               "ifr_per_step": result.rates_per_step(),
               "normalized_ops": normalized_ops(layer_ops(plan), ifr, timesteps=T),
               "xnor_max_error": xnor_errors, "row_activations": rows,
               "imc_export": [str(npz), str(manifest)], "seconds": result.seconds}
    write_results(cfg.out_dir, asdict(cfg), results)
    print(f"\n{cfg.dataset}, {result.n} test samples, T={T}, {model.coding} input "
          f"(seed {cfg.seed})\n")
    print(f"accuracy: PyTorch {100 * acc_torch:.2f} %, BindsNET {100 * result.accuracy[-1]:.2f} "
          f"% (same predictions on {100 * agree / result.n:.2f} % of samples)")
    print(f"normalized #OPS (hidden layers, 1.0 = one ANN pass): "
          f"{results['normalized_ops']:.3f}")
    print("IFR (spikes per neuron over T): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ifr.items()))
    print("spikes per neuron at steps 1..T:")
    for k, rates in results["ifr_per_step"].items():
        print(f"  {k}: " + " ".join(f"{r:.3f}" for r in rates))
    print(f"XNOR array vs float MAC, max |error| per binary layer: {xnor_errors}")
    print("\n| synapse | BNN row activations | B-SNN row activations | ratio |\n|---|---|---|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['bnn']:.0f} | {r['bsnn']:.0f} | {r['ratio']:.3f} |")
    print(f"\nresults: {cfg.out_dir}/results.json; crossbar export: {npz}, {manifest}")
    return results


if __name__ == "__main__":
    main()
