"""Training and simulation across processes (``torchrun``).

Simulation: each rank simulates a contiguous shard of the data and the per-rank results are
merged exactly (sums of counts, concatenation of per-sample tensors in rank order), so a run
on N processes reports the same accuracy, spike counts and predictions as one process on the
same data with the same (constant-current) input. Poisson input draws differ with the
sharding. Training (:func:`~bsnn_bindsnet.training.fit.fit`): DistributedDataParallel, each
rank taking an equal share of the epoch's seeded permutation.

Backend: gloo on CPU, nccl when the device is CUDA. Under ``torchrun`` the environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` ...) says everything; without it nothing changes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.utils.data import Subset

if TYPE_CHECKING:
    from bsnn_bindsnet.simulation.simulate import SimResult


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside ``torchrun``."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(device: str = "cpu") -> tuple[int, int]:
    """Join the process group if launched by ``torchrun`` (idempotent); returns
    :func:`world`."""
    rank, size = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return rank, size


def finish(ok: bool = True) -> None:
    """Leave the process group, if one was joined. Every rank waits for the others first
    (``ok``), so none exits while a peer still talks to it; a process that exits with gloo's
    threads alive aborts (``terminate called without an active exception``)."""
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def shard(n: int, rank: int, size: int) -> range:
    """Contiguous share of ``n`` items for ``rank`` of ``size`` (sizes differ by at most 1)."""
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} outside a world of {size}")
    per, extra = divmod(n, size)
    start = rank * per + min(rank, extra)
    return range(start, start + per + (rank < extra))


def epoch_shard(n: int, rank: int, size: int, generator: torch.Generator) -> list[int]:
    """This rank's share of a seeded permutation of ``n`` items; every rank gets the same
    count (the ``n % size`` leftover items of the permutation sit out this epoch), so all
    ranks take the same number of steps."""
    perm = torch.randperm(n, generator=generator)[: n - n % size]
    return perm[rank::size].tolist()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over all ranks (identity outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def merge(results: list[SimResult]) -> SimResult:
    """One :class:`SimResult` from per-shard results in data order (exact)."""
    from bsnn_bindsnet.simulation.simulate import SimResult

    first = results[0]

    def cat(get, dim=0):
        parts = [get(r) for r in results]
        return None if parts[0] is None else torch.cat(parts, dim)

    def total(get):
        return {k: sum(get(r)[k] for r in results) for k in get(first)}

    return SimResult(
        timesteps=first.timesteps, one_step=first.one_step, encoding=first.encoding,
        correct=sum(r.correct for r in results), predictions=cat(lambda r: r.predictions),
        confidence=cat(lambda r: r.confidence), labels=cat(lambda r: r.labels),
        layer_spikes=total(lambda r: r.layer_spikes), layer_neurons=dict(first.layer_neurons),
        step_predictions=cat(lambda r: r.step_predictions, 1),
        step_confidence=cat(lambda r: r.step_confidence, 1),
        sample_spikes={k: torch.cat([r.sample_spikes[k] for r in results], 1)
                       for k in first.sample_spikes},
        neuron_spikes=total(lambda r: r.neuron_spikes),
        seconds=max(r.seconds for r in results), arithmetic=dict(first.arithmetic),
        neuron_kernel=dict(first.neuron_kernel))


def simulate_sharded(network: Any, data: Any, timesteps: int, **kwargs: Any) -> SimResult:
    """:func:`~bsnn_bindsnet.simulation.simulate.simulate` on this rank's shard, merged over all ranks
    (every rank gets the merged result). Outside ``torchrun`` it is plain ``simulate``."""
    from bsnn_bindsnet.simulation.simulate import simulate

    rank, size = init(kwargs.get("device", "cpu"))
    if size == 1:
        return simulate(network, data, timesteps, **kwargs)
    part = simulate(network, Subset(data, shard(len(data), rank, size)), timesteps, **kwargs)
    cpu = _to_cpu(part)
    gathered: list[Any] = [None] * size
    dist.all_gather_object(gathered, cpu)
    return merge(gathered)


def _to_cpu(result: SimResult) -> SimResult:
    from dataclasses import fields, replace

    def move(v):
        if isinstance(v, torch.Tensor):
            return v.cpu()
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    return replace(result, **{f.name: move(getattr(result, f.name)) for f in fields(result)})
