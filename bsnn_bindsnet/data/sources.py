"""What a dataset is (:class:`DatasetInfo`) and where the built-in ones come from.

One loader per source: scikit-learn's digits, IDX files (Fashion-MNIST, MNIST), the CIFAR-100
python pickles and ImageNet folders. Every loader has the signature of
:attr:`DatasetInfo.loader`. Files are looked up in ``data_root``, then in ``$BSNN_DATA_ROOT``,
then (Fashion-MNIST only) in the Debian package path, then in ``~/.cache/bsnn_bindsnet/data``.
torchvision, scikit-learn and PIL are imported only inside the functions that need them. The
registry itself is :mod:`bsnn_bindsnet.data.registry`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from bsnn_bindsnet.data.formats import ImageTensorDataset, read_cifar_pickle, read_idx

log = logging.getLogger(__name__)

__all__ = ["VAL_FRACTION", "DatasetInfo", "DatasetNotFoundError", "calib_indices", "default_cache_dir",
           "split_indices", "val_size",
           "load_cifar100", "load_digits", "load_idx", "load_imagenet", "normalize",
           "tensor_dataset"]

DIGITS_N_TEST = 360
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_DATA_ROOT = "BSNN_DATA_ROOT"
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TORCHVISION_DIR = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


@dataclass(frozen=True)
class DatasetInfo:
    """Everything a dataset needs, registered with :func:`bsnn_bindsnet.data.registry.register_dataset`.

    Args:
        name: Registry key (``--dataset NAME``).
        input_shape: ``(C, H, W)`` of one normalized sample.
        n_classes: Number of classes.
        mean: Per-channel mean subtracted after scaling pixels to ``[0, 1]``.
        std: Per-channel standard deviation divided by after subtracting ``mean``.
        calib_size: Default size of the ``"calib"`` split (threshold balancing).
        loader: ``loader(info, split, *, data_root, download, augment, calib_size)`` ->
            a ``Dataset`` of ``(x, y)`` for ``split`` in ``"train"``, ``"val"``, ``"calib"``
            (the three cut from the training images by :func:`split_indices`; val and calib
            never augmented) and ``"test"``; :func:`tensor_dataset` does the normalizing and
            the cut for in-memory data.
        augment: The loader defines a training augmentation, on by default for ``"train"``.
        family: The preset family (model + recipes) of
            :data:`bsnn_bindsnet.training.recipes.FAMILIES` its presets use; ``None``: none.
        prefix: Prefix of its preset names (``PREFIX-fp``, ...) and of the experiments' run
            folders; defaults to ``name``.
    """

    name: str
    input_shape: tuple[int, ...]
    n_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    calib_size: int = 3500
    loader: Callable[..., Dataset] | None = None
    augment: bool = False
    family: str | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        object.__setattr__(self, "prefix", self.prefix or self.name)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"dataset {self.name!r}: input_shape must be (C, H, W), got "
                             f"{self.input_shape}")
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
            raise ValueError(f"dataset {self.name!r}: mean and std need one value per channel "
                             f"({channels}) and std > 0, got {self.mean} and {self.std}")
        if self.n_classes < 2 or self.calib_size < 1:
            raise ValueError(f"dataset {self.name!r}: needs n_classes >= 2 and calib_size >= 1,"
                             f" got {self.n_classes} and {self.calib_size}")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are in none of the searched places (the message lists them)."""


def default_cache_dir() -> Path:
    """``~/.cache/bsnn_bindsnet/data``, resolved against ``$HOME`` at call time."""
    return Path.home() / ".cache" / "bsnn_bindsnet" / "data"


VAL_FRACTION = 1 / 12
"""Share of the training images held out as the ``"val"`` split (5,000 of 60,000; issue 22)."""


def val_size(n_train: int) -> int:
    """Images of the ``"val"`` split for a training set of ``n_train`` (at least one)."""
    return max(1, round(n_train * VAL_FRACTION))


