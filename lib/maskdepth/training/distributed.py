"""Scale-out under torchrun: the process group, barriers and the broadcasts that keep ranks in step.

`torchrun --nproc_per_node=N -m maskdepth train ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK set; each joins the group here (NCCL on CUDA, gloo on CPU) and trains its shard under
DistributedDataParallel. Everything is a no-op for a single process (world 1).
"""

from __future__ import annotations

import os

import torch


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when not launched by it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device_name: str) -> tuple[int, int, str]:
    """Join the torchrun process group when launched by torchrun; returns (rank, world, device)."""
    rank, world, local_rank = dist_env()
    if world == 1:
        return 0, 1, device_name
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device_name


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(value, world: int):
    """Rank 0's `value` on every rank (e.g. the run folder name it drew)."""
    if world == 1:
        return value
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def broadcast_buffers(model: torch.nn.Module, world: int) -> None:
    """DDP keeps parameters identical; BatchNorm statistics drift per rank after the last
    forward, so rank 0's are broadcast (the ones it validates and saves)."""
    if world > 1:
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def wrap_ddp(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """What the loop calls forward on: `model` itself, or its DistributedDataParallel wrapper."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
