"""The ``bsnn`` console script.

Sub-commands import what they need when they run, so ``bsnn --help`` stays fast and does not
import BindsNET.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bsnn_bindsnet import __version__
from bsnn_bindsnet.cli_zoo import add_zoo_parser, resolve_zoo_arguments, run_zoo

# Errors that come from what the user asked for: reported in one line, exit status 2.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError,
                NotImplementedError)

# The keys of bsnn_bindsnet.data.DATASETS, spelled out so that arguments are checked before
# torch is imported (a test keeps the two equal).
DATASET_NAMES = ("digits", "fashion-mnist", "mnist", "cifar100", "imagenet")
# Files `bsnn train` writes into its --out folder, and `bsnn simulate` into its own.
RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.csv", "metrics.json", "config.json")
SIMULATION_FILES = ("simulation.json", "accuracy.csv", "accuracy.png")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a constrained ANN (FP, hybrid BWN, BWN from "
                       "scratch or XNOR-Net)", description="Train with a preset recipe; "
                       "see `bsnn presets`.")
    p.add_argument("--preset", required=True, help="e.g. fmnist-fp, fmnist-bwn (see `bsnn presets`)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, model.pt, metrics)")
    p.add_argument("--init-from", help="model.pt of a full-precision run (hybrid binarization)")
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
    p.add_argument("--v-init", choices=("zero", "half"),
                   help="direct route: initial membrane potential 0 or theta/2 (default: "
                        "the preset's, zero)")
    p.add_argument("--residual-factor", type=float, metavar="F",
                   help="direct route: weight f of the residual input from block l-2 "
                        "(default: the preset's, 1 = the paper's indicator)")
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
    from bsnn_bindsnet.ann.recipes import PRESETS, get_preset

    route = get_preset(args.preset).route
    if args.route and args.route != route:
        fitting = ", ".join(sorted(k for k, v in PRESETS.items() if v.route == args.route))
        raise ValueError(f"--route {args.route}: preset {args.preset!r} is a {route}-route "
                         f"preset; expected one of {fitting}")

    cfg = RunConfig(preset=args.preset, out_dir=args.out, seed=args.seed, quant=args.quant,
                    pool=args.pool, blocks=tuple(args.blocks) if args.blocks else None,
                    coding=args.coding, v_init=args.v_init,
                    residual_factor=args.residual_factor, init_from=args.init_from,
                    epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                    betas=tuple(args.betas) if args.betas else None,
                    train_subset=args.train_subset, data_root=args.data_root,
                    download=args.download, device=args.device, num_workers=args.num_workers,
                    progress=args.progress)
    history = fit(cfg, resume=args.resume, overwrite=args.overwrite, on_epoch=print_epoch)
    from bsnn_bindsnet.distributed import world

    if world()[0] != 0:  # under torchrun, rank 0 reports
        return 0
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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")


def _run_evaluate(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.ann.train import evaluate
    from bsnn_bindsnet.checkpoint import load_model
    from bsnn_bindsnet.data import load_dataset, make_loader

    device = _torch_device(args.device)
    dataset = _model_dataset(args.model, args.dataset)
    model = load_model(args.model).to(device)
    data = load_dataset(dataset, args.split, data_root=args.data_root)
    stats = evaluate(model, make_loader(data, batch_size=args.batch_size, shuffle=False),
                     device=device)
    print(json.dumps({"model": args.model, "dataset": dataset, "split": args.split,
                      "accuracy": stats.acc, "loss": stats.loss, "n": stats.n}))
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a trained model.pt into a B-SNN (BindsNET)",
                       description="Threshold-balance a trained ANN on calibration data and "
                       "save the converted network (topology, weights, thresholds).")
    p.add_argument("model", help="model.pt written by `bsnn train`")
    p.add_argument("--out", required=True, help="file for the converted network, e.g. snn.pt")
    p.add_argument("--dataset", help="defaults to the dataset the model was trained on")
    p.add_argument("--data-root")
    p.add_argument("--percentile", type=float, default=99.7,
                   help="activation percentile for the thresholds (100 = max)")
    p.add_argument("--statistic", choices=("all", "sample-max"), default="all",
                   help="percentile over all activation values, or over per-sample maxima")
    p.add_argument("--reset", choices=("subtract", "zero"), default="subtract",
                   help="subtractive reset (SIF) or reset to zero (RIF)")
    p.add_argument("--v-init", choices=("zero", "half"), default="half",
                   help="initial membrane potential: threshold/2 (default: rates round to "
                   "nearest, much lower latency) or 0 (the paper)")
    p.add_argument("--maxpool-after", choices=("or", "if"), default="or",
                   help="a max-pool after a ReLU: pass the OR of the spikes on unchanged "
                   "(default, the paper) or make it an extra balanced IF layer")
    p.add_argument("--calib-size", type=int, help="calibration samples (dataset default)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip measuring the ANN's test accuracy")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input model)")


def _run_convert(args: argparse.Namespace) -> int:
    import torch

    from bsnn_bindsnet.ann.train import evaluate
    from bsnn_bindsnet.checkpoint import load_model, read_model_file
    from bsnn_bindsnet.convert import ann_to_bsnn
    from bsnn_bindsnet.data import load_dataset, make_loader
    from bsnn_bindsnet.network import save_plan

    from bsnn_bindsnet.direct.model import DirectBSNN

    device = _torch_device(args.device)
    dataset = _model_dataset(args.model, args.dataset)
    model = load_model(args.model)
    if isinstance(model, DirectBSNN):  # direct route: fold batch-norm, no threshold balancing
        from bsnn_bindsnet.direct.export import direct_to_plan

        plan = direct_to_plan(model)
    else:
        calib = load_dataset(dataset, "calib", data_root=args.data_root,
                             calib_size=args.calib_size)
        plan = ann_to_bsnn(model, calib, percentile=args.percentile, statistic=args.statistic,
                           reset=args.reset, v_init=args.v_init,
                           maxpool_after=args.maxpool_after, device=device, build=False)
    plan.info.update(dataset=dataset, model_file=str(args.model),
                     model=read_model_file(args.model)["model"])
    if args.evaluate:
        test = load_dataset(dataset, "test", data_root=args.data_root)
        plan.info["ann_test_acc"] = evaluate(model, make_loader(test, batch_size=256,
                                                                shuffle=False),
                                             device=device).acc
    save_plan(plan, args.out)
    print(json.dumps({"out": args.out, "layers": [layer.name for layer in plan.layers],
                      "thresholds": {layer.name: torch.as_tensor(layer.thresh).tolist()
                                     for layer in plan.layers if layer.thresh is not None},
                      "ann_test_acc": plan.info.get("ann_test_acc")}, indent=2))
    return 0


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run a converted B-SNN: accuracy vs timesteps",
                       description="Simulate a network saved by `bsnn convert` with BindsNET's "
                       "minibatch runner; writes simulation.json, accuracy.csv, accuracy.png.")
    p.add_argument("network", help="file written by `bsnn convert`")
    p.add_argument("--timesteps", type=int, default=64)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=("one-step", "delayed"), default="one-step",
                   help="propagate through all layers each step, or BindsNET's per-layer delay")
    p.add_argument("--encoding", choices=("current", "poisson", "poisson-intensity"),
                   help="input coding; defaults to the one recorded at conversion (a direct-"
                   "trained model's own Poisson coding), else current")
    p.add_argument("--dataset", help="defaults to the dataset recorded at conversion")
    p.add_argument("--split", default="test", choices=("train", "calib", "test"))
    p.add_argument("--limit", type=int, help="only the first N samples (N >= 1)")
    p.add_argument("--data-root")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson encoder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier simulation in --out")


def _run_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from torch.utils.data import Subset

    from bsnn_bindsnet.checkpoint import atomic_write_json
    from bsnn_bindsnet.data import load_dataset
    from bsnn_bindsnet.distributed import simulate_sharded, world
    from bsnn_bindsnet.network import build_network, load_plan
    from bsnn_bindsnet.report import accuracy_table, plot_accuracy, write_accuracy_csv

    device = _torch_device(args.device)
    plan = load_plan(args.network)
    dataset = args.dataset or plan.info.get("dataset")
    if not dataset:
        raise ValueError(f"{args.network} does not record its dataset; pass --dataset")
    data = load_dataset(dataset, args.split, data_root=args.data_root)
    if args.limit is not None:  # >= 1, checked by _check_simulate
        data = Subset(data, range(min(args.limit, len(data))))
    encoding = args.encoding or plan.info.get("encoding", "current")
    # under torchrun each rank simulates a shard; rank 0 writes the merged result
    result = simulate_sharded(build_network(plan), data, args.timesteps,
                              one_step=args.mode == "one-step", encoding=encoding,
                              batch_size=args.batch_size, device=device,
                              generator=torch.Generator().manual_seed(args.seed),
                              progress=args.progress and world()[0] == 0)
    if world()[0] != 0:
        return 0
    out = Path(args.out)
    name = Path(args.network).stem
    # the ANN's accuracy recorded at conversion is over the whole test split
    same_data = args.split == "test" and args.limit is None and dataset == plan.info.get("dataset")
    ann = {name: plan.info["ann_test_acc"]} if same_data and "ann_test_acc" in plan.info else None
    summary = {**result.summary(), "network": str(args.network), "dataset": dataset,
               "split": args.split, "processes": world()[1], "conversion": plan.info}
    atomic_write_json(summary, out / "simulation.json")
    write_accuracy_csv({name: result.accuracy}, out / "accuracy.csv")
    plot_accuracy({name: result.accuracy}, out / "accuracy.png", ann=ann,
                  title=f"{dataset} ({summary['mode']}, {encoding})")
    print(accuracy_table({name: result.accuracy}, ann))
    print(f"mode: {summary['mode']}; {result.n} samples in {result.seconds:.1f} s; "
          f"results in {out}/")
    return 0


def _add_nir(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-nir", help="export a converted B-SNN to a NIR graph (.nir)",
                       description="Write a network saved by `bsnn convert` as a NIR graph "
                       "(HDF5), for snnTorch, Norse, Sinabs, lava-dl or a chip toolchain.")
    p.add_argument("network", help="file written by `bsnn convert` (or `bsnn import-nir`)")
    p.add_argument("--out", required=True, help="NIR file to write, e.g. net.nir")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input network)")
    p = sub.add_parser("import-nir", help="import a NIR graph as a B-SNN (BindsNET)",
                       description="Read a NIR graph (IF / I / Conv2d / Linear / Affine / "
                       "AvgPool2d / Flatten nodes) and save it in the format of `bsnn "
                       "convert`, so that `bsnn simulate` runs it.")
    p.add_argument("graph", help="NIR file (.nir)")
    p.add_argument("--out", required=True, help="file for the network, e.g. snn.pt")
    p.add_argument("--dataset", help="record the dataset `bsnn simulate` should use")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never the input graph)")


def _run_export_nir(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.network import load_plan
    from bsnn_bindsnet.nir_io import to_nir, write_nir

    plan = load_plan(args.network)
    graph = to_nir(plan)
    write_nir(graph, args.out)
    print(json.dumps({"out": args.out, "nodes": len(graph.nodes), "edges": len(graph.edges),
                      "reset": plan.reset, "v_init": plan.v_init}, indent=2))
    return 0


def _run_import_nir(args: argparse.Namespace) -> int:
    from bsnn_bindsnet.network import save_plan
    from bsnn_bindsnet.nir_io import from_nir

    plan = from_nir(args.graph)
    if args.dataset:
        plan.info["dataset"] = args.dataset
    save_plan(plan, args.out)
    print(json.dumps({"out": args.out, "layers": [layer.name for layer in plan.layers],
                      "reset": plan.reset, "v_init": plan.v_init,
                      "binary": [layer.name for layer in plan.layers
                                 if layer.synapse.get("binary")]}, indent=2))
    return 0


def _model_dataset(model: str, dataset: str | None) -> str:
    from bsnn_bindsnet.checkpoint import read_model_file

    dataset = dataset or read_model_file(model)["meta"].get("dataset")
    if not dataset:
        raise ValueError(f"{model} does not record its dataset; pass --dataset")
    return dataset


def _torch_device(name: str) -> str:
    """``--device`` checked against this machine (``auto``: CUDA when there is one)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; expected cpu, cuda, cuda:N or "
                         "auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine; use "
                         "--device cpu")
    return name


