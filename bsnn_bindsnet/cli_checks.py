"""Checks of ``bsnn`` arguments that run before torch or BindsNET is imported (about 8 s), so a
mistyped argument or an output that would replace a user's file is reported at once; and the
small helpers the sub-commands share.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The keys of bsnn_bindsnet.data.DATASETS, spelled out so that arguments are checked before
# torch is imported (a test keeps the two equal). A dataset registered in this process
# (bsnn_bindsnet.data.register_dataset) is accepted too.
DATASET_NAMES = ("digits", "fashion-mnist", "mnist", "cifar100", "imagenet")
# Files `bsnn train` writes into its --out folder, and `bsnn simulate` into its own.
RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.csv", "metrics.json", "config.json")
SIMULATION_FILES = ("simulation.json", "accuracy.csv", "accuracy.png")

MODEL_FILE = ("model file", "a model.pt written by `bsnn train`")
NETWORK_FILE = ("converted network", "a file written by `bsnn convert`")
NIR_FILE = ("NIR graph", "a .nir file (HDF5) written by `bsnn export-nir` or another tool")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (symlinks and hard links included)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def at_least(flag: str, value: int | None, low: int, hint: str = "") -> None:
    """``value`` (if given) is at least ``low``."""
    if value is not None and value < low:
        raise ValueError(f"{flag} must be >= {low}{hint}, got {value}")


def known_datasets() -> tuple[str, ...]:
    """:data:`DATASET_NAMES`, or the live registry once :mod:`bsnn_bindsnet.data` is imported."""
    data = sys.modules.get("bsnn_bindsnet.data")
    return tuple(data.DATASETS) if data is not None else DATASET_NAMES


def check_dataset(name: str | None) -> None:
    """``--dataset`` (if given) names a registered dataset."""
    names = known_datasets()
    if name is not None and name not in names:
        raise ValueError(f"--dataset {name!r} is unknown; expected one of {', '.join(names)}")


def check_input_file(path: str, kind: tuple[str, str], flag: str = "") -> None:
    """``path`` is an existing file of ``kind`` (name, what is expected)."""
    name, expected = kind
    where = f"{flag} {path}" if flag else path
    if Path(path).is_dir():
        raise ValueError(f"{where} is a directory; expected {expected}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag + ': ' if flag else ''}no {name} at {path} (expected "
                                f"{expected})")


def check_no_file_parent(flag: str, path: Path) -> None:
    """No existing parent of ``path`` is a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def check_single_output(args: argparse.Namespace, source: str, kind: str) -> None:
    """The overwrite rule for a command that writes one file from one input file."""
    out = Path(args.out)
    if same_file(source, out):
        raise ValueError(f"--out {out} is the input file; choose another file (the input "
                         "would be replaced)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; expected a file for the {kind}")
    check_no_file_parent("--out", out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out} already exists; pass --overwrite to replace it "
                              "(or choose another --out)")


# ------------------------------------------------------------------ after the checks


def model_dataset(model: str, dataset: str | None) -> str:
    """``dataset``, else the dataset recorded in the model file."""
    from bsnn_bindsnet.checkpoint import read_model_file

    dataset = dataset or read_model_file(model)["meta"].get("dataset")
    if not dataset:
        raise ValueError(f"{model} does not record its dataset; pass --dataset")
    return dataset


def torch_device(name: str) -> str:
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
