"""The accepted forms of calibration/test data, and the one error for anything else."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bsnn_bindsnet.data.samples import batches, check_samples, num_samples

X = torch.arange(10.0).view(5, 2)
Y = torch.tensor([0, 1, 0, 1, 1])


def _collect(data, bs):
    xs, ys = zip(*batches(data, bs))
    return torch.cat(xs), (None if ys[0] is None else torch.cat(ys)), len(xs)


@pytest.mark.parametrize("data", [TensorDataset(X, Y), DataLoader(TensorDataset(X, Y),
                                                                  batch_size=2), (X, Y)])
def test_every_form_gives_the_same_samples_in_order(data):
    x, y, _ = _collect(data, 2)
    assert torch.equal(x, X) and torch.equal(y, Y)
    assert num_samples(data) == 5


def test_bare_tensor_has_no_labels_and_is_cut_into_batch_size():
    x, y, n = _collect(X, 2)
    assert torch.equal(x, X) and y is None and n == 3


def test_loader_keeps_its_own_batch_size():
    _, _, n = _collect(DataLoader(TensorDataset(X, Y), batch_size=5), 1)
    assert n == 1


@pytest.mark.parametrize("bad", [{"x": X}, "images", 3, None])
def test_anything_else_is_one_clear_type_error(bad):
    with pytest.raises(TypeError, match="expected a Dataset"):
        check_samples(bad, "calibration")


def test_mismatched_pair_names_both_lengths():
    with pytest.raises(ValueError, match="5 samples but Y 4"):
        check_samples((X, Y[:4]))
