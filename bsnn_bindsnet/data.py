"""Dataset registry and loaders: digits, Fashion-MNIST, MNIST, CIFAR-100 and ImageNet.

Every loader returns a :class:`torch.utils.data.Dataset` whose items are ``(x, y)`` with ``x`` a
float32 tensor of shape :attr:`DatasetInfo.input_shape`, normalized to zero mean and unit
variance per channel, and ``y`` the class index. Three splits exist: ``"train"``, ``"test"`` and
``"calib"``, a fixed, never augmented subset of the training set used for threshold balancing.

Files are looked up in ``data_root``, then in ``$BSNN_DATA_ROOT``, then (Fashion-MNIST only) in
the Debian package path, then in ``~/.cache/bsnn_bindsnet/data``. torchvision, scikit-learn and
PIL are imported only inside the functions that need them.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from bsnn_bindsnet.data_formats import ImageTensorDataset, read_cifar_pickle, read_idx

log = logging.getLogger(__name__)

__all__ = ["DATASETS", "SPLITS", "DatasetInfo", "DatasetNotFoundError", "ImageTensorDataset",
           "calib_indices", "dataset_info", "default_cache_dir", "load_dataset", "make_loader",
           "read_cifar_pickle", "read_idx", "refuse_loader"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Args:
        name: Registry key.
        input_shape: ``(C, H, W)`` of one normalized sample.
        n_classes: Number of classes.
        mean: Per-channel mean subtracted after scaling pixels to ``[0, 1]``.
        std: Per-channel standard deviation divided by after subtracting ``mean``.
    """

    name: str
    input_shape: tuple[int, ...]
    n_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS: dict[str, DatasetInfo] = {
    # digits: mean/std of the pixels/16 of our 1437-sample train split (checked by a test).
    "digits": DatasetInfo("digits", (1, 8, 8), 10, (0.3049,), (0.3758,)),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,)),
    "cifar100": DatasetInfo(
        "cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    ),
    "imagenet": DatasetInfo(
        "imagenet", (3, 224, 224), 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ),
}
SPLITS = ("train", "calib", "test")
DEFAULT_CALIB_SIZE = {"digits": 256, "fashion-mnist": 3500, "mnist": 3500,
                      "cifar100": 3500, "imagenet": 80}
AUGMENTED_BY_DEFAULT = frozenset({"cifar100", "imagenet"})
DIGITS_N_TEST = 360
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_DATA_ROOT = "BSNN_DATA_ROOT"
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TORCHVISION_DIR = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are in none of the searched places (the message lists them)."""


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name``; ``ValueError`` lists the choices."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def default_cache_dir() -> Path:
    """``~/.cache/bsnn_bindsnet/data``, resolved against ``$HOME`` at call time."""
    return Path.home() / ".cache" / "bsnn_bindsnet" / "data"


def load_dataset(name: str, split: str, *, data_root: str | os.PathLike | None = None,
                 download: bool = False, augment: bool | None = None,
                 calib_size: int | None = None) -> Dataset:
    """Load one split of a registered dataset.

    Args:
        name: A key of :data:`DATASETS`.
        split: ``"train"``, ``"calib"`` (first ``calib_size`` items of a fixed permutation of
            the train set, seeded with 0, never augmented) or ``"test"``.
        data_root: Directory searched first for the files (ignored by ``digits``).
        download: Download with torchvision when no local copy is found (MNIST-like, CIFAR-100).
        augment: Training augmentation; ``None`` means on for the train split of ``cifar100``
            and ``imagenet`` only. ``True`` on ``calib``/``test`` raises ``ValueError``.
        calib_size: Size of the calib split; defaults to the paper's number per dataset.

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
        augment = split == "train" and name in AUGMENTED_BY_DEFAULT
    if augment and split != "train":
        raise ValueError(f"augment=True with split={split!r}: evaluation splits are never "
                         "augmented (only 'train' may be)")
    if augment and name not in AUGMENTED_BY_DEFAULT:
        raise ValueError(f"no training augmentation is defined for {name!r}; "
                         f"only for {sorted(AUGMENTED_BY_DEFAULT)}")
    if calib_size is None:
        calib_size = DEFAULT_CALIB_SIZE[name]
    if calib_size < 1:
        raise ValueError(f"calib_size must be >= 1, got {calib_size}")
    if name == "digits":
        return _load_digits(info, split, calib_size)
    if name in _TORCHVISION_DIR:
        return _load_idx_dataset(info, split, data_root, download=download, calib_size=calib_size)
    if name == "cifar100":
        return _load_cifar100(info, split, data_root, download=download, augment=augment,
                              calib_size=calib_size)
    return _load_imagenet(info, split, data_root, augment=augment, calib_size=calib_size)


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


