r"""Pretrained models shipped inside the package: real data in seconds, no training.

Each entry is two files in ``bsnn_bindsnet/zoo_data/``:

- ``<name>.npz`` (NumPy, no pickle): the weights, stored compactly.

  * Binary layers (:class:`~bsnn_bindsnet.ann.binarize.BinaryConv2d` /
    :class:`~bsnn_bindsnet.ann.binarize.BinaryLinear`): the sign bits, packed eight to a byte
    (``numpy.packbits``, 1 = +1) plus :math:`\alpha` per output channel in float32. The real
    proxies are not kept: a loaded layer's ``.weight`` is :math:`\alpha \cdot
    \operatorname{sign}(W)`, whose forward (:math:`\operatorname{mean}|W| \cdot
    \operatorname{sign}(W)`) is bit for bit that of the trained layer. It converts and
    evaluates exactly as trained; fine-tuning it starts from these proxies, not the originals.
  * Every other floating-point tensor (the first and last layers of a BWN model, all of a
    full-precision model) is **rounded to float16** and restored to float32 on load. The
    recorded accuracies are measured on exactly these rounded weights (see below).
  * Other tensors (integer buffers) are stored as they are.

- ``<name>.json``: what the entry is: ``description``, registry ``model`` and
  ``model_kwargs`` (as :func:`~bsnn_bindsnet.checkpoint.save_model` records them),
  ``dataset``, the exact ``bsnn train`` commands and the ``commit`` that produced the
  weights, the ``sha256`` and size of the ``.npz`` (checked on every load: a damaged file is
  refused, naming it), the tensor ``layout``, and the test accuracy of the *shipped* weights
  on the full test split and on its first :data:`SUBSET_SIZE` images, measured by
  :func:`pack` itself (no figure is typed by hand). ``tests/test_zoo.py`` measures the subset
  accuracy again and requires the same count of correct images.

The tensor format itself is :mod:`bsnn_bindsnet.zoo_format`.

API: :func:`list_models`, :func:`entry`, :func:`load` (``nn.Module`` ready for
:func:`~bsnn_bindsnet.convert.ann_to_bsnn`), :func:`materialize` (a ``model.pt`` for the
``bsnn`` commands, which accept ``zoo:NAME``) and the maintainer tool :func:`pack`::

    python -m bsnn_bindsnet.zoo pack runs/fmnist-bwn/model.pt --name fmnist-bwn \
        --description "..." --commit 224a049 \
        --train-command "bsnn train --preset fmnist-fp --out runs/fmnist-fp" \
        --train-command "bsnn train --preset fmnist-bwn --init-from runs/fmnist-fp/model.pt \
--out runs/fmnist-bwn"
    python -m bsnn_bindsnet.zoo list
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.checkpoint import (atomic_write, atomic_write_json, load_state_checked,
                                      read_model_file, save_model)
from bsnn_bindsnet.training.loop import evaluate
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.zoo_format import ZooError, npz_bytes, pack_state, read_npz, unpack_state

log = logging.getLogger(__name__)

__all__ = ["ZOO_FORMAT", "SUBSET_SIZE", "DATA_DIR", "ZooEntry", "ZooError", "list_models",
           "entry", "load", "load_spec", "materialize", "pack", "pack_state", "unpack_state",
           "measure_accuracy", "default_cache_dir"]

ZOO_FORMAT = "bsnn-bindsnet/zoo-v1"
DATA_DIR = Path(__file__).resolve().with_name("zoo_data")
SUBSET_SIZE = 1000  # the fixed subset: the first SUBSET_SIZE images of the test split
EVAL_BATCH = 250    # evaluation batch size, fixed so that the figures repeat exactly
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model, as recorded in ``zoo_data/<name>.json``.

    Attributes:
        test_correct, test_n: Correct images of the full test split, and its size.
        subset_correct, subset_n: The same on the first ``subset_n`` test images.
        size_bytes: Size of the ``.npz`` weights file.
    """

    name: str
    description: str
    model: str
    model_kwargs: dict[str, Any]
    dataset: str
    train_commands: tuple[str, ...]
    commit: str
    test_correct: int
    test_n: int
    subset_correct: int
    subset_n: int
    sha256: str
    size_bytes: int
    layout: dict[str, dict[str, Any]]

    @property
    def test_accuracy(self) -> float:
        """Accuracy of the shipped weights on the full test split."""
        return self.test_correct / self.test_n

    @property
    def subset_accuracy(self) -> float:
        """Accuracy of the shipped weights on the fixed subset."""
        return self.subset_correct / self.subset_n

    @property
    def weights_file(self) -> Path:
        """The ``.npz`` file of this entry."""
        return DATA_DIR / f"{self.name}.npz"

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ZooEntry:  # noqa: D102
        if record.get("format") != ZOO_FORMAT:
            raise ZooError(f"zoo entry {record.get('name')!r} has format "
                           f"{record.get('format')!r}; expected {ZOO_FORMAT!r}")
        fields = {k: record[k] for k in cls.__dataclass_fields__}
        fields["train_commands"] = tuple(fields["train_commands"])
        return cls(**fields)


