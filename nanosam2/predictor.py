"""``NanoSam2Predictor``: Meta's ``SAM2ImagePredictor`` for nanosam2 students (and teachers).

It adds nothing to the maths - the student encoder returns exactly Hiera's outputs - only a
constructor from a checkpoint and the ``points``/``labels`` keyword names used across
nanosam2 (Meta's ``point_coords``/``point_labels`` still work).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from sam2.sam2_image_predictor import SAM2ImagePredictor

from nanosam2.build import build_nanosam2

# SAM2Transforms still calls torch.jit.script, which torch >= 2.10 flags as deprecated.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)


class NanoSam2Predictor(SAM2ImagePredictor):
    """Interactive segmentation with a nanosam2 model: ``set_image`` once, ``predict`` often."""

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str] | None = None,
        config: str | None = None,
        device: str | None = None,
        **predictor_kwargs: Any,
    ) -> "NanoSam2Predictor":
        """Build the student from a checkpoint (or ``config`` with random weights) and wrap it."""
        return cls(build_nanosam2(config, checkpoint=checkpoint, device=device), **predictor_kwargs)

    def predict(  # type: ignore[override]
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        *,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks, IoU scores and 256x256 low-res logits for the prompts on the current image.

        ``points`` [N,2] (or [B,N,2] with ``box`` [B,4]) in pixels of the original image,
        ``labels`` 1 foreground / 0 background, ``box`` [4] or [B,4] XYXY (a batch of boxes
        gives a batch of results), ``mask_input`` [1,256,256] logits from a previous call.
        """
        return super().predict(
            point_coords=points if points is not None else point_coords,
            point_labels=labels if labels is not None else point_labels,
            box=box,
            mask_input=mask_input,
            multimask_output=multimask_output,
            return_logits=return_logits,
            normalize_coords=normalize_coords,
        )
