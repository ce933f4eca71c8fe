"""``bsnn zoo`` and the ``zoo:NAME`` model argument of the other ``bsnn`` commands.

Imports nothing heavy at module level (``bsnn --help`` stays fast); :mod:`bsnn_bindsnet.zoo`
(torch) is imported only when a zoo model is listed or named.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ZOO_PREFIX = "zoo:"
# Arguments of the `bsnn` commands that name a model.pt (`convert`/`evaluate`: model;
# `train`: --init-from).
MODEL_ARGUMENTS = ("model", "init_from")


def add_zoo_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``zoo`` sub-command to ``sub`` (the ``bsnn`` sub-parsers)."""
    p = sub.add_parser("zoo", help="list the pretrained models shipped with the package",
                       description="Pretrained models shipped with bsnn-bindsnet. Use one as "
                       "`zoo:NAME` wherever a model.pt is expected, e.g. `bsnn convert "
                       "zoo:fmnist-bwn --out snn.pt`, or in Python: "
                       "bsnn_bindsnet.zoo.load(NAME).")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    return p


def resolve_model_argument(path_or_zoo: str) -> str | Path:
    """``zoo:NAME`` -> the path of a ``model.pt`` holding that zoo model (written to the zoo
    cache, see :func:`bsnn_bindsnet.zoo.materialize`); anything else is returned unchanged.

    Raises:
        bsnn_bindsnet.zoo.ZooError: unknown name or damaged zoo file (a ``ValueError``).
    """
    if not isinstance(path_or_zoo, str) or not path_or_zoo.startswith(ZOO_PREFIX):
        return path_or_zoo
    from bsnn_bindsnet.zoo import materialize

    return materialize(path_or_zoo[len(ZOO_PREFIX):])


def resolve_zoo_arguments(args: argparse.Namespace) -> None:
    """Apply :func:`resolve_model_argument` to the model arguments of ``args``
    (:data:`MODEL_ARGUMENTS`), in place."""
    for attr in MODEL_ARGUMENTS:
        value = getattr(args, attr, None)
        if isinstance(value, str) and value.startswith(ZOO_PREFIX):
            setattr(args, attr, os.fspath(resolve_model_argument(value)))


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1024:.0f} KiB" if n_bytes < 1024 ** 2 else f"{n_bytes / 1024 ** 2:.1f} MiB"


def run_zoo(args: argparse.Namespace) -> int:
    """``bsnn zoo``: one block per entry (name, description, accuracy, size, train command)."""
    from bsnn_bindsnet.zoo import list_models

    entries = list_models()
    if getattr(args, "json", False):
        print(json.dumps([{"name": e.name, "description": e.description, "dataset": e.dataset,
                           "model": e.model, "test_accuracy": e.test_accuracy,
                           "test_n": e.test_n, "subset_accuracy": e.subset_accuracy,
                           "subset_n": e.subset_n, "size_bytes": e.size_bytes,
                           "sha256": e.sha256, "commit": e.commit,
                           "train_commands": list(e.train_commands)} for e in entries],
                         indent=2))
        return 0
    for e in entries:
        print(f"zoo:{e.name}  ({e.dataset}, {e.model}, {_size(e.size_bytes)})\n"
              f"  {e.description}\n"
              f"  test accuracy {100 * e.test_accuracy:.2f} % ({e.test_n} images; first "
              f"{e.subset_n}: {100 * e.subset_accuracy:.2f} %), shipped weights\n"
              f"  trained at commit {e.commit} with:")
        for command in e.train_commands:
            print(f"    {command}")
        print()
    print(f"{len(entries)} models; use one as zoo:NAME wherever a model.pt is expected")
    return 0
