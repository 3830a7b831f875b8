"""Example inputs for tracing and checking the two graphs (one definition for both)."""

from __future__ import annotations

import torch

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
