"""Pretrained models that ship with the package: the registry and loader (:mod:`.registry`), the
packed file format (:mod:`.format`) and the shipped files (``data/``).

``from bsnn_bindsnet import zoo; zoo.load("fmnist-bwn")`` works; the names come from :mod:`.registry`.
"""

from typing import Any

__all__ = ['ZOO_FORMAT', 'SUBSET_SIZE', 'DATA_DIR', 'ZooEntry', 'ZooError', 'list_models', 'entry', 'load', 'load_spec', 'materialize', 'pack', 'pack_state', 'unpack_state', 'measure_accuracy', 'default_cache_dir']


def __getattr__(name: str) -> Any:  # PEP 562: lazy re-export, so that importing a sibling stays cheap
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("bsnn_bindsnet.zoo.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
