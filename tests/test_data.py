"""Tests for bsnn_bindsnet.data.registry: fixtures are written by hand into tmp_path at test time."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bsnn_bindsnet.data import registry as data, sources as data_sources
from bsnn_bindsnet.data.registry import (
    DATASETS,
    DatasetInfo,
    DatasetNotFoundError,
    dataset_info,
    load_dataset,
    make_loader,
    read_idx,
)

IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@pytest.fixture(autouse=True)
def isolated_data_env(monkeypatch, tmp_path):
    """No test sees the developer's $BSNN_DATA_ROOT or ~/.cache."""
    monkeypatch.delenv("BSNN_DATA_ROOT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(idx_bytes(array)))
    else:
        path.write_bytes(idx_bytes(array))
    return path


def write_mnist_like(directory: Path, *, gz: bool, n_train: int = 6, n_test: int = 3) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(directory / IDX_STEMS[split][0], images, gz=gz)
        write_idx(directory / IDX_STEMS[split][1], labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


def write_cifar(root: Path, n_train: int = 5, n_test: int = 3) -> dict:
    directory = root / "cifar-100-python"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        pixels[0, 0], pixels[0, 2048] = 255, 0   # R(0, 0) and B(0, 0) of the first image
        labels = [int(v) for v in rng.integers(0, 100, size=n)]
        entry = {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(),
                 b"fine_labels": labels, b"coarse_labels": [0] * n, b"data": pixels}
        (directory / split).write_bytes(pickle.dumps(entry))
        arrays[split] = (pixels, labels)
    meta = {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}
    (directory / "meta").write_bytes(pickle.dumps(meta))
    return arrays


def write_imagenet(root: Path, wnids=("n01440764", "n01443537"), n_train=3, n_val=2) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for split, n in (("train", n_train), ("val", n_val)):
        for wnid in wnids:
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.JPEG")


# ------------------------------------------------------------------------------ registry


def test_registry_shapes_and_channels():
    assert dataset_info("cifar100").input_shape == (3, 32, 32)
    assert dataset_info("imagenet").n_classes == 1000
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.input_shape[0]


def test_registry_carries_calib_size_augmentation_family_and_prefix():
    got = {name: (i.calib_size, i.augment, i.family, i.prefix) for name, i in DATASETS.items()}
    assert got == {"digits": (256, False, "digits", "digits"),
                   "fashion-mnist": (3500, False, "fmnist", "fmnist"),
                   "mnist": (3500, False, "mnist", "mnist"),
                   "cifar100": (3500, True, "cifar100", "cifar100"),
                   "imagenet": (80, True, "imagenet", "imagenet")}
    assert data.dataset_for_prefix("fmnist").name == "fashion-mnist"
    with pytest.raises(ValueError, match="no dataset has the preset prefix 'svhn'"):
        data.dataset_for_prefix("svhn")


def test_write_idx_is_the_inverse_of_read_idx(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    plain = data.write_idx(images, tmp_path / "a-idx3-ubyte")
    assert plain.read_bytes() == idx_bytes(images)              # the layout of the test's writer
    packed = data.write_idx(torch.from_numpy(images), tmp_path / "b-idx3-ubyte.gz")
    assert gzip.decompress(packed.read_bytes()) == idx_bytes(images)
    assert torch.equal(read_idx(packed), torch.from_numpy(images))
    with pytest.raises(ValueError, match="IDX stores"):
        data.write_idx(np.zeros(2, dtype=np.uint32), tmp_path / "c")


def test_tensor_dataset_normalizes_and_cuts_the_calib_split():
    info = DatasetInfo("toy", (1, 2, 2), 2, (0.5,), (0.25,))
    x, y = torch.full((5, 1, 2, 2), 0.75), torch.tensor([0, 1, 0, 1, 1])
    train = data.tensor_dataset(info, x, y, "train", calib_size=3)
    assert torch.equal(train.tensors[0], torch.ones(4, 1, 2, 2))   # (0.75 - 0.5) / 0.25; 1 in val
    calib = data.tensor_dataset(info, x, y, "calib", calib_size=3)
    assert torch.equal(calib.tensors[1], y[data.calib_indices(5, 3)])
    with pytest.raises(ValueError, match="label 2"):
        data.tensor_dataset(info, x, torch.tensor([0, 1, 2, 0, 0]), "train", calib_size=3)
    with pytest.raises(ValueError, match=r"expected images \[N, 1, 2, 2\]"):
        data.tensor_dataset(info, x.view(5, 4), y, "train", calib_size=3)


def test_val_is_held_out_of_train_and_calib():
    """Issue 22: 5,000 of 60,000 (1/12) held out; train and val partition the training images,
    calib is drawn from train only."""
    assert data.val_size(60000) == 5000 and data.val_size(1437) == 120 and data.val_size(5) == 1
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    val, train = data.split_indices(12, "val"), data.split_indices(12, "train")
    assert torch.equal(val, perm[11:].sort().values)               # the permutation's last 1/12
    assert sorted(val.tolist() + train.tolist()) == list(range(12))
    calib = data.split_indices(12, "calib", 20)                    # clipped to the 11 outside val
    assert len(calib) == 11 and not set(calib.tolist()) & set(val.tolist())
    with pytest.raises(ValueError, match="'train', 'val' or 'calib'"):
        data.split_indices(12, "test")


@pytest.mark.parametrize("call", [lambda: dataset_info("svhn"),
                                  lambda: load_dataset("svhn", "train")])
def test_unknown_dataset_lists_choices(call):
    with pytest.raises(ValueError, match="fashion-mnist.*") as err:
        call()
    assert all(name in str(err.value) for name in DATASETS)


def test_unknown_split_lists_choices():
    with pytest.raises(ValueError, match="'validation'") as err:
        load_dataset("digits", "validation")
    assert all(split in str(err.value) for split in ("train", "calib", "test"))


def test_augment_rejected_where_undefined():
    with pytest.raises(ValueError, match="never augmented"):
        load_dataset("digits", "calib", augment=True)
    with pytest.raises(ValueError, match="no training augmentation"):
        load_dataset("digits", "train", augment=True)


# ------------------------------------------------------------------------------ digits


def test_digits_splits_shapes_and_determinism():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    val = load_dataset("digits", "val")
    assert len(test) == 360 and len(train) == 1797 - 360 - 120 and len(val) == 120
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    again = load_dataset("digits", "test")
    assert torch.equal(test.tensors[0], again.tensors[0])
    assert torch.equal(test.tensors[1], again.tensors[1])
    train_rows = {tuple(r) for r in train.tensors[0].flatten(1).tolist()}
    test_rows = {tuple(r) for r in test.tensors[0].flatten(1).tolist()}
    assert train_rows.isdisjoint(test_rows)


def test_digits_split_is_index_disjoint():
    perm = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    assert set(perm[-360:].tolist()).isdisjoint(perm[:-360].tolist())


def test_digits_normalization_constants_match_train_split():
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().data).double() / 16
    perm = torch.randperm(len(raw), generator=torch.Generator().manual_seed(0))
    train = raw[perm[:-360]]
    info = dataset_info("digits")
    assert abs(train.mean().item() - info.mean[0]) < 1e-3
    assert abs(train.std().item() - info.std[0]) < 1e-3
    x = torch.cat([load_dataset("digits", s).tensors[0] for s in ("train", "val")]).double()
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3  # train + val


def _positions_in_train(n_train: int, calib_size: int) -> list[int]:
    """Where the calib images sit in the train split (both cut from the training images)."""
    train = data.split_indices(n_train, "train").tolist()
    return [train.index(i) for i in data.split_indices(n_train, "calib", calib_size).tolist()]


def test_digits_calib_is_fixed_subset_of_train():
    train = load_dataset("digits", "train")
    calib = load_dataset("digits", "calib")
    assert len(calib) == 256
    idx = _positions_in_train(1797 - 360, 256)
    assert torch.equal(calib.tensors[0], train.tensors[0][idx])
    assert torch.equal(calib.tensors[1], train.tensors[1][idx])
    assert len(load_dataset("digits", "calib", calib_size=10)) == 10


# ------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "imgs-idx3-ubyte", images, gz=gz)
    out = read_idx(path)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    assert out.tolist() == images.tolist()
    labels = write_idx(tmp_path / "lbl-idx1-ubyte", np.array([7, 0, 9], np.uint8), gz=gz)
    assert read_idx(labels).tolist() == [7, 0, 9]


def test_read_idx_big_endian_int32(tmp_path):
    path = tmp_path / "ints-idx1-ubyte"
    path.write_bytes(struct.pack(">HBBI", 0, 0x0C, 1, 2) + struct.pack(">ii", 1, -70000))
    assert read_idx(path).tolist() == [1, -70000]


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_names_file(tmp_path, gz):
    payload = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10]
    path = tmp_path / ("short-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(ValueError, match="short-idx3-ubyte.*does not match the header"):
        read_idx(path)


def test_read_idx_cut_gzip_stream_names_file(tmp_path):
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))[:-20])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("layout,gz", [("", False), ("FashionMNIST/raw", True)])
def test_fashion_mnist_from_data_root(tmp_path, layout, gz):
    root = tmp_path / "root"
    arrays = write_mnist_like(root / layout, gz=gz)
    test = load_dataset("fashion-mnist", "test", data_root=root)
    images, labels = arrays["test"]
    assert len(test) == 3
    x, y = test[1]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.item() == labels[1]
    expected = (torch.from_numpy(images[1]).float() / 255 - 0.2860) / 0.3530
    assert torch.allclose(x[0], expected, atol=1e-6)
    train = load_dataset("fashion-mnist", "train", data_root=root)
    calib = load_dataset("fashion-mnist", "calib", data_root=root, calib_size=4)
    idx = _positions_in_train(6, 4)
    assert len(train) == 5 and torch.equal(calib.tensors[0], train.tensors[0][idx])  # 1 in val


