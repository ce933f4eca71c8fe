"""``bsnn train``, ``bsnn evaluate`` and ``bsnn presets``.

Nothing heavy is imported at module level: the ``check_*`` functions run before torch is
imported, the ``run_*`` functions import what they need.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bsnn_bindsnet.cli.checks import (RUN_FILES, at_least, check_data_root, check_dataset,
                                      check_model_input, check_no_file_parent, check_number,
                                      claim_output, command, known_neurons, known_v_inits,
                                      model_dataset, same_file, torch_device)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a constrained ANN (FP, hybrid BWN, BWN from "
                       "scratch or XNOR-Net)", description="Train with a preset recipe; "
                       "see `bsnn presets`.")
    p.add_argument("--preset", required=True, help="e.g. fmnist-fp, fmnist-bwn (see `bsnn presets`)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, model.pt, metrics)")
    p.add_argument("--init-from", help="model.pt of a full-precision run (hybrid binarization)")
    p.add_argument("--dataset", help="train on this registered dataset instead of the "
                   "preset's, e.g. --preset fmnist-fp --dataset mnist (see `bsnn presets`)")
    p.add_argument("--quant", choices=("fp", "bwn", "xnor"), help="override the preset's precision")
    p.add_argument("--route", choices=("ann", "direct"),
                   help="ann: train an ANN to convert; direct: train the B-SNN itself with "
                        "surrogate gradients (the *-direct presets). Checked against the preset")
    p.add_argument("--pool", metavar="PLACEMENT",
                   help="pooling placement: avg-before, avg-after, max-before or max-after "
                        "(the ReLU); default: the preset's (avg-before)")
    p.add_argument("--blocks", nargs="+", metavar="CODE",
                   help="direct route: block codes, e.g. c32p c32 c32pr f256r (default: the "
                        "preset's)")
    p.add_argument("--coding", choices=("current", "poisson", "poisson-intensity"),
                   help="direct route: input coding (default: the preset's)")
    p.add_argument("--v-init", choices=known_v_inits(),
                   help="direct route: initial membrane potential 0 or theta/2 (default: "
                        "the preset's, zero)")
    p.add_argument("--reset", choices=known_neurons(),
                   help="direct route: the neuron model (default: subtract, the paper's soft "
                        "reset; a plugin's if the direct route supports it)")
    p.add_argument("--residual-factor", type=float, metavar="F",
                   help="direct route: weight f of the residual input from block l-2 "
                        "(default: the preset's, 1 = the paper's indicator)")
    p.add_argument("--readout-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="direct route: batch-norm on the readout current at every step "
                        "(XNOR-BSNN Algorithm 1, step 19; default: the preset's, on)")
    p.add_argument("--bn-affine", action=argparse.BooleanOptionalAction, default=None,
                   help="direct route: batch-norm with a learned scale and shift (default: on; "
                        "--no-bn-affine is the paper's batch-norm without them)")
    p.add_argument("--levels", type=int, metavar="L",
                   help="QCFS presets (*-qcfs-*): quantization levels L of the activation "
                        "(default: the preset's, 4)")
    p.add_argument("--snn-timesteps", type=int, nargs="+", metavar="T",
                   help="*-qcfs-snn presets: the latencies the B-SNN is trained at, one drawn "
                        "per batch; the first is the one evaluated (default: 2 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--betas", type=float, nargs=2, metavar=("BETA1", "BETA2"),
                   help="Adam betas, e.g. 0 0.999")
    p.add_argument("--train-subset", type=int, help="train on the first N training samples")
    p.add_argument("--data-root", help="folder holding the dataset files")
    p.add_argument("--download", action="store_true", help="download the dataset (needs internet)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")


def print_epoch(row: dict) -> None:
    """One line per finished epoch."""
    from bsnn_bindsnet.training.fit import format_epoch

    print(format_epoch(row), flush=True)


@command
def run_train(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.training.fit import RunConfig, fit
    from bsnn_bindsnet.training.recipes import PRESETS, get_preset

    route = get_preset(args.preset).route
    if args.route and args.route != route:
        fitting = ", ".join(sorted(k for k, v in PRESETS.items() if v.route == args.route))
        raise ValueError(f"--route {args.route}: preset {args.preset!r} is a {route}-route "
                         f"preset; expected one of {fitting}")

    cfg = RunConfig(preset=args.preset, out_dir=args.out, seed=args.seed, dataset=args.dataset,
                    quant=args.quant, pool=args.pool, blocks=tuple(args.blocks) if args.blocks else None,
                    coding=args.coding, v_init=args.v_init, reset=args.reset,
                    residual_factor=args.residual_factor, readout_norm=args.readout_norm,
                    bn_affine=args.bn_affine, levels=args.levels,
                    snn_timesteps=tuple(args.snn_timesteps) if args.snn_timesteps else None,
                    init_from=args.init_from,
                    epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                    betas=tuple(args.betas) if args.betas else None,
                    train_subset=args.train_subset, data_root=args.data_root,
                    download=args.download, device=args.device, num_workers=args.num_workers,
                    progress=args.progress)
    history = fit(cfg, resume=args.resume, overwrite=args.overwrite, on_epoch=print_epoch)
    from bsnn_bindsnet.simulation.distributed import world

    if world()[0] != 0:  # under torchrun, rank 0 reports
        return 0
    last = history[-1]
    print(f"{args.preset}: test accuracy {last['test_acc']:.4f} after {last['epoch']} epochs "
          f"({sum(r['train_seconds'] for r in history):.1f} s training); model: {args.out}/model.pt")
    return 0


def check_train(args: argparse.Namespace) -> None:
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--train-subset", args.train_subset), ("--levels", args.levels),
                        *(("--snn-timesteps", t) for t in args.snn_timesteps or ())):
        at_least(flag, value, 1)
    check_number("--lr", args.lr, low=0, low_open=True)
    for beta in args.betas or ():
        check_number("--betas", beta, low=0, high=1)
    check_number("--residual-factor", args.residual_factor, low=-math.inf)
    check_dataset(args.dataset)
    check_data_root(args.data_root, args.download)
    at_least("--num-workers", args.num_workers, 0)
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite: pass one (continue the run in --out, or "
                         "start it again)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for the run "
                         f"({', '.join(RUN_FILES)})")
    check_no_file_parent("--out", out)
    if args.init_from:
        check_model_input(args, "init_from", "--init-from")
        if any(same_file(args.init_from, out / name) for name in RUN_FILES):
            raise ValueError(f"--init-from {args.init_from} is a file of --out {out}, which "
                             "this run rewrites; choose another --out")
    claim_output(args, out, lambda: check_run_folder(out, resume=args.resume,
                                                     overwrite=args.overwrite))


def check_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """``--resume`` finds a checkpoint in ``out``; otherwise ``out`` holds no run files, or
    ``--overwrite`` was given."""
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {out / 'checkpoint.pt'}")
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        if "checkpoint.pt" in found:
            raise FileExistsError(f"{out} already holds a training run; pass --resume to "
                                  "continue it or --overwrite to start again (or choose "
                                  "another --out)")
        raise FileExistsError(f"{out} already holds {', '.join(found)} (no checkpoint.pt to "
                              "resume); pass --overwrite to replace them or choose another "
                              "--out")


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a saved model.pt")
    p.add_argument("model", help="model.pt written by `bsnn train`")
    p.add_argument("--dataset", help="defaults to the dataset the model was trained on")
    p.add_argument("--split", default="test", choices=("train", "val", "calib", "test"))
    p.add_argument("--data-root")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")


@command
def run_evaluate(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset, make_loader
    from bsnn_bindsnet.training.loop import evaluate

    device = torch_device(args.device)
    dataset = model_dataset(args.model, args.dataset)
    model = load_model(args.model).to(device)
    data = load_dataset(dataset, args.split, data_root=args.data_root)
    stats = evaluate(model, make_loader(data, batch_size=args.batch_size, shuffle=False),
                     device=device)
    print(json.dumps({"model": args.model, "dataset": dataset, "split": args.split,
                      "accuracy": stats.acc, "loss": stats.loss, "n": stats.n}))
    return 0


def check_evaluate(args: argparse.Namespace) -> None:
    check_model_input(args, "model")
    check_dataset(args.dataset)
    check_data_root(args.data_root)
    at_least("--batch-size", args.batch_size, 1)


def run_presets(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.training.recipes import PRESETS

    for name, p in sorted(PRESETS.items()):
        r = p.recipe
        print(f"{name:22s} {p.dataset:14s} {p.model:15s} {p.quant:5s} {r.optimizer} lr={r.lr:g} "
              f"batch={r.batch_size} epochs={r.epochs}  {p.description}")
    return 0
