"""On-disk formats read without torchvision: IDX (MNIST, Fashion-MNIST; also written) and the
CIFAR-100 python pickles, plus the in-memory image dataset used for CIFAR-100 (augmentation
with torch's global RNG)."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ImageTensorDataset", "read_cifar_pickle", "read_idx", "write_idx"]

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (plain or ``.gz``) into a tensor of its stored shape and dtype.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
    dimension; the data follow in C order, big-endian.

    Raises:
        ValueError: Bad magic number, or a size that does not match the header (names the file).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except (EOFError, OSError) as exc:  # truncated or corrupt gzip stream
        raise ValueError(f"{path}: unreadable IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: size {len(raw)} bytes does not match the header "
                         f"(shape {shape}, dtype {dtype.name}: {expected} bytes); "
                         "the file is truncated or corrupt")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(data.astype(dtype.newbyteorder("="), copy=True))


def write_idx(data: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``data`` as an IDX file (``.gz``: gzip-compressed), the inverse of
    :func:`read_idx`; MNIST-style files are uint8 images ``[N, 28, 28]`` and uint8 labels
    ``[N]``.

    Raises:
        ValueError: a dtype IDX has no code for.
    """
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise ValueError(f"{path}: IDX stores {sorted(str(d) for d in codes)}, not {array.dtype}")
    dtype = np.dtype(_IDX_DTYPES[codes[array.dtype]])
    raw = (bytes([0, 0, codes[array.dtype], array.ndim])
           + np.asarray(array.shape, dtype=">u4").tobytes()
           + np.ascontiguousarray(array, dtype=dtype).tobytes())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def read_cifar_pickle(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a CIFAR-100 python pickle (``train`` or ``test``) without md5 checks.

    Returns:
        uint8 images ``[N, 3, 32, 32]`` and int64 fine labels ``[N]``.
    """
    path = Path(path)
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    if not isinstance(entry, dict) or b"data" not in entry or b"fine_labels" not in entry:
        raise ValueError(f"{path}: not a CIFAR-100 pickle (needs keys b'data', b'fine_labels')")
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    labels = torch.as_tensor(entry[b"fine_labels"], dtype=torch.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got "
                         f"{data.shape} and {tuple(labels.shape)}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels


class ImageTensorDataset(Dataset):
    """uint8 images held in memory, scaled, optionally augmented, then normalized.

    Augmentation is a random 32x32 crop of the zero-padded (4 px) image and a horizontal flip
    with probability 1/2, drawn from torch's global RNG (reproducible under ``manual_seed``).

    Args:
        images: uint8 ``[N, C, H, W]``.
        labels: int64 ``[N]``.
        mean: Per-channel mean (``[0, 1]`` pixel scale).
        std: Per-channel standard deviation.
        augment: Apply crop and flip in ``__getitem__``.
        padding: Padding of the random crop.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: bool = False, padding: int = 4) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.augment, self.padding = augment, padding

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index].float().div(255.0)
        if self.augment:
            _, h, w = x.shape
            p = self.padding
            x = torch.nn.functional.pad(x, (p, p, p, p))
            top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            x = x[:, top:top + h, left:left + w]
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        return (x - self.mean) / self.std, self.labels[index]