# ------------------------------------------------------------------ checks before any import
# Everything below runs before torch or BindsNET is imported (about 8 s), so a mistyped
# argument or an output that would replace a user's file is reported at once.


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (symlinks and hard links included)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _at_least(flag: str, value: int | None, low: int, hint: str = "") -> None:
    if value is not None and value < low:
        raise ValueError(f"{flag} must be >= {low}{hint}, got {value}")


def _check_dataset(name: str | None) -> None:
    if name is not None and name not in DATASET_NAMES:
        raise ValueError(f"--dataset {name!r} is unknown; expected one of "
                         f"{', '.join(DATASET_NAMES)}")


_MODEL_FILE = ("model file", "a model.pt written by `bsnn train`")
_NETWORK_FILE = ("converted network", "a file written by `bsnn convert`")


def _check_input_file(path: str, kind: tuple[str, str], flag: str = "") -> None:
    name, expected = kind
    where = f"{flag} {path}" if flag else path
    if Path(path).is_dir():
        raise ValueError(f"{where} is a directory; expected {expected}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag + ': ' if flag else ''}no {name} at {path} (expected "
                                f"{expected})")


def _check_no_file_parent(flag: str, path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def _check_train(args: argparse.Namespace) -> None:
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--train-subset", args.train_subset)):
        _at_least(flag, value, 1)
    _at_least("--num-workers", args.num_workers, 0)
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite: pass one (continue the run in --out, or "
                         "start it again)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for the run "
                         f"({', '.join(RUN_FILES)})")
    _check_no_file_parent("--out", out)
    if args.init_from:
        _check_input_file(args.init_from, _MODEL_FILE, "--init-from")
        if any(_same_file(args.init_from, out / name) for name in RUN_FILES):
            raise ValueError(f"--init-from {args.init_from} is a file of --out {out}, which "
                             "this run rewrites; choose another --out")
    if args.resume:
        if not (out / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {out / 'checkpoint.pt'}")
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not args.overwrite:
        if "checkpoint.pt" in found:
            raise FileExistsError(f"{out} already holds a training run; pass --resume to "
                                  "continue it or --overwrite to start again (or choose "
                                  "another --out)")
        raise FileExistsError(f"{out} already holds {', '.join(found)} (no checkpoint.pt to "
                              "resume); pass --overwrite to replace them or choose another "
                              "--out")


def _check_evaluate(args: argparse.Namespace) -> None:
    _check_input_file(args.model, _MODEL_FILE)
    _check_dataset(args.dataset)
    _at_least("--batch-size", args.batch_size, 1)


def _check_convert(args: argparse.Namespace) -> None:
    _check_input_file(args.model, _MODEL_FILE)
    _check_dataset(args.dataset)
    if not 0 < args.percentile <= 100:
        raise ValueError(f"--percentile must be in (0, 100] (100 = the max), got "
                         f"{args.percentile:g}")
    _at_least("--calib-size", args.calib_size, 1)
    out = Path(args.out)
    if _same_file(args.model, out):
        raise ValueError(f"--out {out} is the input model; choose another file (the model "
                         "would be replaced by the converted network)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; expected a file for the converted "
                         f"network, e.g. {out / 'snn.pt'}")
    _check_no_file_parent("--out", out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out} already exists; pass --overwrite to replace it "
                              "(or choose another --out)")


def _check_simulate(args: argparse.Namespace) -> None:
    _check_input_file(args.network, _NETWORK_FILE)
    _check_dataset(args.dataset)
    _at_least("--limit", args.limit, 1, " (omit it for the whole set)")
    _at_least("--timesteps", args.timesteps, 1)
    _at_least("--batch-size", args.batch_size, 1)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for "
                         f"{', '.join(SIMULATION_FILES)}")
    _check_no_file_parent("--out", out)
    if any(_same_file(args.network, out / name) for name in SIMULATION_FILES):
        raise ValueError(f"--out {out} would replace the input network {args.network}; "
                         "choose another --out")
    found = [name for name in SIMULATION_FILES if (out / name).exists()]
    if found and not args.overwrite:
        raise FileExistsError(f"--out {out} already holds {', '.join(found)}; pass "
                              "--overwrite to replace them (or choose another --out)")


