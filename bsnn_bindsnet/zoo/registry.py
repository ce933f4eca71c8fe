r"""Pretrained models shipped inside the package: real data in seconds, no training.

Each entry is two files in ``bsnn_bindsnet/zoo/data/``:

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
  refused, naming it), the tensor ``layout``, ``record_sha256`` (the hash of the entry itself,
  the weights' hash included: an edited entry is refused, see :mod:`.entries`), and the test accuracy of the *shipped* weights
  on the full test split and on its first :data:`SUBSET_SIZE` images, measured by
  :func:`pack` itself (no figure is typed by hand). ``tests/test_zoo.py`` measures the subset
  accuracy again and requires the same count of correct images.

The tensor format itself is :mod:`bsnn_bindsnet.zoo.format`.

API: :func:`list_models`, :func:`entry`, :func:`load` (``nn.Module`` ready for
:func:`~bsnn_bindsnet.conversion.convert.ann_to_bsnn`), :func:`materialize` (a ``model.pt`` for the
``bsnn`` commands, which accept ``zoo:NAME``) and the maintainer tool :func:`pack`::

    python -m bsnn_bindsnet.zoo.registry pack runs/fmnist-bwn/model.pt --name fmnist-bwn \
        --description "..." --commit 224a049 \
        --train-command "bsnn train --preset fmnist-fp --out runs/fmnist-fp" \
        --train-command "bsnn train --preset fmnist-bwn --init-from runs/fmnist-fp/model.pt \
--out runs/fmnist-bwn"
    python -m bsnn_bindsnet.zoo.registry list
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.checkpoint import (atomic_write, atomic_write_json, load_state_checked,
                                      read_model_file, save_model)
from bsnn_bindsnet.training.loop import evaluate
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.zoo.entries import (DATA_DIR, NAME, ZOO_FORMAT, ZooEntry, ZooError, cache_path,
                                       default_cache_dir, entry, list_models, record_digest)
from bsnn_bindsnet.zoo.format import npz_bytes, pack_state, read_npz, unpack_state

log = logging.getLogger(__name__)

__all__ = ["ZOO_FORMAT", "SUBSET_SIZE", "DATA_DIR", "ZooEntry", "ZooError", "list_models",
           "entry", "load", "load_spec", "materialize", "pack", "pack_state", "unpack_state",
           "measure_accuracy", "default_cache_dir"]

SUBSET_SIZE = 1000  # the fixed subset: the first SUBSET_SIZE images of the test split
EVAL_BATCH = 250    # evaluation batch size, fixed so that the figures repeat exactly


def _build(model: str, model_kwargs: Mapping[str, Any], state: Mapping[str, Tensor],
           source: str) -> nn.Module:
    net = get_model(model, **model_kwargs)
    load_state_checked(net, state, source=source)
    return net.eval()


# ------------------------------------------------------------------------------- the API
def load(name: str) -> nn.Module:
    """The shipped model ``name`` in ``eval()`` mode, ready for
    :func:`~bsnn_bindsnet.conversion.convert.ann_to_bsnn`.

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
    (:func:`~bsnn_bindsnet.training.models.load_model`), in ``eval()`` mode."""
    if spec.startswith("zoo:"):
        return load(spec[len("zoo:"):])
    from bsnn_bindsnet.training.models import load_model

    return load_model(spec).eval()


def materialize(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Write the shipped model ``name`` as a ``model.pt`` (the format of ``bsnn train``,
    written atomically) and return its path: ``<directory>/<name>-<sha256[:12]>/model.pt``.

    The file is written again on every call (a few milliseconds), so a stale or damaged copy
    is never used. Its ``meta`` records ``dataset``, ``zoo`` (the name) and ``zoo_sha256``.
    """
    e = entry(name)
    model = load(name)
    return save_model(model, cache_path(e, directory), name=e.model, model_kwargs=e.model_kwargs,
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
                     data_root: str | os.PathLike | None = None,
                     split: str = "test") -> tuple[int, int]:
    """``(correct, n)`` of ``model`` on the test split (or ``split``; its first ``limit``
    images), in ``eval()`` mode on one CPU thread with batches of :data:`EVAL_BATCH`: the same
    count on every run. Raises ``DatasetNotFoundError`` when the dataset is not installed."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset, make_loader

    data = load_dataset(dataset, split, data_root=data_root)
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
    split, on its first ``subset_size`` images and on the held-out ``"val"`` split (the one
    to select on; not held out for a model trained before it existed), and writes ``<name>.npz`` and
    ``<name>.json`` to ``out_dir`` (each atomically).

    Args:
        model_pt: A model file written by ``bsnn train`` (its ``meta`` names the dataset).
        name: Entry name (lower case, digits, dashes), e.g. ``"fmnist-bwn"``.
        description: One line for ``bsnn zoo``.
        train_commands: The exact ``bsnn train`` command(s) that produced the weights.
        commit: The git commit of the training code.
    """
    if not NAME.match(name):
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
    val_correct, val_n = measure_accuracy(shipped, dataset, data_root=data_root, split="val")
    record = {"format": ZOO_FORMAT, "name": name, "description": description,
              "model": blob["model"], "model_kwargs": dict(blob["model_kwargs"]),
              "dataset": dataset, "train_commands": list(train_commands), "commit": commit,
              "test_correct": test_correct, "test_n": test_n,
              "test_accuracy": test_correct / test_n,
              "subset_correct": subset_correct, "subset_n": subset_n,
              "subset_accuracy": subset_correct / subset_n,
              "val_correct": val_correct, "val_n": val_n, "val_accuracy": val_correct / val_n,
              "trained_preset": blob["meta"].get("preset"),
              "trained_epochs": blob["meta"].get("epoch"),
              "trained_test_acc": blob["meta"].get("test_acc"),
              "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
              "layout": layout}
    record["record_sha256"] = record_digest(record)
    out = Path(out_dir)
    atomic_write(out / f"{name}.npz", lambda f: f.write(data))
    atomic_write_json(record, out / f"{name}.json")
    log.info("packed %s: %d bytes, test accuracy %.4f", name, len(data), test_correct / test_n)
    return ZooEntry.from_json(record, str(out / f"{name}.json"))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bsnn_bindsnet.zoo.registry {list,pack}``."""
    p = argparse.ArgumentParser(prog="python -m bsnn_bindsnet.zoo.registry", description=__doc__,
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
