import json
import os
import subprocess
import sys

import pytest
import torch

from bsnn_bindsnet.simulation.distributed import epoch_shard, merge, shard, simulate_sharded


def _failure(stderr: str) -> str:
    """A child's own error comes before torchrun's long summary: keep both ends."""
    return stderr if len(stderr) <= 4000 else stderr[:2500] + "\n...\n" + stderr[-1500:]


def test_shard_is_contiguous_and_covers_everything():
    assert [list(shard(7, r, 3)) for r in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert list(shard(1, 1, 2)) == []
    with pytest.raises(ValueError, match="rank 2 outside a world of 2"):
        shard(4, 2, 2)


@pytest.fixture(scope="module")
def plan():
    from bsnn_bindsnet.training.models import get_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset

    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn", input_shape=(1, 8, 8), num_classes=10)
    plan = ann_to_bsnn(model, load_dataset("digits", "calib"), build=False)
    plan.info.dataset = "digits"
    return plan


def test_merged_shards_equal_one_run(plan):
    from torch.utils.data import Subset

    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate

    data = Subset(load_dataset("digits", "test"), range(50))
    full = simulate(build_network(plan), data, 6, per_sample=True, per_neuron=True)
    parts = [simulate(build_network(plan), Subset(data, shard(50, r, 3)), 6, per_sample=True,
                      per_neuron=True, batch_size=7) for r in range(3)]
    merged = merge(parts)
    assert torch.equal(merged.correct, full.correct)
    assert torch.equal(merged.step_predictions, full.step_predictions)
    for name, spikes in full.layer_spikes.items():
        assert torch.equal(merged.layer_spikes[name], spikes)
        assert torch.equal(merged.neuron_spikes[name], full.neuron_spikes[name])
        assert torch.equal(merged.sample_spikes[name], full.sample_spikes[name])
    assert merged.firing_rates() == full.firing_rates()
    # outside torchrun, the sharded entry point is plain simulate
    alone = simulate_sharded(build_network(plan), data, 6)
    assert torch.equal(alone.correct, full.correct)


def test_bsnn_simulate_on_two_processes_equals_one(plan, tmp_path):
    from bsnn_bindsnet.snn.network import save_plan

    path = save_plan(plan, tmp_path / "net.pt")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    base = ["-m", "bsnn_bindsnet.cli.main", "simulate", str(path), "--timesteps", "8", "--limit",
            "90", "--batch-size", "16", "--no-progress"]
    subprocess.run([sys.executable, *base, "--out", str(tmp_path / "one")], check=True,
                   env=env, capture_output=True)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", *base, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True)
    assert two.returncode == 0, _failure(two.stderr)
    one = json.loads((tmp_path / "one" / "simulation.json").read_text())
    both = json.loads((tmp_path / "two" / "simulation.json").read_text())
    assert both["processes"] == 2 and one["processes"] == 1
    assert both["n"] == one["n"] == 90
    assert both["accuracy"] == one["accuracy"] and both["ifr"] == one["ifr"]


def test_epoch_shard_gives_every_rank_the_same_count():
    shares = [epoch_shard(11, r, 3, torch.Generator().manual_seed(5)) for r in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    assert len(set(sum(shares, []))) == 9  # disjoint


def test_bsnn_train_on_two_processes(tmp_path):
    from bsnn_bindsnet.training.loop import evaluate
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset, make_loader

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "bsnn_bindsnet.cli.main", "train",
                           "--preset", "digits-fp", "--epochs", "2", "--train-subset", "256",
                           "--out", str(out), "--no-progress"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, _failure(proc.stderr)
    assert proc.stdout.count("digits-fp: test accuracy") == 1  # rank 0 reports
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics] == [1, 2]
    test = make_loader(load_dataset("digits", "test"), batch_size=256, shuffle=False)
    assert evaluate(load_model(out / "model.pt"), test).acc == pytest.approx(metrics[-1]["test_acc"])


def test_finish_leaves_the_process_group(tmp_path):
    import torch.distributed as dist

    from bsnn_bindsnet.simulation.distributed import finish

    finish()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    assert dist.is_initialized()
    finish()
    assert not dist.is_initialized()