def calib_indices(n_train: int, calib_size: int) -> torch.Tensor:
    """First ``calib_size`` entries of ``randperm(n_train)`` seeded with 0 (clipped to n)."""
    if calib_size > n_train:
        log.warning("calib_size %d > %d training items; using all of them", calib_size, n_train)
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
    return perm[:calib_size]


def _candidate_dirs(data_root: str | os.PathLike | None, subdirs: tuple[str, ...],
                    extra: tuple[Path, ...] = ()) -> list[Path]:
    """Search order: ``data_root``, ``$BSNN_DATA_ROOT``, ``extra``, the cache dir (each joined
    with every entry of ``subdirs``; ``""`` is the directory itself)."""
    roots = [Path(r).expanduser() for r in (data_root, os.environ.get(ENV_DATA_ROOT)) if r]
    dirs = [r / sub for r in roots for sub in subdirs] + list(extra)
    return list(dict.fromkeys(dirs + [default_cache_dir() / sub for sub in subdirs]))


def _download_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root).expanduser() if data_root else default_cache_dir()


def _not_found(name: str, what: str, tried: list[Path], how: str) -> DatasetNotFoundError:
    listing = "\n  ".join(str(d) for d in tried)
    return DatasetNotFoundError(f"{name}: no directory holds {what}. Tried:\n  {listing}\n"
                                f"{how} (or set ${ENV_DATA_ROOT}).")


