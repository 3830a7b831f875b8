"""Example inputs for tracing and checking the graphs (one definition for the exporter and the verifier)."""

from __future__ import annotations

import torch
from torch import nn

from nanosam2 import contract as C
from nanosam2.modeling.predictor_graphs import MaskDecoderGraph


def encoder_example(batch: int = 2, image_size: int = 1024) -> tuple[torch.Tensor]:
    # batch 2: torch.export specialises dimensions of size 1
    return (torch.randn(batch, 3, image_size, image_size),)


def decoder_example(graph: MaskDecoderGraph, features: tuple[torch.Tensor, ...], prompts: int = 3,
                    points: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Realistic decoder inputs: a box + clicks, padding, and one mask prompt."""
    gen = torch.Generator().manual_seed(seed)
    size = float(graph.image_size)
    coords = torch.rand(prompts, points, 2, generator=gen) * size
    labels = torch.tensor([2, 3, 1, 0, -1, 1, 0, 1], dtype=torch.float32)[: points].repeat(prompts, 1)
    labels[:, -1] = -1
    low_res = graph.image_size // 4
    mask_input = torch.randn(prompts, 1, low_res, low_res, generator=gen) * 4
    has_mask = (torch.arange(prompts) % 2 == 1).to(torch.float32)
    return (*features, coords, labels, mask_input, has_mask)


def video_examples(graph_name: str, model: nn.Module, image_embed: torch.Tensor, memories: int = 3, pointers: int = 5,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Example inputs of the memory-attention / memory-encoder graphs for one image's ``image_embed``
    [1, C, h, w] (sizes other than 0/1, which torch.export would specialise)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = image_embed.shape[-2:]
    if graph_name == C.MEMORY_ATTENTION:
        num_maskmem = int(model.num_maskmem)
        features = (torch.randn(memories, int(model.mem_dim), h, w, generator=gen)).to(torch.bfloat16).float()
        slots = torch.arange(memories, dtype=torch.int64) % num_maskmem
        offsets = torch.arange(1, pointers + 1, dtype=torch.float32) / float(C.EXPORT_MAX_POINTERS - 1)
        present = (torch.arange(pointers) % 3 != 2).to(torch.float32)
        return (image_embed, features, slots, torch.randn(pointers, int(model.hidden_dim), generator=gen), offsets, present)
    low_res = int(model.image_size) // 4
    return (image_embed, torch.randn(1, 1, low_res, low_res, generator=gen) * 8, torch.tensor([1.0]),
            torch.tensor([[2.0]]))
