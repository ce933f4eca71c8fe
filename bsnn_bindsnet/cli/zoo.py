"""``bsnn zoo`` and the ``zoo:NAME`` model argument of the other ``bsnn`` commands.

Imports nothing heavy (``bsnn --help`` stays fast): ``bsnn zoo`` and the checks of
``zoo:NAME`` read the JSON entries (:mod:`bsnn_bindsnet.zoo.entries`); :mod:`bsnn_bindsnet.zoo.registry`
(torch) is imported only to write a zoo model for a command whose checks passed.
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
                       "bsnn_bindsnet.zoo.registry.load(NAME).")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    return p


def resolve_model_argument(path_or_zoo: str) -> str | Path:
    """``zoo:NAME`` -> the path of a ``model.pt`` holding that zoo model (written to the zoo
    cache, see :func:`bsnn_bindsnet.zoo.registry.materialize`); anything else is returned unchanged.

    Raises:
        bsnn_bindsnet.zoo.registry.ZooError: unknown name or damaged zoo file (a ``ValueError``).
    """
    if not isinstance(path_or_zoo, str) or not path_or_zoo.startswith(ZOO_PREFIX):
        return path_or_zoo
    from bsnn_bindsnet.zoo.registry import materialize

    return materialize(path_or_zoo[len(ZOO_PREFIX):])


def resolve_zoo_arguments(args: argparse.Namespace) -> None:
    """Replace the ``zoo:NAME`` model arguments of ``args`` (:data:`MODEL_ARGUMENTS`) by the
    path of the ``model.pt`` in the zoo cache, in place, without importing torch or writing
    anything: the names are checked against the zoo's JSON entries and recorded in
    ``args.zoo_models`` (argument -> name); :func:`materialize_zoo_arguments` writes the files
    once the command's checks have passed, so a refused command never touches the cache.

    Raises:
        bsnn_bindsnet.zoo.entries.ZooError: unknown name or damaged entry (a ``ValueError``).
    """
    pending = {}
    for attr in MODEL_ARGUMENTS:
        value = getattr(args, attr, None)
        if isinstance(value, str) and value.startswith(ZOO_PREFIX):
            from bsnn_bindsnet.zoo.entries import cache_path, entry

            name = value[len(ZOO_PREFIX):]
            setattr(args, attr, os.fspath(cache_path(entry(name))))
            pending[attr] = name
    args.zoo_models = pending


def materialize_zoo_arguments(args: argparse.Namespace) -> None:
    """Write the zoo models that :func:`resolve_zoo_arguments` recorded (torch is imported
    here); each lands at the path already in ``args``."""
    for attr, name in (getattr(args, "zoo_models", None) or {}).items():
        from bsnn_bindsnet.zoo.registry import materialize

        path = os.fspath(materialize(name))
        if path != getattr(args, attr):  # the cache directory changed in between
            raise ValueError(f"zoo:{name}: written to {path}, expected {getattr(args, attr)}")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1024:.0f} KiB" if n_bytes < 1024 ** 2 else f"{n_bytes / 1024 ** 2:.1f} MiB"


def run_zoo(args: argparse.Namespace) -> int:
    """``bsnn zoo``: one block per entry (name, description, accuracy, size, train command);
    reads the JSON entries only (no torch)."""
    from bsnn_bindsnet.zoo.entries import list_models

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
