"""Checks of ``bsnn`` arguments that run before torch or BindsNET is imported (about 8 s), so a
mistyped argument or an output that would replace a user's file is reported at once; and the
small helpers the sub-commands share.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bsnn_bindsnet.cli.zoo import materialize_zoo_arguments
from bsnn_bindsnet.locking import acquire

# The keys of bsnn_bindsnet.data.registry.DATASETS, spelled out so that arguments are checked before
# torch is imported (a test keeps the two equal). A dataset registered in this process
# (bsnn_bindsnet.data.registry.register_dataset) is accepted too.
DATASET_NAMES = ("digits", "fashion-mnist", "mnist", "cifar100", "imagenet")
# The keys of bsnn_bindsnet.snn.neurons.NEURONS and V_INITS, likewise (a test keeps them equal);
# a neuron model registered in this process (a plugin: `bsnn --plugin MODULE`) is offered too.
NEURON_NAMES = ("subtract", "zero")
V_INIT_NAMES = ("zero", "half")
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
    """:data:`DATASET_NAMES`, or the live registry once :mod:`bsnn_bindsnet.data.registry` is imported."""
    data = sys.modules.get("bsnn_bindsnet.data.registry")
    return tuple(data.DATASETS) if data is not None else DATASET_NAMES


def known_neurons() -> tuple[str, ...]:
    """:data:`NEURON_NAMES`, or the live registry once :mod:`bsnn_bindsnet.snn.neurons` is imported."""
    neurons = sys.modules.get("bsnn_bindsnet.snn.neurons")
    return tuple(neurons.NEURONS) if neurons is not None else NEURON_NAMES


def known_v_inits() -> tuple[str, ...]:
    """:data:`V_INIT_NAMES`, or the live registry once :mod:`bsnn_bindsnet.snn.neurons` is imported."""
    neurons = sys.modules.get("bsnn_bindsnet.snn.neurons")
    return tuple(neurons.V_INITS) if neurons is not None else V_INIT_NAMES


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


def check_model_input(args: argparse.Namespace, attr: str, flag: str = "") -> None:
    """The model argument ``attr`` names a model file, or a zoo model (already checked by
    :func:`bsnn_bindsnet.cli.zoo.resolve_zoo_arguments`, written only after the checks)."""
    if attr not in (getattr(args, "zoo_models", None) or {}):
        check_input_file(getattr(args, attr), MODEL_FILE, flag)


def check_data_root(data_root: str | None, download: bool | None = None) -> None:
    """``--data-root`` (if given) is an existing folder; ``download``: the command's
    ``--download`` (which may create it), None for a command without one."""
    if data_root is None:
        return
    path = Path(data_root).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--data-root {data_root} is a file; expected the folder holding the "
                         "dataset files")
    if not path.exists() and not download:
        hint = "" if download is None else " (or add --download to fetch them into it)"
        raise FileNotFoundError(f"--data-root {data_root}: no such folder; expected the folder "
                                f"holding the dataset files{hint}")


def check_number(flag: str, value: float | None, *, low: float, high: float | None = None,
                 low_open: bool = False, high_open: bool = True) -> None:
    """``value`` (if given) is a finite number in the interval from ``low`` to ``high``."""
    if value is None:
        return
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        span = f"{left}{low:g}, {'inf' if high is None else format(high, 'g')}{right}"
        raise ValueError(f"{flag} must be a finite number in {span}, got {value:g}")


def claim_output(args: argparse.Namespace, target: str | os.PathLike,
                 check: Callable[[], None]) -> None:
    """Take the output lock on ``target`` (:mod:`bsnn_bindsnet.locking`: a second writer is
    refused, naming the first), then run the output ``check`` under it: an output that
    another run finished meanwhile is seen. A refusal releases the lock (nothing is left
    behind); otherwise the command holds it until :func:`command` has run."""
    lock = acquire(target, command=" ".join(["bsnn", getattr(args, "command", "")]).strip())
    try:
        check()
    except BaseException:
        lock.release()
        raise
    args.output_lock = lock


def command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Decorate a ``run_*`` function (called once its checks passed): write the ``zoo:NAME``
    models it was given, run it, and release the output lock taken by :func:`claim_output`."""
    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            materialize_zoo_arguments(args)
            return run(args)
        finally:
            lock = getattr(args, "output_lock", None)
            if lock is not None:
                lock.release()
                args.output_lock = None
    return wrapper


def check_no_file_parent(flag: str, path: Path) -> None:
    """No existing parent of ``path`` is a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def check_single_output(args: argparse.Namespace, source: str, kind: str) -> None:
    """The overwrite rule for a command that writes one file from one input file; takes the
    output lock (:func:`claim_output`)."""
    out = Path(args.out)
    if same_file(source, out):
        raise ValueError(f"--out {out} is the input file; choose another file (the input "
                         "would be replaced)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; expected a file for the {kind}")
    check_no_file_parent("--out", out)
    claim_output(args, out, lambda: check_new_file(args, out))


def check_new_file(args: argparse.Namespace, out: Path) -> None:
    """``out`` does not exist, or ``--overwrite`` was given."""
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