def split_indices(n_train: int, split: str, calib_size: int = 0) -> torch.Tensor:
    """Indices into the training images of the ``"train"``, ``"val"`` or ``"calib"`` split.

    One permutation ``randperm(n_train)`` seeded with 0 decides all three: ``"val"`` is its
    last :func:`val_size` entries, held out of training and of calibration; ``"calib"`` its
    first ``calib_size`` (clipped to the images outside val: threshold balancing uses training
    images, as the papers do); ``"train"`` everything but val, in file order.
    """
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
    n_fit = n_train - val_size(n_train)
    if split == "val":
        return perm[n_fit:].sort().values
    if split == "train":
        return perm[:n_fit].sort().values
    if split == "calib":
        if calib_size > n_fit:
            log.warning("calib_size %d > %d training items outside val; using all of them",
                        calib_size, n_fit)
        return perm[:min(calib_size, n_fit)]
    raise ValueError(f"split_indices: {split!r} is not a split of the training images; "
                     "expected 'train', 'val' or 'calib'")


def calib_indices(n_train: int, calib_size: int) -> torch.Tensor:
    """The ``"calib"`` split's indices: :func:`split_indices` ``(n_train, "calib", calib_size)``."""
    return split_indices(n_train, "calib", calib_size)


def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """``x``: float ``[N, C, H, W]`` in ``[0, 1]`` -> normalized per channel."""
    mean = torch.tensor(info.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def tensor_dataset(info: DatasetInfo, x: torch.Tensor, y: torch.Tensor, split: str,
                   calib_size: int) -> TensorDataset:
    """In-memory data of one split as a loader returns it.

    Args:
        info: The dataset (its labels are checked against ``n_classes``).
        x: float ``[N, *input_shape]`` in ``[0, 1]``: the training images for ``"train"``,
            ``"val"`` and ``"calib"``, the test images for ``"test"``.
        y: int64 labels ``[N]``.
        split: ``"train"``, ``"val"``, ``"calib"`` or ``"test"``.
        calib_size: Items of the calib split.

    Returns:
        ``TensorDataset(normalize(x), y)``, cut by :func:`split_indices` except for ``"test"``.
    """
    if tuple(x.shape[1:]) != info.input_shape or len(x) != len(y):
        shape = ", ".join(map(str, info.input_shape))
        raise ValueError(f"{info.name}: expected images [N, {shape}] and N labels, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    _check_labels(info, y, "the loader")
    return _split_tensors(normalize(x, info), y.long(), split, calib_size)


def _candidate_dirs(data_root: str | os.PathLike | None, subdirs: tuple[str, ...],
                    extra: tuple[Path, ...] = (), *, download: bool = False) -> list[Path]:
    """Search order: ``data_root``, ``$BSNN_DATA_ROOT``, ``extra``, the cache dir (each joined
    with every entry of ``subdirs``; ``""`` is the directory itself)."""
    check_data_root(data_root, download)
    roots = [Path(r).expanduser() for r in (data_root, os.environ.get(ENV_DATA_ROOT)) if r]
    dirs = [r / sub for r in roots for sub in subdirs] + list(extra)
    return list(dict.fromkeys(dirs + [default_cache_dir() / sub for sub in subdirs]))


def check_data_root(data_root: str | os.PathLike | None, download: bool = False) -> None:
    """A ``data_root`` that is given names an existing folder (``download`` may create it):
    a mistyped one is refused rather than passed over for another copy of the data."""
    if data_root is None or download:
        return
    if not Path(data_root).expanduser().is_dir():
        raise DatasetNotFoundError(f"data_root {data_root}: no such folder; expected the folder "
                                   "holding the dataset files (or download them into it)")


def _download_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root).expanduser() if data_root else default_cache_dir()


def _not_found(name: str, what: str, tried: list[Path], how: str) -> DatasetNotFoundError:
    listing = "\n  ".join(str(d) for d in tried)
    return DatasetNotFoundError(f"{name}: no directory holds {what}. Tried:\n  {listing}\n"
                                f"{how} (or set ${ENV_DATA_ROOT}).")


def _check_labels(info: DatasetInfo, labels: torch.Tensor, source: str | os.PathLike) -> None:
    """Every label a class index of ``info``: a foreign or damaged label file would otherwise
    only show as a wrong accuracy."""
    bad = labels[(labels < 0) | (labels >= info.n_classes)]
    if bad.numel():
        raise ValueError(f"{info.name}: {source} holds label {int(bad[0])} ({bad.numel()} "
                         f"labels in all) outside [0, {info.n_classes}); expected class "
                         f"indices of its {info.n_classes} classes")


def _split_tensors(x: torch.Tensor, y: torch.Tensor, split: str, calib_size: int) -> Dataset:
    """Cut the training images to ``split`` (:func:`split_indices`); test images stay whole."""
    if split != "test":
        idx = split_indices(len(x), split, calib_size)
        x, y = x[idx], y[idx]
    return TensorDataset(x, y)


# ---------------------------------------------------------------- digits (scikit-learn)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data).float().div(16.0).view(-1, 1, 8, 8)
    return x, torch.from_numpy(bunch.target).long()


def load_digits(info: DatasetInfo, split: str, *, data_root: str | os.PathLike | None = None,
                download: bool = False, augment: bool = False, calib_size: int) -> Dataset:
    """scikit-learn's 8x8 digits: a fixed split of 360 test images (``data_root`` unused,
    but a missing one is refused as for every dataset)."""
    check_data_root(data_root, download)
    x, y = _digits_arrays()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = perm[-DIGITS_N_TEST:] if split == "test" else perm[:-DIGITS_N_TEST]
    return _split_tensors(normalize(x[idx], info), y[idx], split, calib_size)


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


def load_idx(info: DatasetInfo, split: str, *, data_root: str | os.PathLike | None = None,
             download: bool = False, augment: bool = False, calib_size: int) -> Dataset:
    """The four MNIST-style IDX files (plain or ``.gz``) of 28x28 uint8 images.

    Searched as ``DIR/`` and ``DIR/<torchvision folder>/raw`` (``MNIST``, ``FashionMNIST``; a
    registered dataset of another name: ``DIR/`` only); ``download`` uses torchvision for
    ``mnist`` and ``fashion-mnist``.
    """
    sub = f"{_TORCHVISION_DIR[info.name]}/raw" if info.name in _TORCHVISION_DIR else ""
    fmnist = info.name == "fashion-mnist"
    debian = (DEBIAN_FASHION_MNIST_DIR,) if fmnist else ()
    candidates = _candidate_dirs(data_root, tuple(dict.fromkeys(("", sub))), debian,
                                 download=download)
    directory = next((d for d in candidates if _has_idx_files(d)), None)
    if directory is None and download and info.name in _TORCHVISION_DIR:
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
    x = normalize(images.unsqueeze(1).float().div(255.0), info)
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


def load_cifar100(info: DatasetInfo, split: str, *, data_root: str | os.PathLike | None = None,
                  download: bool = False, augment: bool = False, calib_size: int) -> Dataset:
    """CIFAR-100 from torchvision's python pickles ``cifar-100-python/{train,test}``."""
    candidates = _candidate_dirs(data_root, ("cifar-100-python", ""), download=download)
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
    if split != "test":
        idx = split_indices(len(images), split, calib_size)
        images, labels = images[idx], labels[idx]
    return ImageTensorDataset(images, labels, mean=info.mean, std=info.std, augment=augment)


# ---------------------------------------------------------------- ImageNet (folders)


def _class_dirs(directory: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir())


def load_imagenet(info: DatasetInfo, split: str, *, data_root: str | os.PathLike | None = None,
                  download: bool = False, augment: bool = False, calib_size: int) -> Dataset:
    """ImageNet as ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` (no download)."""
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

    norm = transforms.Normalize(info.mean, info.std)
    if augment:
        transform = transforms.Compose([transforms.RandomResizedCrop(224),
                                        transforms.RandomHorizontalFlip(),
                                        transforms.ToTensor(), norm])
    else:
        transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                        transforms.ToTensor(), norm])
    folder = datasets.ImageFolder(str(root / ("val" if split == "test" else "train")),
                                  transform=transform)
    log.info("imagenet: %s split from %s (%d images)", split, folder.root, len(folder))
    if split != "test":
        return Subset(folder, split_indices(len(folder), split, calib_size).tolist())
    return folder
