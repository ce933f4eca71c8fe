import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bsnn_bindsnet.analysis.early_exit import early_exit
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.data.registry import load_dataset
from bsnn_bindsnet.simulation.early_exit import simulate_early_exit
from bsnn_bindsnet.simulation.simulate import simulate

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn")
    test = load_dataset("digits", "test")
    x = torch.stack([test[i][0] for i in range(40)])
    y = torch.stack([torch.as_tensor(test[i][1]) for i in range(40)])
    network = ann_to_bsnn(model, load_dataset("digits", "calib"))
    return network, x, y


def test_compacted_run_equals_the_offline_analysis_of_a_full_run(setup):
    network, x, y = setup
    full = simulate(network, (x, y), 24, per_sample=True, batch_size=40)
    threshold = float(full.step_confidence[8].median())  # about half exit by step 9
    offline = early_exit(full.step_predictions, full.step_confidence, y, threshold)
    run = simulate_early_exit(network, (x, y), 24, threshold, batch_size=40)
    assert 1 < run.mean_exit < 24
    assert torch.equal(run.exit_steps, offline.exit_steps)
    assert torch.equal(run.predictions, offline.predictions)
    assert run.accuracy == pytest.approx(offline.accuracy)
    # spikes counted up to each sample's exit equal the full run's per-sample traces summed
    for name, counts in run.sample_spikes.items():
        t = torch.arange(1, 25).unsqueeze(1)
        expect = (full.sample_spikes[name] * (t <= offline.exit_steps)).sum(0)
        assert torch.equal(counts.long(), expect.long()), name


@pytest.mark.parametrize("refill", [True, False])
@pytest.mark.parametrize("batch_size", [7, 40])
def test_refilled_and_compacted_runs_equal_the_offline_analysis(setup, refill, batch_size):
    network, x, y = setup
    full = simulate(network, (x, y), 24, per_sample=True, batch_size=40)
    threshold = float(full.step_confidence[8].median())
    offline = early_exit(full.step_predictions, full.step_confidence, y, threshold)
    run = simulate_early_exit(network, (x, y), 24, threshold, batch_size=batch_size,
                              refill=refill, compact_fraction=0.3)
    assert torch.equal(run.exit_steps, offline.exit_steps)
    assert torch.equal(run.predictions, offline.predictions)
    assert torch.equal(run.labels, y)
    for name, counts in run.sample_spikes.items():
        t = torch.arange(1, 25).unsqueeze(1)
        expect = (full.sample_spikes[name] * (t <= offline.exit_steps)).sum(0)
        assert torch.equal(counts.long(), expect.long()), name


def test_threshold_never_reached_runs_to_t_max_and_matches_simulate(setup):
    network, x, y = setup
    run = simulate_early_exit(network, (x, y), 12, float("inf"), batch_size=16)
    ref = simulate(network, (x, y), 12, batch_size=16)
    assert run.exit_steps.tolist() == [12] * 40
    assert torch.equal(run.predictions, ref.predictions)
    assert run.firing_rates() == pytest.approx(ref.firing_rates())


def test_bad_arguments(setup):
    network, x, y = setup
    with pytest.raises(ValueError, match="max_timesteps"):
        simulate_early_exit(network, (x, y), 0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        simulate_early_exit(network, (x[:0], y[:0]), 4, 1.0)
    with pytest.raises(ValueError, match="wrong input shape"):
        simulate_early_exit(network, (x[:, :, :4], y), 4, 1.0)
    with pytest.raises(ValueError, match="NaN/inf"):
        simulate_early_exit(network, (x * float("nan"), y), 4, 1.0)


def test_a_dataloader_gives_the_run_of_the_tensor_pair(setup):
    network, x, y = setup
    full = simulate(network, (x, y), 12, per_sample=True, batch_size=40)
    threshold = float(full.step_confidence[5].median())  # about half exit by step 6
    ref = simulate_early_exit(network, (x, y), 12, threshold, batch_size=8)
    assert 1 < ref.mean_exit < 12
    loader = DataLoader(TensorDataset(x, y), batch_size=7)  # rows pulled across its batches
    run = simulate_early_exit(network, loader, 12, threshold, batch_size=8)
    assert torch.equal(run.exit_steps, ref.exit_steps)
    assert torch.equal(run.predictions, ref.predictions) and torch.equal(run.labels, y)


def test_inputs_without_labels_are_refused(setup):
    network, x, _ = setup
    with pytest.raises(ValueError, match="without labels"):
        simulate_early_exit(network, x, 4, 1.0)
