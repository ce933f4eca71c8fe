"""Dataset registry and loading: digits, Fashion-MNIST, MNIST, CIFAR-100, ImageNet, and yours.

Every loader returns a :class:`torch.utils.data.Dataset` whose items are ``(x, y)`` with ``x`` a
float32 tensor of shape :attr:`DatasetInfo.input_shape`, normalized to zero mean and unit
variance per channel, and ``y`` the class index. Four splits exist: ``"test"``; ``"val"``, a fixed
1/12 of the training images that no model trains on, for every selection (epoch, percentile,
T, exit threshold); ``"train"``, the rest; and ``"calib"``, a fixed, never augmented subset of
``"train"`` used for threshold balancing (:func:`~bsnn_bindsnet.data.sources.split_indices`).

A :class:`DatasetInfo` carries everything the package needs to know about a dataset: shape,
classes, normalization, calibration size, loader, preset family and the prefix of its presets
and experiment runs. :func:`register_dataset` adds one without editing the package (see
``docs/extending.md``); the built-in loaders are in :mod:`bsnn_bindsnet.data.sources`.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

from bsnn_bindsnet.data.formats import ImageTensorDataset, read_cifar_pickle, read_idx, write_idx
from bsnn_bindsnet.data.sources import (VAL_FRACTION, DatasetInfo, DatasetNotFoundError,
                                        calib_indices, split_indices, val_size,
                                        default_cache_dir, load_cifar100, load_digits, load_idx,
                                        load_imagenet, normalize, tensor_dataset)

__all__ = ["DATASETS", "SPLITS", "VAL_FRACTION", "split_indices", "val_size", "DatasetInfo", "DatasetNotFoundError", "ImageTensorDataset",
           "calib_indices", "dataset_for_prefix", "dataset_info", "default_cache_dir",
           "load_dataset", "make_loader", "normalize", "read_cifar_pickle", "read_idx",
           "refuse_loader", "register_dataset", "tensor_dataset", "unregister_dataset",
           "write_idx"]

SPLITS = ("train", "val", "calib", "test")

DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    """Add ``info`` to :data:`DATASETS` (and its presets to the training presets).

    Args:
        info: The dataset; its ``loader`` is required.
        overwrite: Replace a registered dataset of the same name.

    Returns:
        ``info``.

    Raises:
        ValueError: no loader, a name already registered (without ``overwrite``), or a
            ``prefix`` another dataset uses.
    """
    if not callable(info.loader):
        raise ValueError(f"dataset {info.name!r}: a loader is required (see DatasetInfo.loader)")
    if info.name in DATASETS and not overwrite:
        raise ValueError(f"dataset {info.name!r} is already registered; pass overwrite=True to "
                         "replace it")
    clash = [d.name for d in DATASETS.values() if d.prefix == info.prefix and d.name != info.name]
    if clash:
        raise ValueError(f"dataset {info.name!r}: prefix {info.prefix!r} is the prefix of "
                         f"{clash[0]!r}; choose another prefix")
    DATASETS[info.name] = info
    return info


def unregister_dataset(name: str) -> DatasetInfo:
    """Remove ``name`` from :data:`DATASETS` and return its info (tests, notebooks)."""
    return DATASETS.pop(dataset_info(name).name)


for _info in (
    # digits: mean/std of the pixels/16 of our 1437-sample train split (checked by a test).
    DatasetInfo("digits", (1, 8, 8), 10, (0.3049,), (0.3758,), calib_size=256,
                loader=load_digits, family="digits"),
    DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), loader=load_idx,
                family="fmnist", prefix="fmnist"),
    DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), loader=load_idx,
                family="mnist"),
    DatasetInfo("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409),
                (0.2673, 0.2564, 0.2762), loader=load_cifar100, augment=True,
                family="cifar100"),
    DatasetInfo("imagenet", (3, 224, 224), 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                calib_size=80, loader=load_imagenet, augment=True, family="imagenet"),
):
    register_dataset(_info)


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name``; ``ValueError`` lists the choices."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def dataset_for_prefix(prefix: str) -> DatasetInfo:
    """The dataset whose presets are ``PREFIX-*`` (``"fmnist"`` -> Fashion-MNIST)."""
    for info in DATASETS.values():
        if info.prefix == prefix:
            return info
    raise ValueError(f"no dataset has the preset prefix {prefix!r}; choose one of "
                     f"{sorted(d.prefix for d in DATASETS.values())}")


def load_dataset(name: str, split: str, *, data_root: str | os.PathLike | None = None,
                 download: bool = False, augment: bool | None = None,
                 calib_size: int | None = None) -> Dataset:
    """Load one split of a registered dataset.

    Args:
        name: A key of :data:`DATASETS`.
        split: ``"train"`` (the training images less val), ``"val"`` (1/12 of the training
            images, held out), ``"calib"`` (first ``calib_size`` items of a fixed permutation
            of the training images outside val, seeded with 0, never augmented) or ``"test"``.
        data_root: Directory searched first for the files (ignored by ``digits``).
        download: Download with torchvision when no local copy is found (MNIST-like, CIFAR-100).
        augment: Training augmentation; ``None`` means on for the train split of datasets
            that define one (``cifar100`` and ``imagenet``). ``True`` on ``calib``/``test``
            raises ``ValueError``.
        calib_size: Size of the calib split; defaults to the dataset's
            :attr:`~DatasetInfo.calib_size` (the paper's number).

    Returns:
        A dataset of ``(x, y)``: ``x`` float32 ``input_shape``, normalized; ``y`` int64 label.

    Raises:
        ValueError: Unknown name or split, or an augmentation that is not available.
        DatasetNotFoundError: No local copy and no (successful) download.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if augment is None:
        augment = split == "train" and info.augment
    if augment and split != "train":
        raise ValueError(f"augment=True with split={split!r}: evaluation splits are never "
                         "augmented (only 'train' may be)")
    if augment and not info.augment:
        raise ValueError(f"no training augmentation is defined for {name!r}; "
                         f"only for {sorted(d.name for d in DATASETS.values() if d.augment)}")
    if calib_size is None:
        calib_size = info.calib_size
    if calib_size < 1:
        raise ValueError(f"calib_size must be >= 1, got {calib_size}")
    return info.loader(info, split, data_root=data_root, download=download, augment=augment,
                       calib_size=calib_size)


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int = 0,
                epoch: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader whose order is a pure function of ``(seed, epoch)``.

    The loader owns a generator seeded with ``seed * 1_000_003 + epoch``, so a resumed run sees
    the same batches. Iterate it once and make a new loader for every epoch: a second pass
    continues the generator and gives another order.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers)


def refuse_loader(data: object, what: str, *, instead: str = "a tensor",
                  why: str = "batching is done here, with batch_size") -> None:
    """Refuse a ``DataLoader`` where a dataset is expected: the converter and the simulator
    batch the data themselves, and a loader's batches would be taken for samples."""
    if isinstance(data, DataLoader):
        raise TypeError(f"{what} is a DataLoader; pass its Dataset (loader.dataset) or "
                        f"{instead} instead ({why})")
