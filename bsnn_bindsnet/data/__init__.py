"""Data: the dataset registry (:mod:`.registry`), the built-in sources (:mod:`.sources`), on-disk
formats (:mod:`.formats`) and the accepted forms of samples (:mod:`.samples`).

``from bsnn_bindsnet.data import load_dataset`` works; the names come from :mod:`.registry`.
"""

from typing import Any

__all__ = ['DATASETS', 'SPLITS', 'VAL_FRACTION', 'split_indices', 'val_size', 'DatasetInfo', 'DatasetNotFoundError', 'ImageTensorDataset', 'calib_indices', 'dataset_for_prefix', 'dataset_info', 'default_cache_dir', 'load_dataset', 'make_loader', 'normalize', 'read_cifar_pickle', 'read_idx', 'refuse_loader', 'register_dataset', 'tensor_dataset', 'unregister_dataset', 'write_idx']


def __getattr__(name: str) -> Any:  # PEP 562: lazy re-export, so that importing a sibling stays cheap
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("bsnn_bindsnet.data.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
