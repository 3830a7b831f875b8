"""``SAM2Base.track_step`` for one object on one frame, over the decoder, memory-attention and
memory-encoder runners, on the device path: the frame's features stay where the encoder wrote them,
the conditioned embedding where the memory attention wrote it, a mask prompt's features where the
memory encoder wrote them, the new memory in the object's ring (``memory_bank.MemoryRing``); what
comes back to the host is the decoder's answer (the low-res logits, the pointer, the object score).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.inference.memory_bank import FrameOutput, MemoryRing, ObjectState
from nanosam2.inference.runner import Runner
from nanosam2.inference.tracker_config import TrackerConfig

MASK_PROMPT_SCALE, MASK_PROMPT_BIAS = 20.0, -10.0  # SAM2Base._use_mask_as_output
PAD = float(T.LABEL_PAD)  # the decoder's padding-point label
Run = Callable[..., dict[str, Any]]  # Pipeline.run(stage, runner, feed, host=True)


class TrackStep:
    def __init__(self, run: Run, decoder: Runner, memory_attention: Runner, memory_encoder: Runner,
                 config: TrackerConfig) -> None:
        self.run = run
        self.decoder, self.memory_attention, self.memory_encoder = decoder, memory_attention, memory_encoder
        self.low_res_size = decoder.contract.low_res_size
        self.selection = replace(decoder.contract.mask_selection,
                                 dynamic_multimask_via_stability=config.dynamic_multimask_via_stability)
        self.fill_hole_area = config.fill_hole_area
        self._zero_mask: Any = None  # the decoder's "no mask prompt" input, uploaded once

    def decode(self, image_embed: Any, features: dict[str, Any], coords: np.ndarray, labels: np.ndarray,
               mask_input: Any | None) -> dict[str, np.ndarray]:
        low = self.low_res_size
        if mask_input is None and self._zero_mask is None:
            self._zero_mask = self.decoder.to_device(C.MASK_INPUT, np.zeros((1, 1, low, low), np.float32))
        feed = {C.IMAGE_EMBED: image_embed, C.HIGH_RES_FEATS_0: features[C.HIGH_RES_FEATS_0],
                C.HIGH_RES_FEATS_1: features[C.HIGH_RES_FEATS_1],
                C.POINT_COORDS: coords[None].astype(np.float32), C.POINT_LABELS: labels[None].astype(np.float32),
                C.MASK_INPUT: mask_input if mask_input is not None else self._zero_mask,
                C.HAS_MASK_INPUT: np.array([0.0 if mask_input is None else 1.0], np.float32)}
        return self.run("decoder", self.decoder, feed)

    def __call__(self, obj: ObjectState, features: dict[str, Any], bank: Callable[[], dict[str, Any]] | None,
                 points: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None, run_memory_encoder: bool,
                 prev_low_res: np.ndarray | None = None) -> FrameOutput:
        """One step: ``bank`` gives the memory attention's bank (None: an initial conditioning frame,
        which attends to no memory); a ``mask`` prompt is the answer itself (``_use_mask_as_output``)."""
        embed = features[C.IMAGE_EMBED]
        if mask is not None:  # the decoder gives the pointer
            high = mask.astype(np.float32) * MASK_PROMPT_SCALE + MASK_PROMPT_BIAS
            low_res = T._resample(high[None], (self.low_res_size, self.low_res_size), antialias=True)[None]
            present = float(np.any(mask > 0))
            score = MASK_PROMPT_SCALE * present + MASK_PROMPT_BIAS
            encoded = self.run("memory_encoder", self.memory_encoder, {
                C.IMAGE_EMBED: embed, C.MASK_LOGITS: high[None, None], C.BINARIZE_MASK: np.zeros(1, np.float32),
                C.OBJECT_SCORE_LOGITS: np.array([[score]], np.float32)}, host=False)
            pad = np.array([PAD, PAD], np.float32)
            out = self.decode(encoded[C.IMAGE_FEATURES], features, np.zeros((2, 2), np.float32), pad,
                              encoded[C.MASK_PROMPT])
            decoder_present = float(out[C.OBJECT_SCORE_LOGITS][0, 0] > 0)
            result = FrameOutput(low_res.astype(np.float32), out[C.OBJECT_POINTERS][0, 0].copy(),
                                 decoder_present * present, score)
        else:
            if bank is None:
                conditioned = embed
            else:
                conditioned = self.run("memory_attention", self.memory_attention, {C.IMAGE_EMBED: embed, **bank()},
                                       host=False)[C.CONDITIONED_IMAGE_EMBED]
            if points is None:  # SAM2 prompts the decoder with one padding point (and appends another)
                coords, labels = np.zeros((1, 2), np.float32), np.array([PAD], np.float32)
            else:
                coords, labels = points
            num_points = 0 if points is None else len(points[1])
            multimask = num_points <= 1  # multimask_output_in_sam, for tracking too, 0..1 points
            mask_input = None if prev_low_res is None else np.clip(prev_low_res, -T.LOGIT_CLAMP, T.LOGIT_CLAMP)
            out = self.decode(conditioned, features, np.concatenate([coords, np.zeros((1, 2), np.float32)]),
                              np.concatenate([labels, np.array([PAD], np.float32)]), mask_input)
            score = float(out[C.OBJECT_SCORE_LOGITS][0, 0])
            present = float(score > 0)
            masks = out[C.LOW_RES_MASKS] if present else np.full_like(out[C.LOW_RES_MASKS], C.NO_OBJECT_SCORE)
            ious = out[C.IOU_PREDICTIONS]
            lo, hi = self.selection.multimask_slice
            if multimask:
                token = lo + int(np.argmax(ious[0, lo:hi]))
                chosen = masks[:, token : token + 1]
            else:
                token = 0
                chosen, _ = T.select_masks(masks, ious, False, self.selection)
            result = FrameOutput(np.ascontiguousarray(chosen, np.float32), out[C.OBJECT_POINTERS][0, token].copy(),
                                 present, score)
            if run_memory_encoder:
                self.encode_memory(obj, result, embed, points is not None)
        if self.fill_hole_area > 0:
            from nanosam2.masks import fill_holes_and_sprinkles

            result.low_res = fill_holes_and_sprinkles(result.low_res, self.fill_hole_area, 0, hole_logit=0.1)
        return result

    def encode_memory(self, obj: ObjectState, out: FrameOutput, embed: Any, binarize: bool) -> None:
        """The frame's spatial memory into a row of the object's ring, device to device."""
        assert out.low_res is not None
        encoded = self.run("memory_encoder", self.memory_encoder, {
            C.IMAGE_EMBED: embed, C.MASK_LOGITS: out.low_res, C.BINARIZE_MASK: np.array([float(binarize)], np.float32),
            C.OBJECT_SCORE_LOGITS: np.array([[out.object_score]], np.float32)}, host=False)
        if obj.ring is None:  # conditioning frames + the recent ones + the new one before the oldest is forgotten
            obj.ring = MemoryRing(self.memory_attention, self.memory_attention.contract.num_maskmem + 1)
        obj.ring.add(out, encoded[C.MASKMEM_FEATURES], list(obj.outputs()))