def _check_nir_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("nir") is None or importlib.util.find_spec("h5py") is None:
        raise ValueError("NIR support needs the optional packages nir and h5py; install them "
                         "with pip install 'bsnn-bindsnet[nir]'")


def _check_single_output(args: argparse.Namespace, source: str, kind: str) -> None:
    """The overwrite rule for a command that writes one file from one input file."""
    out = Path(args.out)
    if _same_file(source, out):
        raise ValueError(f"--out {out} is the input file; choose another file (the input "
                         "would be replaced)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; expected a file for the {kind}")
    _check_no_file_parent("--out", out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out} already exists; pass --overwrite to replace it "
                              "(or choose another --out)")


_NIR_FILE = ("NIR graph", "a .nir file (HDF5) written by `bsnn export-nir` or another tool")


def _check_export_nir(args: argparse.Namespace) -> None:
    _check_input_file(args.network, _NETWORK_FILE)
    _check_single_output(args, args.network, "NIR graph, e.g. net.nir")
    _check_nir_installed()


def _check_import_nir(args: argparse.Namespace) -> None:
    _check_input_file(args.graph, _NIR_FILE)
    _check_dataset(args.dataset)
    _check_single_output(args, args.graph, "converted network, e.g. snn.pt")
    _check_nir_installed()


