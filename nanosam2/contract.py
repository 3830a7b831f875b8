"""The contract between exported graphs and the runtime: tensor names, roles and constants.

The exporter writes it into each ONNX file's ``metadata_props`` (key ``nanosam2``, JSON),
the engine builder copies it into the engine's JSON sidecar, and the runtime reads it back,
so no tensor name or preprocessing constant is hard-coded on two sides (torch-free).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanosam2.errors import NanoSam2Error
from nanosam2.transforms import IMAGE_SIZE, LOW_RES_SIZE, PIXEL_MEAN, PIXEL_STD, MaskSelection

METADATA_KEY = "nanosam2"
CONTRACT_VERSION = 1

ENCODER = "image_encoder"
DECODER = "mask_decoder"

# Image encoder graph
IMAGE = "image"
IMAGE_EMBED = "image_embed"
HIGH_RES_FEATS_0 = "high_res_feats_0"
HIGH_RES_FEATS_1 = "high_res_feats_1"
ENCODER_INPUTS = (IMAGE,)
ENCODER_OUTPUTS = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1)

# Prompt encoder + mask decoder graph
POINT_COORDS = "point_coords"
POINT_LABELS = "point_labels"
MASK_INPUT = "mask_input"
HAS_MASK_INPUT = "has_mask_input"
LOW_RES_MASKS = "low_res_masks"
IOU_PREDICTIONS = "iou_predictions"
OBJECT_SCORE_LOGITS = "object_score_logits"
DECODER_INPUTS = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT)
DECODER_OUTPUTS = (LOW_RES_MASKS, IOU_PREDICTIONS, OBJECT_SCORE_LOGITS)

ROLES = {
    IMAGE: "[B,3,S,S] float32, RGB / 255 resized to SxS (antialiased bilinear), ImageNet-normalised",
    IMAGE_EMBED: "[B,256,S/16,S/16] lowest-resolution FPN level + no_mem_embed",
    HIGH_RES_FEATS_0: "[B,32,S/4,S/4] FPN level 0 after the decoder's conv_s0",
    HIGH_RES_FEATS_1: "[B,64,S/8,S/8] FPN level 1 after the decoder's conv_s1",
    POINT_COORDS: "[P,N,2] float32 points in the SxS input frame",
    POINT_LABELS: "[P,N] float32: -1 padding, 0 background, 1 foreground, 2/3 box corners",
    MASK_INPUT: "[P,1,S/4,S/4] float32 low-resolution mask logits from a previous prediction",
    HAS_MASK_INPUT: "[P] float32, 1 where mask_input is used, else 0",
    LOW_RES_MASKS: "[P,T,S/4,S/4] mask logits of every mask token (token 0 = single-mask output)",
    IOU_PREDICTIONS: "[P,T] predicted IoU of every mask token",
    OBJECT_SCORE_LOGITS: "[P,1] object presence logit (not applied by the image predictor)",
}


@dataclass
class GraphContract:
    """What the runtime needs to know about one exported graph."""

    graph: str  # ENCODER or DECODER
    backbone: str
    image_size: int = IMAGE_SIZE
    low_res_size: int = LOW_RES_SIZE
    pixel_mean: list[float] = field(default_factory=lambda: list(PIXEL_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(PIXEL_STD))
    mask_threshold: float = 0.0
    num_mask_tokens: int = 4
    multimask_slice: list[int] = field(default_factory=lambda: [1, 4])
    dynamic_multimask_via_stability: bool = True
    stability_delta: float = 0.05
    stability_thresh: float = 0.98
    precision: str = "fp32"
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    exporter: str = ""
    contract_version: int = CONTRACT_VERSION

    @classmethod
    def for_graph(cls, graph: str, backbone: str, **kwargs: Any) -> "GraphContract":
        names_in, names_out = (ENCODER_INPUTS, ENCODER_OUTPUTS) if graph == ENCODER else (DECODER_INPUTS, DECODER_OUTPUTS)
        return cls(graph=graph, backbone=backbone, inputs={n: ROLES[n] for n in names_in},
                   outputs={n: ROLES[n] for n in names_out}, **kwargs)

    @property
    def mask_selection(self) -> MaskSelection:
        return MaskSelection(tuple(self.multimask_slice), self.dynamic_multimask_via_stability,  # type: ignore[arg-type]
                             self.stability_delta, self.stability_thresh)

    def to_json(self) -> str:
        return json.dumps(asdict(self))  # insertion order: tensor order is part of the contract

    @classmethod
    def from_json(cls, text: str, source: str = "graph") -> "GraphContract":
        try:
            data = json.loads(text)
            contract = cls(**data)
        except (ValueError, TypeError) as exc:
            raise NanoSam2Error(f"{source}: unreadable nanosam2 metadata ({exc})") from None
        if contract.contract_version > CONTRACT_VERSION:
            raise NanoSam2Error(f"{source}: made by a newer nanosam2 (contract v{contract.contract_version}); upgrade")
        return contract

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> "GraphContract":
        if METADATA_KEY not in metadata:
            raise NanoSam2Error(f"{source} carries no nanosam2 metadata: export it with `python -m export.onnx`")
        return cls.from_json(metadata[METADATA_KEY], source)

    def expect(self, graph: str, source: str) -> "GraphContract":
        """Fail in one line when a file of the other graph was given (encoder vs decoder)."""
        if self.graph != graph:
            raise NanoSam2Error(f"{source} is the {self.graph} graph, expected the {graph} graph")
        return self


def engine_sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``: build facts and the contract of an engine."""
    return Path(f"{engine_path}.json")


def read_engine_sidecar(engine_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar JSON written by ``engines/build_engine.py``, or None when there is none."""
    path = engine_sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise NanoSam2Error(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else None
