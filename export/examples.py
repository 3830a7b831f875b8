"""Example inputs for tracing and checking the graphs: one maker per graph, named by its entry of
``nanosam2.contract.GRAPH_SPECS`` (one definition for the exporter and the verifier). Every maker takes
``(model, features, seed)``: ``features`` are the encoder's outputs for one image. Sizes avoid 0 and 1,
which torch.export would specialise."""

from __future__ import annotations

import torch
from torch import nn

from nanosam2 import contract as C


def encoder_example(batch: int = 2, image_size: int = 1024) -> tuple[torch.Tensor]:
    # batch 2: torch.export specialises dimensions of size 1
    return (torch.randn(batch, 3, image_size, image_size),)


def encoder_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    return encoder_example(image_size=int(model.image_size))


def decoder_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0, prompts: int = 3,
                   points: int = 4) -> tuple[torch.Tensor, ...]:
    """Realistic decoder inputs: a box + clicks, padding, and one mask prompt."""
    gen = torch.Generator().manual_seed(seed)
    size = int(model.image_size)
    coords = torch.rand(prompts, points, 2, generator=gen) * float(size)
    labels = torch.tensor([2, 3, 1, 0, -1, 1, 0, 1], dtype=torch.float32)[: points].repeat(prompts, 1)
    labels[:, -1] = -1
    low_res = size // 4
    mask_input = torch.randn(prompts, 1, low_res, low_res, generator=gen) * 4
    has_mask = (torch.arange(prompts) % 2 == 1).to(torch.float32)
    return (*features, coords, labels, mask_input, has_mask)


def _pixels(seed: int) -> tuple[torch.Generator, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return gen, torch.randint(0, 256, (97, 131, 3), dtype=torch.uint8, generator=gen)  # odd sizes


def preprocess_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    return (_pixels(seed)[1],)


def postprocess_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen, pixels = _pixels(seed)
    low_res = int(model.image_size) // 4
    logits = torch.randn(3, 4, low_res, low_res, generator=gen) * 8
    return (logits, torch.rand(3, 4, generator=gen), pixels, torch.tensor([1, 2, 3], dtype=torch.int64))


def memory_attention_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0, memories: int = 3,
                            pointers: int = 5) -> tuple[torch.Tensor, ...]:
    """A bank of ``memories`` spatial memories (bfloat16-rounded, as SAM2 stores them) and ``pointers``
    object pointers for one image's ``image_embed``."""
    gen = torch.Generator().manual_seed(seed)
    image_embed = features[0][:1]
    h, w = image_embed.shape[-2:]
    bank = torch.randn(memories, int(model.mem_dim), h, w, generator=gen).to(torch.bfloat16).float()
    slots = torch.arange(memories, dtype=torch.int64) % int(model.num_maskmem)
    offsets = torch.arange(1, pointers + 1, dtype=torch.float32) / float(C.EXPORT_MAX_POINTERS - C.MAX_PROMPTED_FRAMES)
    present = (torch.arange(pointers) % 3 != 2).to(torch.float32)
    return (image_embed, bank, slots, torch.randn(pointers, int(model.hidden_dim), generator=gen), offsets, present)


def memory_encoder_inputs(model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A low-resolution predicted mask, binarised."""
    gen = torch.Generator().manual_seed(seed)
    low_res = int(model.image_size) // 4
    return (features[0][:1], torch.randn(1, 1, low_res, low_res, generator=gen) * 8, torch.tensor([1.0]),
            torch.tensor([[2.0]]))


def graph_inputs(graph_name: str, model: nn.Module, features: tuple[torch.Tensor, ...], seed: int = 0,
                 **sizes: int) -> tuple[torch.Tensor, ...]:
    """The example inputs of ``graph_name``, from the maker its spec names."""
    return C.resolve(C.GRAPH_SPECS[graph_name].examples)(model, features, seed, **sizes)