_CHECKS = {"train": _check_train, "evaluate": _check_evaluate, "convert": _check_convert,
           "simulate": _check_simulate,
           "export-nir": _check_export_nir, "import-nir": _check_import_nir}


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
    _add_convert(sub)
    _add_simulate(sub)
    _add_nir(sub)
    add_zoo_parser(sub)
    sub.add_parser("presets", help="list the training presets")
    return parser


_COMMANDS = {"train": _run_train, "evaluate": _run_evaluate, "convert": _run_convert,
             "simulate": _run_simulate, "presets": _run_presets,
             "export-nir": _run_export_nir, "import-nir": _run_import_nir, "zoo": run_zoo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bsnn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    status = 1
    try:
        resolve_zoo_arguments(args)  # zoo:NAME -> a model.pt in the zoo cache
        if args.command in _CHECKS:
            _CHECKS[args.command](args)
        status = _COMMANDS[args.command](args)
        return status
    except _USER_ERRORS as err:
        print(f"bsnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # fit() says what it saved; an interruption before it started saved nothing
        hint = getattr(err, "hint", "; nothing was saved" if args.command == "train" else "")
        print(f"bsnn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if "bsnn_bindsnet.distributed" in sys.modules:  # only a command that used it
            sys.modules["bsnn_bindsnet.distributed"].finish(ok=status == 0)


if __name__ == "__main__":
    sys.exit(main())
