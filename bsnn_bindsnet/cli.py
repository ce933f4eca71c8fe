"""The ``bsnn`` console script.

Sub-commands import what they need when they run, so ``bsnn --help`` stays fast and does not
import BindsNET.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from bsnn_bindsnet import __version__

# Errors that come from what the user asked for: reported in one line, exit status 2.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a constrained ANN (FP, hybrid BWN, BWN from "
                       "scratch or XNOR-Net)", description="Train with a preset recipe; "
                       "see `bsnn presets`.")
    p.add_argument("--preset", required=True, help="e.g. fmnist-fp, fmnist-bwn (see `bsnn presets`)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, model.pt, metrics)")
    p.add_argument("--init-from", help="model.pt of a full-precision run (hybrid binarization)")
    p.add_argument("--quant", choices=("fp", "bwn", "xnor"), help="override the preset's precision")
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
    """One line per finished epoch (also used by the experiment scripts)."""
    print(f"epoch {row['epoch']}: lr {row['lr']:.3g} train loss {row['train_loss']:.4f} "
          f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f} "
          f"({row['train_seconds']:.1f} s)", flush=True)


def _run_train(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.ann.fit import RunConfig, fit

    cfg = RunConfig(preset=args.preset, out_dir=args.out, seed=args.seed, quant=args.quant,
                    init_from=args.init_from, epochs=args.epochs, lr=args.lr,
                    batch_size=args.batch_size,
                    betas=tuple(args.betas) if args.betas else None,
                    train_subset=args.train_subset, data_root=args.data_root,
                    download=args.download, device=args.device, num_workers=args.num_workers,
                    progress=args.progress)
    history = fit(cfg, resume=args.resume, overwrite=args.overwrite, on_epoch=print_epoch)
    last = history[-1]
    print(f"{args.preset}: test accuracy {last['test_acc']:.4f} after {last['epoch']} epochs "
          f"({sum(r['train_seconds'] for r in history):.1f} s training); model: {args.out}/model.pt")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a saved model.pt")
    p.add_argument("model", help="model.pt written by `bsnn train`")
    p.add_argument("--dataset", help="defaults to the dataset the model was trained on")
    p.add_argument("--split", default="test", choices=("train", "calib", "test"))
    p.add_argument("--data-root")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from bsnn_bindsnet.ann.train import evaluate
    from bsnn_bindsnet.checkpoint import load_model, read_model_file
    from bsnn_bindsnet.data import load_dataset, make_loader

    dataset = args.dataset or read_model_file(args.model)["meta"].get("dataset")
    if not dataset:
        raise ValueError(f"{args.model} does not record its dataset; pass --dataset")
    model = load_model(args.model).to(torch.device(args.device))
    data = load_dataset(dataset, args.split, data_root=args.data_root)
    stats = evaluate(model, make_loader(data, batch_size=args.batch_size, shuffle=False),
                     device=args.device)
    print(json.dumps({"model": args.model, "dataset": dataset, "split": args.split,
                      "accuracy": stats.acc, "loss": stats.loss, "n": stats.n}))
    return 0


def _run_presets(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.ann.recipes import PRESETS

    for name, p in sorted(PRESETS.items()):
        r = p.recipe
        print(f"{name:22s} {p.dataset:14s} {p.model:15s} {p.quant:5s} {r.optimizer} lr={r.lr:g} "
              f"batch={r.batch_size} epochs={r.epochs}  {p.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``bsnn`` argument parser."""
    parser = argparse.ArgumentParser(prog="bsnn", description="Binary spiking neural networks "
                                     "on BindsNET: train, binarize, convert, simulate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    sub.add_parser("presets", help="list the training presets")
    return parser


_COMMANDS = {"train": _run_train, "evaluate": _run_evaluate, "presets": _run_presets}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bsnn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _COMMANDS[args.command](args)
    except _USER_ERRORS as err:
        print(f"bsnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; the last completed epoch is saved (--resume)" if args.command == "train" else ""
        print(f"bsnn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
