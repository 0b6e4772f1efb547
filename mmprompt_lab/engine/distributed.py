"""Multi-process training with torchrun + DistributedDataParallel (NCCL on GPUs, gloo on CPU).

    torchrun --nproc_per_node 4 -m mmprompt_lab.cli tune --method maple --model ViT-B-16 ...

`fit` calls `setup()`: under torchrun (WORLD_SIZE > 1) it joins the process group, picks the
local GPU, wraps the learner in DDP and shards the training data with a DistributedSampler. Only
rank 0 shows progress and writes files.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the torchrun process group if there is one; returns this process's device."""
    if world_size() <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(learner: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around the learner when distributed; gradients of the prompts are averaged across ranks."""
    if world_size() <= 1:
        return learner
    from torch.nn.parallel import DistributedDataParallel

    # some settings leave parameters unused on purpose (e.g. DCP's text half with text_writeback=False)
    return DistributedDataParallel(
        learner, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def sampler(dataset, seed: int, epoch: int):
    """A DistributedSampler for this epoch, or None when not distributed."""
    if world_size() <= 1:
        return None
    from torch.utils.data.distributed import DistributedSampler

    s = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=len(dataset) >= world_size())
    s.set_epoch(epoch)
    return s