def test_bsnn_data_root_env_is_searched(tmp_path, monkeypatch):
    write_mnist_like(tmp_path / "env" / "MNIST" / "raw", gz=False)
    monkeypatch.setenv("BSNN_DATA_ROOT", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()  # an existing folder without the files (a missing one is refused)
    x, _ = load_dataset("mnist", "train", data_root=tmp_path / "empty")[0]
    assert x.shape == (1, 28, 28)


def test_missing_mnist_lists_paths_and_download_hint(tmp_path):
    missing = tmp_path / "nothing"
    missing.mkdir()  # an empty folder: searched, then listed
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", "test", data_root=missing)
    message = str(err.value)
    assert str(missing) in message and str(missing / "MNIST" / "raw") in message
    assert str(tmp_path / "home" / ".cache" / "bsnn_bindsnet" / "data") in message
    assert "--download" in message and "--data-root" in message
    assert isinstance(err.value, FileNotFoundError)


def test_missing_fashion_mnist_mentions_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", data_root=tmp_path / "nothing")


@pytest.mark.skipif(not data_sources.DEBIAN_FASHION_MNIST_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed "
                           "(apt-get install dataset-fashion-mnist); CI installs it")
def test_real_debian_fashion_mnist():
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert len(train) == 55000 and len(test) == 10000 and len(load_dataset("fashion-mnist", "val")) == 5000
    x, y = test.tensors
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.min().item() == 0 and y.max().item() == 9
    assert abs(train.tensors[0].mean().item()) < 0.01       # constants fit the real data
    assert abs(train.tensors[0].std().item() - 1) < 0.01


# ------------------------------------------------------------------------------ CIFAR-100


def test_cifar100_normalization_and_labels(tmp_path):
    arrays = write_cifar(tmp_path)
    test = load_dataset("cifar100", "test", data_root=tmp_path)
    assert len(test) == 3
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert y.item() == arrays["test"][1][0]
    assert x[0, 0, 0].item() == pytest.approx((1.0 - 0.5071) / 0.2673, abs=1e-5)
    assert x[2, 0, 0].item() == pytest.approx((0.0 - 0.4409) / 0.2762, abs=1e-5)
    pixel = arrays["test"][0][0, 1024 + 32 * 5 + 7]            # G channel, row 5, column 7
    assert x[1, 5, 7].item() == pytest.approx((pixel / 255 - 0.4865) / 0.2564, abs=1e-5)


def test_cifar100_augmentation_only_on_train(tmp_path):
    write_cifar(tmp_path)
    train = load_dataset("cifar100", "train", data_root=tmp_path)
    plain = load_dataset("cifar100", "train", data_root=tmp_path, augment=False)
    assert train.augment and not plain.augment
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(8)]
    torch.manual_seed(0)
    assert all(torch.equal(d, train[0][0]) for d in draws)       # reproducible under the seed
    assert any(not torch.equal(d, plain[0][0]) for d in draws)
    assert all(d.shape == (3, 32, 32) for d in draws)
    test_a = load_dataset("cifar100", "test", data_root=tmp_path)
    test_b = load_dataset("cifar100", "test", data_root=tmp_path)
    assert not test_a.augment
    assert all(torch.equal(test_a[i][0], test_b[i][0]) for i in range(len(test_a)))
    calib = load_dataset("cifar100", "calib", data_root=tmp_path, calib_size=2)
    assert not calib.augment and len(calib) == 2
    with pytest.raises(ValueError, match="never augmented"):
        load_dataset("cifar100", "test", data_root=tmp_path, augment=True)


