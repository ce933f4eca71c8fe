"""XNOR-BSNN Table I: a B-SNN trained directly with surrogate gradients (T = 8, the model's
input coding, batch-norm, residual inputs from layer l-2), folded and run in BindsNET, with
its accuracy, IFR per layer, normalized #OPS, the XNOR-array check of every binary MAC on
every test image (XNOR-BSNN Eq. 8-11), and the crossbar energy (active rows per inference)
and area (cells) against a BNN of the same shape (Lu & Sengupta 2020, Fig. 2: a BNN input
drives one of its two rows whatever its value, a B-SNN input one row and only on a spike; a
B-SNN needs one row per input plus a dummy column). The B-SNN draws less array energy
exactly when its inputs spike less than once per inference, averaged with each input
weighted by its fan-out (the output positions it feeds): the break-even is 1.0.

Needs the trained ``<prefix>-direct`` run (trained on the spot with ``--smoke``):

    bsnn train --preset fmnist-direct --route direct --out results/direct/fmnist-direct
    python -m experiments.xnor_bsnn_table1 --dataset fashion-mnist      # 2 CPU cores
    # the XNOR check of all 10,000 test images adds ~6 min on 2 busy cores (~2.4 s per 64
    # images, about half of it the forward pass that records the spikes); --xnor-images N

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

from experiments.common import claim_out_dir, preset_prefix, write_results


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
    xnor_images: int = 0
    overwrite: bool = False


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
    p.add_argument("--xnor-images", type=int, default=Config.xnor_images,
                   help="check the XNOR array on the first N test images (0 = all, default)")
    p.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="digits, a tiny model trained on the spot, 64 samples: seconds")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results.json in --out-dir (refused otherwise)")
    args = vars(p.parse_args(argv))
    if args["runs_dir"] is None:
        args["runs_dir"] = args["out_dir"] / "models" if args["smoke"] else Config.runs_dir
    cfg = Config(**args)
    if cfg.xnor_images < 0:
        raise SystemExit(f"--xnor-images must be >= 0 (0 = all), got {cfg.xnor_images}")
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
    from bsnn_bindsnet.training.fit import RunConfig, fit

    resume = (path.parent / "checkpoint.pt").exists()  # never replace a run (issue 25)
    print(f"{'resuming' if resume else 'training'} {prefix}-direct (3 epochs) in {path.parent}",
          flush=True)
    fit(RunConfig(preset=f"{prefix}-direct", out_dir=str(path.parent), epochs=3,
                  progress=False), resume=resume)
    return path


def pytorch_accuracy(model, test, cfg: Config) -> tuple[float, list]:
    """Accuracy and predictions of the PyTorch model on the same coded input as simulate()
    (the same Poisson draws: both use a generator seeded with ``cfg.seed``)."""
    import torch

    from bsnn_bindsnet.data.registry import make_loader

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


def xnor_check(model, plan, test, cfg: Config) -> dict:
    """Every binary MAC of the trained network on the XNOR array model vs float arithmetic,
    over the spikes of the first ``cfg.xnor_images`` test images (0 = all), batch by batch:
    the max error per layer over all batches and how much was checked."""
    import time

    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import make_loader
    from bsnn_bindsnet.imc import verify_network, xnor_macs_per_frame

    n = len(test) if cfg.xnor_images == 0 else min(cfg.xnor_images, len(test))
    data = test if n == len(test) else Subset(test, range(n))
    gen = torch.Generator().manual_seed(cfg.seed)
    model = model.eval().cpu()
    errors: dict[str, float] = {}
    start = time.perf_counter()
    for x, _ in make_loader(data, batch_size=cfg.batch_size, shuffle=False):
        with torch.no_grad():
            _, outs = model.run(model.encode(x, gen))
        spikes = {f"block{i}": o.flatten(0, 1) for i, o in enumerate(outs, start=1)}
        for k, e in verify_network(plan, spikes).items():
            errors[k] = max(errors.get(k, 0.0), e)
    frames = n * model.timesteps
    per_frame = xnor_macs_per_frame(plan)["total"]
    return {"max_error": errors, "images": n, "frames": frames,
            "dot_products": per_frame["dot_products"] * frames,
            "bit_macs": per_frame["bit_macs"] * frames,
            "seconds": time.perf_counter() - start}


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def main(argv: Sequence[str] | None = None) -> dict:
    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
    from bsnn_bindsnet.analysis.stats import accuracy_interval, format_accuracy
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.direct.export import direct_to_bsnn
    from bsnn_bindsnet.imc import array_area, export_imc, row_energy
    from bsnn_bindsnet.simulation.simulate import simulate

    cfg = parse_args(argv)
    claim_out_dir(cfg.out_dir, cfg.overwrite)  # the overwrite rule and the lock, first
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
    check = xnor_check(model, plan, test, cfg)
    xnor_errors = check.pop("max_error")
    energy = row_energy(plan, {k: v.cpu() for k, v in result.neuron_spikes.items()}, result.n)
    area = array_area(plan)
    npz, manifest = export_imc(plan, cfg.out_dir / "imc")
    results = {"timesteps": T, "coding": model.coding, "n": result.n,
               "accuracy_pytorch": acc_torch,
               "accuracy_bindsnet": result.accuracy[-1],
               "accuracy_bindsnet_interval": accuracy_interval(result.accuracy[-1], result.n),
               "accuracy_per_step": result.accuracy,
               "prediction_agreement": agree / result.n, "ifr": ifr,
               "ifr_per_step": result.rates_per_step(),
               "normalized_ops": normalized_ops(layer_ops(plan), ifr, timesteps=T),
               "xnor_max_error": xnor_errors, "xnor_check": check,
               "row_energy": energy, "array_area": area,
               "imc_export": [str(npz), str(manifest)], "seconds": result.seconds}
    write_results(cfg.out_dir, asdict(cfg), results)
    print(f"\n{cfg.dataset}, {result.n} test samples, T={T}, {model.coding} input "
          f"(seed {cfg.seed})\n")
    print(f"accuracy: PyTorch {format_accuracy(acc_torch, result.n)} %, BindsNET "
          f"{format_accuracy(result.accuracy[-1], result.n)} % (same predictions on "
          f"{100 * agree / result.n:.2f} % of samples; [95 % interval] below 10,000 images)")
    print(f"normalized #OPS (hidden layers, 1.0 = one ANN pass): "
          f"{results['normalized_ops']:.3f}")
    print("IFR (spikes per neuron over T): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ifr.items()))
    print("spikes per neuron at steps 1..T:")
    for k, rates in results["ifr_per_step"].items():
        print(f"  {k}: " + " ".join(f"{r:.3f}" for r in rates))
    print(f"XNOR array vs float MAC on {check['images']} test images ({check['frames']} "
          f"frames, {check['dot_products']:,} dot products = {check['bit_macs']:,} binary "
          f"MACs, {check['seconds']:.1f} s), max |error| per binary layer: {xnor_errors}")
    print("\nArray energy per inference (Lu & Sengupta Fig. 2): active rows; spikes/input = "
          "spikes per input neuron per inference weighted by fan-out (= B-SNN/BNN); the "
          "B-SNN draws less below the break-even\n")
    print(_table(["synapse", "BNN active rows", "B-SNN active rows", "ratio",
                  "spikes/input (fan-out weighted)", "spikes/input (unweighted)",
                  "break-even"],
                 [[k, f"{r['bnn']:.0f}", f"{r['bsnn']:.0f}", f"{r['ratio']:.3f}",
                   f"{r['spikes_per_input']:.3f}", f"{r['mean_spikes']:.3f}",
                   f"{r['break_even']:.1f}"] for k, r in energy.items()]))
    print("\nArray area (Lu & Sengupta Fig. 2): BNN 2 rows per input x R columns; B-SNN 1 "
          "row per input x (R + 1 dummy) columns\n")
    print(_table(["layer", "BNN rows x cols", "BNN cells", "B-SNN rows x cols", "B-SNN cells",
                  "ratio"],
                 [[k, f"{a['bnn_rows']} x {a['bnn_cols']}" if "bnn_rows" in a else "",
                   a["bnn_cells"], f"{a['bsnn_rows']} x {a['bsnn_cols']}"
                   if "bsnn_rows" in a else "", a["bsnn_cells"], f"{a['ratio']:.3f}"]
                  for k, a in area.items()]))
    print(f"\nresults: {cfg.out_dir}/results.json; crossbar export: {npz}, {manifest}")
    return results


if __name__ == "__main__":
    main()