def _normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """``x``: float ``[N, C, H, W]`` in ``[0, 1]`` -> normalized per channel."""
    mean = torch.tensor(info.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def refuse_loader(data: object, what: str, *, instead: str = "a tensor",
                  why: str = "batching is done here, with batch_size") -> None:
    """Refuse a ``DataLoader`` where a dataset is expected: the converter and the simulator
    batch the data themselves, and a loader's batches would be taken for samples."""
    if isinstance(data, DataLoader):
        raise TypeError(f"{what} is a DataLoader; pass its Dataset (loader.dataset) or "
                        f"{instead} instead ({why})")


def _check_labels(info: DatasetInfo, labels: torch.Tensor, source: str | os.PathLike) -> None:
    """Every label a class index of ``info``: a foreign or damaged label file would otherwise
    only show as a wrong accuracy."""
    bad = labels[(labels < 0) | (labels >= info.n_classes)]
    if bad.numel():
        raise ValueError(f"{info.name}: {source} holds label {int(bad[0])} ({bad.numel()} "
                         f"labels in all) outside [0, {info.n_classes}); expected class "
                         f"indices of its {info.n_classes} classes")


def _split_tensors(x: torch.Tensor, y: torch.Tensor, split: str, calib_size: int) -> Dataset:
    if split == "calib":
        idx = calib_indices(len(x), calib_size)
        x, y = x[idx], y[idx]
    return TensorDataset(x, y)


# ---------------------------------------------------------------- digits (scikit-learn)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data).float().div(16.0).view(-1, 1, 8, 8)
    return x, torch.from_numpy(bunch.target).long()


def _load_digits(info: DatasetInfo, split: str, calib_size: int) -> Dataset:
    x, y = _digits_arrays()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = perm[-DIGITS_N_TEST:] if split == "test" else perm[:-DIGITS_N_TEST]
    return _split_tensors(_normalize(x[idx], info), y[idx], split, calib_size)


# ---------------------------------------------------------------- IDX (Fashion-MNIST, MNIST)


def _idx_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_idx_files(directory: Path) -> bool:
    return all(_idx_file(directory, stem) is not None for stem in _IDX_FILES)


@functools.lru_cache(maxsize=8)
def _decode_idx_split(directory: str, prefix: str, stamp: tuple) -> tuple[torch.Tensor, ...]:
    """Decoded uint8 images ``[N, 28, 28]`` and int64 labels; ``stamp`` invalidates on change."""
    img_path = _idx_file(Path(directory), f"{prefix}-images-idx3-ubyte")
    lbl_path = _idx_file(Path(directory), f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28) or images.dtype != torch.uint8:
        raise ValueError(f"{img_path}: expected uint8 images [N, 28, 28], got "
                         f"{images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"{lbl_path}: expected {len(images)} labels, got {tuple(labels.shape)}")
    return images, labels.long()


def _load_idx_split(directory: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    paths = [_idx_file(directory, f"{prefix}-{kind}") for kind in
             ("images-idx3-ubyte", "labels-idx1-ubyte")]
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return _decode_idx_split(str(directory.resolve()), prefix, stamp)


def _load_idx_dataset(info: DatasetInfo, split: str, data_root: str | os.PathLike | None, *,
                      download: bool, calib_size: int) -> Dataset:
    sub = f"{_TORCHVISION_DIR[info.name]}/raw"
    fmnist = info.name == "fashion-mnist"
    debian = (DEBIAN_FASHION_MNIST_DIR,) if fmnist else ()
    candidates = _candidate_dirs(data_root, ("", sub), debian)
    directory = next((d for d in candidates if _has_idx_files(d)), None)
    if directory is None and download:
        _torchvision_download(info.name, _download_root(data_root))
        directory = _download_root(data_root) / sub
        candidates.append(directory)
        directory = directory if _has_idx_files(directory) else None
    if directory is None:
        apt = ("`apt-get install dataset-fashion-mnist` (Debian, installs "
               f"{DEBIAN_FASHION_MNIST_DIR}), " if fmnist else "")
        raise _not_found(info.name, f"the four IDX files {list(_IDX_FILES)} (plain or .gz)",
                         candidates, f"Get them with {apt}`--download` (needs internet), or "
                         "pass `--data-root DIR` pointing at the IDX files")
    log.info("%s: reading IDX files from %s", info.name, directory)
    images, labels = _load_idx_split(directory, "t10k" if split == "test" else "train")
    _check_labels(info, labels, directory)
    x = _normalize(images.unsqueeze(1).float().div(255.0), info)
    return _split_tensors(x, labels, split, calib_size)


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar100": tvd.CIFAR100}[name]
    log.info("%s: downloading with torchvision into %s", name, root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as exc:  # network errors come in many types; keep the cause chained
        raise DatasetNotFoundError(f"{name}: download into {root} failed ({exc}); pass "
                                   "`--data-root DIR` with a local copy instead") from exc


# ---------------------------------------------------------------- CIFAR-100


def _has_cifar_files(directory: Path) -> bool:
    return (directory / "train").is_file() and (directory / "test").is_file()


@functools.lru_cache(maxsize=4)
def _decode_cifar(path: str, stamp: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    return read_cifar_pickle(path)


def _load_cifar100(info: DatasetInfo, split: str, data_root: str | os.PathLike | None, *,
                   download: bool, augment: bool, calib_size: int) -> Dataset:
    candidates = _candidate_dirs(data_root, ("cifar-100-python", ""))
    if download and not any(_has_cifar_files(d) for d in candidates):
        _torchvision_download("cifar100", _download_root(data_root))
        candidates.append(_download_root(data_root) / "cifar-100-python")
    found = [d for d in candidates if _has_cifar_files(d)]
    if not found:
        raise _not_found("cifar100", "the python pickles cifar-100-python/{train,test}",
                         candidates, "Use `--download` (needs internet) or pass "
                         "`--data-root DIR` whose cifar-100-python/ holds them")
    path = found[0] / ("test" if split == "test" else "train")
    log.info("cifar100: reading %s", path)
    stat = path.stat()
    images, labels = _decode_cifar(str(path.resolve()), (stat.st_size, stat.st_mtime_ns))
    _check_labels(info, labels, path)
    if split == "calib":
        idx = calib_indices(len(images), calib_size)
        images, labels = images[idx], labels[idx]
    return ImageTensorDataset(images, labels, mean=info.mean, std=info.std, augment=augment)


# ---------------------------------------------------------------- ImageNet (folders)


def _class_dirs(directory: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir())


def _load_imagenet(info: DatasetInfo, split: str, data_root: str | os.PathLike | None, *,
                   augment: bool, calib_size: int) -> Dataset:
    candidates = _candidate_dirs(data_root, ("", "imagenet"))
    root = next((d for d in candidates if (d / "train").is_dir() and (d / "val").is_dir()), None)
    if root is None:
        raise _not_found("imagenet", "train/ and val/", candidates, "ImageNet cannot be "
                         "downloaded automatically: obtain ILSVRC2012 from https://image-net.org, "
                         "lay it out as ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG, and "
                         "pass `--data-root ROOT`")
    train_classes, val_classes = _class_dirs(root / "train"), _class_dirs(root / "val")
    if train_classes != val_classes:
        raise ValueError(f"imagenet: {root}/val must hold the same class folders as "
                         f"{root}/train ({len(val_classes)} vs {len(train_classes)}); sort the "
                         "flat ILSVRC val images into <wnid>/ folders first")
    if len(train_classes) != info.n_classes:
        log.warning("imagenet: %s has %d classes, not %d", root, len(train_classes),
                    info.n_classes)
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(info.mean, info.std)
    if augment:
        transform = transforms.Compose([transforms.RandomResizedCrop(224),
                                        transforms.RandomHorizontalFlip(),
                                        transforms.ToTensor(), normalize])
    else:
        transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                        transforms.ToTensor(), normalize])
    folder = datasets.ImageFolder(str(root / ("val" if split == "test" else "train")),
                                  transform=transform)
    log.info("imagenet: %s split from %s (%d images)", split, folder.root, len(folder))
    if split == "calib":
        return Subset(folder, calib_indices(len(folder), calib_size).tolist())
    return folder
