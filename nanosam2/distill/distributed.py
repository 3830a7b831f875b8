"""torchrun / DistributedDataParallel plumbing; a single process needs none of it.

``torchrun --nproc_per_node N -m nanosam2.train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK:
NCCL on GPUs (one per local rank), gloo on CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nanosam2.checkpoint import state_digest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, value: float) -> float:
        """Sum a number over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def mean(self, value: float) -> float:
        """Average a number over ranks (for logging)."""
        return self.sum(value) / self.world_size


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    from nanosam2.utils.torch_device import resolve_device

    asked = resolve_device(device)  # a bogus name or a missing GPU: one-line error
    want_cuda = asked.type == "cuda"
    if want_cuda:
        torch.cuda.set_device(local_rank if world > 1 else asked.index or 0)
        chosen = torch.device("cuda", torch.cuda.current_device())
    else:
        chosen = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
        logger.info("rank %d/%d on %s", rank, world, chosen)
        if rank != 0:  # one copy of the log: other ranks report warnings and errors only
            logging.getLogger("nanosam2").setLevel(logging.WARNING)
    return DistContext(rank, world, local_rank, chosen)


def close_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def average_buffers(ctx: DistContext, module: nn.Module) -> None:
    """Average BatchNorm running statistics over ranks.

    DDP keeps parameters equal, and copies rank 0's buffers before each forward, but every rank
    then updates its running statistics from its own batch; averaging them before a checkpoint
    gives every rank the same (and a better) estimate.
    """
    if not ctx.enabled:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(ctx.world_size)


def check_ranks_in_sync(ctx: DistContext, module: nn.Module) -> str:
    """The weight digest, checked equal on every rank (raises if DDP let them drift apart)."""
    mine = state_digest(module)
    if not ctx.enabled:
        return mine
    digests: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(digests, mine)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks hold different weights after training: {digests}")
    logger.info("weights sha256 %s on all %d ranks", mine, ctx.world_size)
    return mine