def _build(model: str, model_kwargs: Mapping[str, Any], state: Mapping[str, Tensor],
           source: str) -> nn.Module:
    net = get_model(model, **model_kwargs)
    load_state_checked(net, state, source=source)
    return net.eval()


# ------------------------------------------------------------------------------- the API
def _entry_files() -> Iterator[Path]:
    return iter(sorted(DATA_DIR.glob("*.json")))


def list_models() -> list[ZooEntry]:
    """Every shipped entry, sorted by name."""
    return [ZooEntry.from_json(json.loads(p.read_text())) for p in _entry_files()]


def entry(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises :class:`ZooError` listing them."""
    path = DATA_DIR / f"{name}.json"
    if not _NAME.match(name) or not path.is_file():
        names = ", ".join(p.stem for p in _entry_files()) or "none"
        raise ZooError(f"no zoo model called {name!r}; the zoo has: {names}")
    return ZooEntry.from_json(json.loads(path.read_text()))


def load(name: str) -> nn.Module:
    """The shipped model ``name`` in ``eval()`` mode, ready for
    :func:`~bsnn_bindsnet.convert.ann_to_bsnn`.

    Raises:
        ZooError: unknown name, or a weights file whose SHA-256 is not the recorded one.
    """
    e = entry(name)
    path = e.weights_file
    if not path.is_file():
        raise ZooError(f"{path} is missing (zoo entry {name!r}); reinstall bsnn-bindsnet")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != e.sha256:
        raise ZooError(f"{path} is damaged: its SHA-256 {digest[:16]}... is not the "
                       f"{e.sha256[:16]}... recorded in {name}.json; reinstall bsnn-bindsnet "
                       "(or pack the entry again)")
    return _build(e.model, e.model_kwargs, unpack_state(read_npz(data), e.layout), str(path))


def load_spec(spec: str) -> nn.Module:
    """``zoo:NAME`` (:func:`load`) or the path of a ``model.pt`` written by ``bsnn train``
    (:func:`~bsnn_bindsnet.checkpoint.load_model`), in ``eval()`` mode."""
    if spec.startswith("zoo:"):
        return load(spec[len("zoo:"):])
    from bsnn_bindsnet.checkpoint import load_model

    return load_model(spec).eval()


def default_cache_dir() -> Path:
    """Where :func:`materialize` writes: ``$BSNN_ZOO_CACHE`` if set, else
    ``~/.cache/bsnn_bindsnet/zoo``."""
    env = os.environ.get("BSNN_ZOO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "bsnn_bindsnet" / "zoo"


def materialize(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Write the shipped model ``name`` as a ``model.pt`` (the format of ``bsnn train``,
    written atomically) and return its path: ``<directory>/<name>-<sha256[:12]>/model.pt``.

    The file is written again on every call (a few milliseconds), so a stale or damaged copy
    is never used. Its ``meta`` records ``dataset``, ``zoo`` (the name) and ``zoo_sha256``.
    """
    e = entry(name)
    model = load(name)
    root = Path(directory) if directory is not None else default_cache_dir()
    path = root / f"{name}-{e.sha256[:12]}" / "model.pt"
    return save_model(model, path, name=e.model, model_kwargs=e.model_kwargs,
                      meta={"dataset": e.dataset, "zoo": name, "zoo_sha256": e.sha256,
                            "test_acc": e.test_accuracy, "commit": e.commit})


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def measure_accuracy(model: nn.Module, dataset: str, *, limit: int | None = None,
                     data_root: str | os.PathLike | None = None) -> tuple[int, int]:
    """``(correct, n)`` of ``model`` on the test split (its first ``limit`` images), in
    ``eval()`` mode on one CPU thread with batches of :data:`EVAL_BATCH`: the same count on
    every run. Raises ``DatasetNotFoundError`` when the dataset is not installed."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data import load_dataset, make_loader

    data = load_dataset(dataset, "test", data_root=data_root)
    if limit is not None:
        data = Subset(data, range(min(limit, len(data))))
    with _one_thread():
        stats = evaluate(model.cpu(), make_loader(data, batch_size=EVAL_BATCH, shuffle=False))
    return round(stats.acc * stats.n), stats.n


def pack(model_pt: str | os.PathLike, name: str, *, description: str,
         train_commands: Sequence[str], commit: str, out_dir: str | os.PathLike = DATA_DIR,
         subset_size: int = SUBSET_SIZE, data_root: str | os.PathLike | None = None) -> ZooEntry:
    """Maintainer tool: add (or replace) the zoo entry ``name`` from a ``model.pt``.

    Packs the weights, unpacks them again, measures the *unpacked* model on the full test
    split and on its first ``subset_size`` images, and writes ``<name>.npz`` and
    ``<name>.json`` to ``out_dir`` (each atomically).

    Args:
        model_pt: A model file written by ``bsnn train`` (its ``meta`` names the dataset).
        name: Entry name (lower case, digits, dashes), e.g. ``"fmnist-bwn"``.
        description: One line for ``bsnn zoo``.
        train_commands: The exact ``bsnn train`` command(s) that produced the weights.
        commit: The git commit of the training code.
    """
    if not _NAME.match(name):
        raise ValueError(f"zoo name {name!r}: use lower-case letters, digits and dashes")
    if not train_commands or not commit:
        raise ValueError("pack needs the train command(s) and the commit that produced the model")
    blob = read_model_file(model_pt)
    dataset = blob["meta"].get("dataset")
    if not dataset:
        raise ValueError(f"{model_pt} does not record its dataset")
    original = _build(blob["model"], blob["model_kwargs"], blob["state_dict"], str(model_pt))
    arrays, layout = pack_state(original)
    data = npz_bytes(arrays)
    shipped = _build(blob["model"], blob["model_kwargs"],
                     unpack_state(read_npz(data), layout), f"packed {model_pt}")
    test_correct, test_n = measure_accuracy(shipped, dataset, data_root=data_root)
    subset_correct, subset_n = measure_accuracy(shipped, dataset, limit=subset_size,
                                                data_root=data_root)
    record = {"format": ZOO_FORMAT, "name": name, "description": description,
              "model": blob["model"], "model_kwargs": dict(blob["model_kwargs"]),
              "dataset": dataset, "train_commands": list(train_commands), "commit": commit,
              "test_correct": test_correct, "test_n": test_n,
              "test_accuracy": test_correct / test_n,
              "subset_correct": subset_correct, "subset_n": subset_n,
              "subset_accuracy": subset_correct / subset_n,
              "trained_preset": blob["meta"].get("preset"),
              "trained_epochs": blob["meta"].get("epoch"),
              "trained_test_acc": blob["meta"].get("test_acc"),
              "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
              "layout": layout}
    out = Path(out_dir)
    atomic_write(out / f"{name}.npz", lambda f: f.write(data))
    atomic_write_json(record, out / f"{name}.json")
    log.info("packed %s: %d bytes, test accuracy %.4f", name, len(data), test_correct / test_n)
    return ZooEntry.from_json(record)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bsnn_bindsnet.zoo {list,pack}``."""
    p = argparse.ArgumentParser(prog="python -m bsnn_bindsnet.zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped entries")
    pk = sub.add_parser("pack", help="add or replace an entry from a model.pt")
    pk.add_argument("model", help="model.pt written by `bsnn train`")
    pk.add_argument("--name", required=True)
    pk.add_argument("--description", required=True)
    pk.add_argument("--train-command", action="append", required=True, dest="train_commands",
                    help="an exact `bsnn train` command (repeat for each stage)")
    pk.add_argument("--commit", required=True, help="git commit of the training code")
    pk.add_argument("--out-dir", type=Path, default=DATA_DIR)
    pk.add_argument("--subset-size", type=int, default=SUBSET_SIZE)
    pk.add_argument("--data-root")
    args = p.parse_args(argv)
    if args.command == "pack":
        e = pack(args.model, args.name, description=args.description,
                 train_commands=args.train_commands, commit=args.commit, out_dir=args.out_dir,
                 subset_size=args.subset_size, data_root=args.data_root)
        entries = [e]
    else:
        entries = list_models()
    for e in entries:
        print(f"{e.name}: {e.dataset} {e.model}, test {100 * e.test_accuracy:.2f} % "
              f"({e.test_n}), first {e.subset_n}: {100 * e.subset_accuracy:.2f} %, "
              f"{e.size_bytes / 1024:.0f} KiB, sha256 {e.sha256[:12]}")


if __name__ == "__main__":
    main()
