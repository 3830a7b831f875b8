"""The distillation loss: student vs teacher FPN features at three resolutions.

The three ``backbone_fpn`` levels (before conv_s0/conv_s1 and before no_mem_embed), 256², 128²
and 64² at 1024 input, weighted 1, 1/4, 1/8 as in the seed. Computed in float32 whatever the
autocast dtype, so bf16 features do not quantise the loss itself.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

LEVEL_WEIGHTS = (1.0, 1 / 4, 1 / 8)
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "huber": F.huber_loss,
    "l1": F.l1_loss,
    "mse": F.mse_loss,
}


def feature_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], kind: str = "huber",
                 weights: Sequence[float] = LEVEL_WEIGHTS) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weighted sum over levels, and the unweighted loss of each level (for logging)."""
    if len(student) != len(weights) or len(teacher) != len(weights):
        raise ValueError(f"expected {len(weights)} FPN levels, got student {len(student)} and teacher {len(teacher)}")
    fn = LOSSES[kind]
    levels = []
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise ValueError(f"student features {tuple(s.shape)} do not match the teacher's {tuple(t.shape)}")
        levels.append(fn(s.float(), t.float()))
    total = sum(w * level for w, level in zip(weights, levels))
    return total, levels  # type: ignore[return-value]