def test_cifar100_augmented_crop_is_a_shift_of_the_padded_image(tmp_path):
    write_cifar(tmp_path)
    train = load_dataset("cifar100", "train", data_root=tmp_path)
    plain = train.images[0].float() / 255
    padded = torch.nn.functional.pad(plain, (4, 4, 4, 4))
    torch.manual_seed(3)
    x, _ = train[0]
    x = x * train.std + train.mean
    windows = [padded[:, t:t + 32, l:l + 32] for t in range(9) for l in range(9)]
    assert any(torch.allclose(x, w, atol=1e-5) or torch.allclose(x, w.flip(-1), atol=1e-5)
               for w in windows)


def test_missing_cifar100_message(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar100", "train", data_root=tmp_path / "nothing")
    assert str(tmp_path / "nothing" / "cifar-100-python") in str(err.value)
    assert "--download" in str(err.value)


# ------------------------------------------------------------------------------ ImageNet


def test_imagenet_folder_loads_and_calib_is_deterministic(tmp_path):
    write_imagenet(tmp_path)
    test = load_dataset("imagenet", "test", data_root=tmp_path)
    assert len(test) == 4 and len(test.classes) == 2
    x, y = test[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 0
    assert torch.equal(x, load_dataset("imagenet", "test", data_root=tmp_path)[0][0])
    calib = load_dataset("imagenet", "calib", data_root=tmp_path, calib_size=4)
    again = load_dataset("imagenet", "calib", data_root=tmp_path, calib_size=4)
    assert calib.indices == again.indices and len(calib) == 4
    assert torch.equal(calib[0][0], again[0][0])
    assert len(calib.dataset.classes) == 2 and "val" not in calib.dataset.root
    train = load_dataset("imagenet", "train", data_root=tmp_path)
    assert len(train) == 5 and train[0][0].shape == (3, 224, 224)  # 6 images, 1 held out as val


def test_imagenet_missing_says_no_download(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetNotFoundError, match="image-net.org"):
        load_dataset("imagenet", "test", data_root=tmp_path / "nothing")


# ------------------------------------------------------------------------------ loader


def order(loader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_make_loader_order_is_function_of_seed_and_epoch():
    ds = torch.utils.data.TensorDataset(torch.zeros(50, 1), torch.arange(50))
    first = order(make_loader(ds, batch_size=8, shuffle=True, seed=1, epoch=2))
    assert first == order(make_loader(ds, batch_size=8, shuffle=True, seed=1, epoch=2))
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert first != order(make_loader(ds, batch_size=8, shuffle=True, seed=1, epoch=3))
    assert first != order(make_loader(ds, batch_size=8, shuffle=True, seed=2, epoch=2))
    assert order(make_loader(ds, batch_size=8, shuffle=False)) == list(range(50))


def test_download_uses_torchvision_layout(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:                      # stands in for the network: writes the raw IDX files
        def __init__(self, root, *, train, download):
            calls.append((root, train, download))
            write_mnist_like(Path(root) / "MNIST" / "raw", gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", "train", data_root=tmp_path / "dl")
    assert calls == []                    # download=False never touches the network
    train = load_dataset("mnist", "train", data_root=tmp_path / "dl", download=True)
    assert len(train) == 5 and calls and all(c[2] for c in calls)  # 6 images, 1 held out as val
    assert calls[0][0] == str(tmp_path / "dl")


def test_a_registered_idx_dataset_reads_its_files_from_data_root(tmp_path):
    arrays = write_mnist_like(tmp_path / "letters", gz=False)
    info = data.register_dataset(DatasetInfo("letters", (1, 28, 28), 10, (0.5,), (0.5,),
                                             calib_size=4, loader=data_sources.load_idx))
    try:
        train = load_dataset("letters", "train", data_root=tmp_path / "letters")
        calib = load_dataset("letters", "calib", data_root=tmp_path / "letters")
        (tmp_path / "nothing").mkdir()
        with pytest.raises(DatasetNotFoundError, match="letters: no directory holds"):
            load_dataset("letters", "test", data_root=tmp_path / "nothing")
    finally:
        data.unregister_dataset("letters")
    images, labels = arrays["train"]
    keep = data.split_indices(len(labels), "train")  # the train split: val held out
    expected = (torch.from_numpy(images).float().div(255).unsqueeze(1) - 0.5) / 0.5
    assert torch.allclose(train.tensors[0], expected[keep]) and len(calib) == 4
    assert train.tensors[1].tolist() == labels[keep.numpy()].tolist() and info.prefix == "letters"
    assert "letters" not in DATASETS
