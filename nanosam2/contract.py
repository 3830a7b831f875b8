"""The contract between exported graphs and the runtime: tensor names, roles and constants.

The exporter writes it into each ONNX file's ``metadata_props`` (key ``nanosam2``, JSON),
the engine builder copies it into the engine's JSON sidecar, and the runtime reads it back,
so no tensor name or preprocessing constant is hard-coded on two sides (torch-free).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from nanosam2.errors import NanoSam2Error
from nanosam2.transforms import IMAGE_SIZE, LOW_RES_SIZE, PIXEL_MEAN, PIXEL_STD, MaskSelection

METADATA_KEY = "nanosam2"
# 2: weights_sha256 (which model the graph came from); 3: the video graphs, object pointers;
# 4: the memory encoder rounds its memory to bfloat16 (the tracker's bank stays on the device)
CONTRACT_VERSION = 4
MEMORY_ROUNDED_SINCE = 4

# Export and engine-profile limits, in one place. The graphs accept up to EXPORT_MAX_*; an engine
# built with the default profile accepts DEFAULT_PROFILE_* (min, opt, max).
DEFAULT_OPSET = 18  # parsed by TensorRT 10.3 (JetPack 6) and 11; LayerNormalization is native from 17
OPSET_RANGE = (17, 20)
EXPORT_MAX_BATCH, EXPORT_MAX_PROMPTS, EXPORT_MAX_POINTS = 64, 256, 64
DEFAULT_PROFILE_PROMPTS = (1, 1, 64)
DEFAULT_PROFILE_POINTS = (1, 3, 16)
DEFAULT_PROFILE_PIXELS = (2, 1024, 4096)  # image height and width the preprocess engine takes
EXPORT_MAX_PIXELS = 8192
# The model's input side S (every graph's shapes follow it: features S/4..S/16, masks S/4): SAM2.1's 1024, or
# any multiple of 64 in this range (512: a quarter of the encoder's pixels, 1/16 of memory attention's work).
IMAGE_SIZE_STEP, IMAGE_SIZE_RANGE = 64, (128, 2048)


def check_image_size(size: int, flag: str = "--image-size") -> int:
    """``size`` when a model (and every graph of it) can take it, else one line saying what can."""
    lo, hi = IMAGE_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi or size % IMAGE_SIZE_STEP:
        raise NanoSam2Error(f"{flag} {size}: the model takes a multiple of {IMAGE_SIZE_STEP} from {lo} to {hi} "
                            f"(SAM2.1's is {IMAGE_SIZE}; 512 for small devices)")
    return size
# Video: the bank one memory-attention call reads: every prompted frame SAM2 conditions on (Meta: all of them;
# the graphs and default engine profiles take MAX_PROMPTED_FRAMES, and a tracker over an engine whose profile
# takes fewer keeps the closest ones, as Meta's max_cond_frames_in_attn does: tracker_config), plus
# num_maskmem - 1 = 6 recent memories and max_obj_ptrs_in_encoder - 1 = 15 recent pointers (0 before any exists).
MAX_PROMPTED_FRAMES = 16
EXPORT_MAX_MEMORIES, EXPORT_MAX_POINTERS = MAX_PROMPTED_FRAMES + 6, MAX_PROMPTED_FRAMES + 15
DEFAULT_PROFILE_MEMORIES = (1, 7, EXPORT_MAX_MEMORIES)
DEFAULT_PROFILE_POINTERS = (0, 16, EXPORT_MAX_POINTERS)

class Tensor(str):
    """A graph tensor's name (a ``str``: feeds, outputs and metadata are keyed by it) carrying what the table
    knows of it: its rank where a graph takes it as input, its dtype and its role (the contract's text).
    A new graph declares its new tensors inline in its ``GraphSpec``; nothing else lists them."""

    rank: int
    dtype: str
    role: str

    def __new__(cls, name: str, rank: int, role: str, dtype: str = "float32") -> "Tensor":
        tensor = super().__new__(cls, name)
        tensor.rank, tensor.role, tensor.dtype = rank, role, dtype
        return tensor

    def __reduce__(self) -> tuple:  # pickles (multiprocessing, caches) as what it is
        return (Tensor, (str(self), self.rank, self.role, self.dtype))


ENCODER = "image_encoder"
DECODER = "mask_decoder"
PREPROCESS = "preprocess"  # uint8 pixels -> encoder input (optional: the numpy path does the same)
POSTPROCESS = "postprocess"  # decoder outputs -> masks at the image size (optional, likewise)
MEMORY_ATTENTION = "memory_attention"  # current frame + one object's memory bank -> conditioned embedding
MEMORY_ENCODER = "memory_encoder"  # frame features + mask logits -> the frame's spatial memory

# Image encoder graph
IMAGE = Tensor("image", 4, '[B,3,S,S] float32, RGB / 255 resized to SxS (antialiased bilinear), ImageNet-normalised')
IMAGE_EMBED = Tensor("image_embed", 4, '[B,256,S/16,S/16] lowest-resolution FPN level + no_mem_embed')
HIGH_RES_FEATS_0 = Tensor("high_res_feats_0", 4, "[B,32,S/4,S/4] FPN level 0 after the decoder's conv_s0")
HIGH_RES_FEATS_1 = Tensor("high_res_feats_1", 4, "[B,64,S/8,S/8] FPN level 1 after the decoder's conv_s1")
ENCODER_INPUTS = (IMAGE,)
ENCODER_OUTPUTS = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1)

# Prompt encoder + mask decoder graph
POINT_COORDS = Tensor("point_coords", 3, '[P,N,2] float32 points in the SxS input frame')
POINT_LABELS = Tensor("point_labels", 2, '[P,N] float32: -1 padding, 0 background, 1 foreground, 2/3 box corners')
MASK_INPUT = Tensor("mask_input", 4, '[P,1,S/4,S/4] float32 low-resolution mask logits from a previous prediction')
HAS_MASK_INPUT = Tensor("has_mask_input", 1, '[P] float32, 1 where mask_input is used, else 0')
LOW_RES_MASKS = Tensor("low_res_masks", 4,
                '[P,T,S/4,S/4] mask logits of every mask token (token 0 = single-mask output)')
IOU_PREDICTIONS = Tensor("iou_predictions", 2, '[P,T] predicted IoU of every mask token')
OBJECT_SCORE_LOGITS = Tensor("object_score_logits", 2,
                '[P,1] object presence logit (not applied by the image predictor)')
OBJECT_POINTERS = Tensor("object_pointers", 2,
                '[P,T,256] object pointer of every mask token (decoder); [K,256] past pointers (memory attention)')
DECODER_INPUTS = (IMAGE_EMBED, HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT)
DECODER_OUTPUTS = (LOW_RES_MASKS, IOU_PREDICTIONS, OBJECT_SCORE_LOGITS, OBJECT_POINTERS)

# Memory attention and memory encoder graphs (video)
MASKMEM_FEATURES = Tensor("maskmem_features", 4,
                '[F,64,S/16,S/16] spatial memories (bfloat16-rounded, as SAM2 stores them)')
MASKMEM_TPOS_INDEX = Tensor("maskmem_tpos_index", 1,
                '[F] int64 temporal slot of each memory: num_maskmem - 1 - t_pos (t_pos 0 = conditioning)', "int64")
OBJECT_POINTER_OFFSETS = Tensor("object_pointer_offsets", 1,
                '[K] signed frame distance of each pointer / (max pointers - 1)')
OBJECT_POINTER_PRESENT = Tensor("object_pointer_present", 1,
                "[K] 1 where the object was present on the pointer's frame, else 0 (no-object pointer)")
CONDITIONED_IMAGE_EMBED = Tensor("conditioned_image_embed", 4,
                "[1,256,S/16,S/16] frame features conditioned on the memory (the decoder's image_embed)")
MASK_LOGITS = Tensor("mask_logits", 4,
                '[1,1,m,m] mask logits: the low-res prediction (m = S/4), or 20*mask-10 of a mask prompt (m = S)')
BINARIZE_MASK = Tensor("binarize_mask", 1, '[1] 1: encode mask > 0 (prompted frames), 0: encode sigmoid(mask)')
MASK_PROMPT = Tensor("mask_prompt", 4,
                "[1,1,S/4,S/4] mask_downsample of a mask prompt given at S (the decoder's mask_input)")
MEMORY_ATTENTION_INPUTS = (IMAGE_EMBED, MASKMEM_FEATURES, MASKMEM_TPOS_INDEX, OBJECT_POINTERS, OBJECT_POINTER_OFFSETS,
                           OBJECT_POINTER_PRESENT)
MEMORY_ATTENTION_OUTPUTS = (CONDITIONED_IMAGE_EMBED,)
MEMORY_ENCODER_INPUTS = (IMAGE_EMBED, MASK_LOGITS, BINARIZE_MASK, OBJECT_SCORE_LOGITS)
IMAGE_FEATURES = Tensor("image_features", 4,
                "[1,256,S/16,S/16] top-level features without no_mem_embed (the decoder's input for a mask prompt)")
MEMORY_ENCODER_OUTPUTS = (MASKMEM_FEATURES, MASK_PROMPT, IMAGE_FEATURES)
NO_OBJECT_SCORE = -1024.0  # SAM2's NO_OBJ_SCORE: the mask logits of a frame where the object is absent

# Pre- and post-processing graphs
PIXELS = Tensor("pixels", 3, '[H,W,3] uint8 RGB image (the postprocess graph reads only its shape)', "uint8")
MASK_PLANES = Tensor("mask_planes", 1,
                '[K] int64 candidate planes: 0 single (with fallback), 1-3 multimask, 4 best multimask', "int64")
MASKS = Tensor("masks", 4, '[P,K,H,W] uint8 0/1 masks at the image size')
SCORES = Tensor("scores", 2, '[P,K] predicted IoU of the chosen planes')
LOW_RES_LOGITS = Tensor("low_res_logits", 4,
                '[P,K,S/4,S/4] low-resolution logits of the chosen planes, clamped to +-32')
PREPROCESS_INPUTS, PREPROCESS_OUTPUTS = (PIXELS,), (IMAGE,)
POSTPROCESS_INPUTS = (LOW_RES_MASKS, IOU_PREDICTIONS, PIXELS, MASK_PLANES)
POSTPROCESS_OUTPUTS = (MASKS, SCORES, LOW_RES_LOGITS)
# Candidate planes the postprocess graph picks from with ``mask_planes``.
PLANE_SINGLE = 0  # token 0, or the best multimask output when token 0 is unstable (SAM2's fallback)
PLANES_MULTI = (1, 2, 3)  # the three multimask outputs
PLANE_BEST = 4  # the multimask output with the highest predicted IoU (the COCO protocol)
NUM_CANDIDATE_PLANES = PLANE_BEST + 1


# ---------------------------------------------------------------------------------------------------
# The table of graphs: everything the exporter, the verifier, the engine planner, the runtime's
# factory and CLI, and the benchmarks know about a graph. Adding a graph = one GraphSpec here + its
# torch module and example inputs (named below by import path: this module stays torch-free).

@dataclass(frozen=True)
class Axis:
    """A dynamic axis: its name in the graph, the sizes an export accepts, and the default engine
    optimisation profile (min, opt, max; ``"S"`` / ``"S/4"`` are the model's image size and a quarter of it)."""

    name: str
    lo: int
    hi: int
    profile: tuple[int | str, int | str, int | str]

    def profile_for(self, image_size: int) -> tuple[int, int, int]:
        sizes = {"S": image_size, "S/4": image_size // 4}
        return tuple(sizes[v] if isinstance(v, str) else v for v in self.profile)  # type: ignore[return-value]


BATCH = Axis("batch", 1, EXPORT_MAX_BATCH, (1, 1, 1))  # engines: one image at a time, the interactive case
PROMPTS = Axis("num_prompts", 1, EXPORT_MAX_PROMPTS, DEFAULT_PROFILE_PROMPTS)
POINTS = Axis("num_points", 1, EXPORT_MAX_POINTS, DEFAULT_PROFILE_POINTS)
HEIGHT = Axis("height", 2, EXPORT_MAX_PIXELS, DEFAULT_PROFILE_PIXELS)
WIDTH = Axis("width", 2, EXPORT_MAX_PIXELS, DEFAULT_PROFILE_PIXELS)
PLANES = Axis("num_planes", 1, NUM_CANDIDATE_PLANES, (1, 1, NUM_CANDIDATE_PLANES))
MEMORIES = Axis("num_memories", 1, EXPORT_MAX_MEMORIES, DEFAULT_PROFILE_MEMORIES)
POINTERS = Axis("num_pointers", 0, EXPORT_MAX_POINTERS, DEFAULT_PROFILE_POINTERS)  # 0: no pointer yet
MASK_SIDE = Axis("mask_size", 4, EXPORT_MAX_PIXELS, ("S/4", "S/4", "S"))  # a prediction (S/4) or a mask prompt (S)

# Verification (ONNX Runtime vs PyTorch): max abs error relative to max(1, max |reference|), by precision.
NETWORK_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
PIPELINE_TOLERANCE = {"fp32": 4e-5}  # pre/post-processing against the numpy reference (nanosam2.transforms)
BFLOAT16_STEP = 2.0**-7  # one step of bfloat16's 8 significant bits, relative


@dataclass(frozen=True)
class GraphSpec:
    name: str  # also the file stem: NAME.onnx, NAME.fp16.onnx, NAME.engine
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axes: dict[str, dict[int, Axis]]  # input -> axis -> Axis; every other axis is fixed
    module: str  # "package.module:function": model -> the torch module exported and run by the PyTorch backend
    examples: str  # "package.module:function": (model, encoder outputs at batch 1, seed) -> example inputs
    flag: str  # the command-line flag that names its file (every command's graph flags come from the table)
    help: str = ""  # that flag's help
    tolerance: dict[str, float] = field(default_factory=lambda: dict(NETWORK_TOLERANCE))
    fp32_only: bool = False  # the precision policy: stays FP32 in FP16 exports and engines
    weights: bool = True  # computed from the model's weights (pre/post-processing: from its constants only)
    predictor: bool = False  # one of the image Predictor's runners
    tracker: bool = False  # one of VideoPredictor's runners
    bfloat16_outputs: tuple[str, ...] = ()  # rounded to bfloat16 in the graph: verified to one bfloat16 step

    def output_tolerance(self, output: str, tolerance: float) -> float:
        """``tolerance`` for ``output``; for a rounded output at least one bfloat16 step (2**-7 relative): a
        value next to a rounding boundary may land on either side of it in two runtimes."""
        return max(tolerance, BFLOAT16_STEP) if output in self.bfloat16_outputs else tolerance

    def precision(self, requested: str) -> str:
        """The precision this graph is exported and built at when ``requested`` is asked for."""
        return "fp32" if self.fp32_only else requested

    def file_name(self, precision: str, suffix: str = ".onnx") -> str:
        precision = self.precision(precision)
        return f"{self.name}{'' if precision == 'fp32' else '.' + precision}{suffix}"


# The PyTorch side of the table, by import path (this module and the runtime package stay free of model code;
# the PyTorch backend resolves these when it runs): a model from a checkpoint, the contract of one of its graphs.
TORCH_MODEL_LOADER = "nanosam2.build:build_model"
TORCH_GRAPH_CONTRACT = "nanosam2.modeling.predictor_graphs:graph_contract"
_MODELING = "nanosam2.modeling.predictor_graphs:"
_EXAMPLES = "export.examples:"
GRAPH_SPECS: dict[str, GraphSpec] = {spec.name: spec for spec in (
    GraphSpec(ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS, {IMAGE: {0: BATCH}}, _MODELING + "ImageEncoderGraph",
              _EXAMPLES + "encoder_inputs", "--encoder", "image encoder: .engine/.plan (TensorRT), .onnx (ONNX Runtime) or "
              ".pt/.pth (PyTorch: a checkpoint)", predictor=True, tracker=True),
    GraphSpec(DECODER, DECODER_INPUTS, DECODER_OUTPUTS,
              {POINT_COORDS: {0: PROMPTS, 1: POINTS}, POINT_LABELS: {0: PROMPTS, 1: POINTS}, MASK_INPUT: {0: PROMPTS},
               HAS_MASK_INPUT: {0: PROMPTS}}, _MODELING + "MaskDecoderGraph", _EXAMPLES + "decoder_inputs",
              "--decoder", "prompt encoder + mask decoder, same file types as --encoder", predictor=True, tracker=True),
    # pre/post-processing: exact resampling and thresholds, FP32 always
    GraphSpec(PREPROCESS, PREPROCESS_INPUTS, PREPROCESS_OUTPUTS, {PIXELS: {0: HEIGHT, 1: WIDTH}},
              _MODELING + "preprocess_module", _EXAMPLES + "preprocess_inputs", "--preprocess",
              "optional preprocess graph of the same export (preprocess.onnx or an engine built from it): resize and "
              "normalise on the backend", dict(PIPELINE_TOLERANCE), fp32_only=True, weights=False, predictor=True),
    GraphSpec(POSTPROCESS, POSTPROCESS_INPUTS, POSTPROCESS_OUTPUTS,
              {LOW_RES_MASKS: {0: PROMPTS}, IOU_PREDICTIONS: {0: PROMPTS}, PIXELS: {0: HEIGHT, 1: WIDTH},
               MASK_PLANES: {0: PLANES}}, _MODELING + "postprocess_module", _EXAMPLES + "postprocess_inputs",
              "--postprocess", "optional postprocess graph of the same export: mask selection, upsampling and "
              "threshold on the backend", dict(PIPELINE_TOLERANCE), fp32_only=True, weights=False, predictor=True),
    GraphSpec(MEMORY_ATTENTION, MEMORY_ATTENTION_INPUTS, MEMORY_ATTENTION_OUTPUTS,
              {MASKMEM_FEATURES: {0: MEMORIES}, MASKMEM_TPOS_INDEX: {0: MEMORIES}, OBJECT_POINTERS: {0: POINTERS},
               OBJECT_POINTER_OFFSETS: {0: POINTERS}, OBJECT_POINTER_PRESENT: {0: POINTERS}},
              "nanosam2.modeling.video_graphs:MemoryAttentionGraph", _EXAMPLES + "memory_attention_inputs",
              "--memory-attention", "memory attention graph (.onnx, .engine or a checkpoint)", tracker=True),
    # a few convolutions on one map: FP16 saves nothing worth its error
    GraphSpec(MEMORY_ENCODER, MEMORY_ENCODER_INPUTS, MEMORY_ENCODER_OUTPUTS, {MASK_LOGITS: {2: MASK_SIDE, 3: MASK_SIDE}},
              "nanosam2.modeling.video_graphs:MemoryEncoderGraph", _EXAMPLES + "memory_encoder_inputs",
              "--memory-encoder", "memory encoder graph (.onnx, .engine or a checkpoint)", {"fp32": NETWORK_TOLERANCE["fp32"]},
              fp32_only=True, tracker=True,
              bfloat16_outputs=(MASKMEM_FEATURES,)),
)}

GRAPHS = tuple(GRAPH_SPECS)
GRAPH_IO = {name: (spec.inputs, spec.outputs) for name, spec in GRAPH_SPECS.items()}
IMAGE_GRAPHS = tuple(name for name, spec in GRAPH_SPECS.items() if spec.predictor)  # the image Predictor's, in order
TRACKER_GRAPHS = tuple(name for name, spec in GRAPH_SPECS.items() if spec.tracker)  # VideoPredictor's, in order
VIDEO_GRAPHS = tuple(name for name in TRACKER_GRAPHS if name not in IMAGE_GRAPHS)  # what tracking adds
FP32_GRAPHS = tuple(name for name, spec in GRAPH_SPECS.items() if spec.fp32_only)
MAY_BE_EMPTY = tuple(sorted({name for spec in GRAPH_SPECS.values() for name, axes in spec.axes.items()
                             if axes.get(0) is not None and axes[0].lo == 0}))  # axis 0 = 0: e.g. no pointer yet


def input_axis(name: str, axis: int) -> Axis | None:
    """The dynamic axis ``axis`` of input ``name`` (an input has the same axes in every graph that takes it)."""
    return next((spec.axes[name][axis] for spec in GRAPH_SPECS.values() if axis in spec.axes.get(name, {})), None)


def resolve(path: str) -> Any:
    """The object a spec names by ``"package.module:attribute"`` (imported on first use)."""
    import importlib

    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)

PROMPT_BATCHED = (POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT)  # axis 0 = prompt count P
POINT_AXIS_INPUTS = (POINT_COORDS, POINT_LABELS)  # axis 1 = point count N

# What the table knows of each tensor, derived from it (a graph's entry carries its tensors' roles, ranks, dtypes)
ROLES = {t: t.role for spec in GRAPH_SPECS.values() for t in (*spec.inputs, *spec.outputs)}
INPUT_RANKS = {t: t.rank for spec in GRAPH_SPECS.values() for t in spec.inputs}
INPUT_DTYPES = {t: t.dtype for spec in GRAPH_SPECS.values() for t in spec.inputs if t.dtype != "float32"}


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
    multimask_slice: list[int] = field(default_factory=lambda: list(MaskSelection.multimask_slice))
    dynamic_multimask_via_stability: bool = MaskSelection.dynamic_multimask_via_stability
    stability_delta: float = MaskSelection.stability_delta
    stability_thresh: float = MaskSelection.stability_thresh
    precision: str = "fp32"
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    exporter: str = ""
    weights_sha256: str = ""  # SHA-256 of the model's weights: graphs of one model carry the same value
    num_maskmem: int = 7  # video: conditioning frames + num_maskmem - 1 recent frames in the memory
    max_object_pointers: int = 16  # video: object pointers the memory attention reads at most
    contract_version: int = CONTRACT_VERSION

    @classmethod
    def for_graph(cls, graph: str, backbone: str, **kwargs: Any) -> "GraphContract":
        if graph not in GRAPH_IO:
            raise NanoSam2Error(f"unknown graph {graph!r}; nanosam2 graphs are {', '.join(GRAPHS)}")
        names_in, names_out = GRAPH_IO[graph]
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
            version = int(data.get("contract_version", 1))
        except (ValueError, TypeError, AttributeError) as exc:
            raise NanoSam2Error(f"{source}: unreadable nanosam2 metadata ({exc})") from None
        if version > CONTRACT_VERSION:
            raise NanoSam2Error(f"{source}: made by a newer nanosam2 (contract v{version}); upgrade nanosam2")
        try:
            return cls(**data)
        except TypeError as exc:
            raise NanoSam2Error(f"{source}: unreadable nanosam2 metadata ({exc})") from None

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


def prompt_feed(prompts: Any, rows: slice = slice(None)) -> dict[str, Any]:
    """The decoder inputs of a ``transforms.DecoderPrompts`` batch (rows ``rows``), by tensor name;
    add the encoder's outputs for a complete feed."""
    return {POINT_COORDS: prompts.point_coords[rows], POINT_LABELS: prompts.point_labels[rows],
            MASK_INPUT: prompts.mask_input[rows], HAS_MASK_INPUT: prompts.has_mask_input[rows]}


def check_pair(encoder: GraphContract, other: GraphContract, encoder_source: str, other_source: str,
               graph: str = DECODER) -> None:
    """Refuse an encoder and another graph (``graph``: the decoder, the pre/post-processing or the
    video graphs) that come from different models.

    Graphs of one export share ``weights_sha256`` (precision may differ: an INT8 encoder with an
    FP32 decoder is a valid pair). Files from before contract v2, or engines without a sidecar,
    carry no hash; then only what they do record (backbone, image size) is compared.
    """
    encoder.expect(ENCODER, encoder_source)
    other.expect(graph, other_source)
    if encoder.image_size != other.image_size:
        raise NanoSam2Error(f"{encoder_source} ({encoder.image_size} px) and {other_source} ({other.image_size} px) "
                            "were exported for different image sizes")
    known = "unknown"
    if known not in (encoder.backbone, other.backbone) and encoder.backbone != other.backbone:
        raise NanoSam2Error(f"{encoder_source} is a {encoder.backbone} encoder but {other_source} comes from "
                            f"{other.backbone}; use the graphs of one export")
    if encoder.weights_sha256 and other.weights_sha256 and encoder.weights_sha256 != other.weights_sha256:
        raise NanoSam2Error(f"{encoder_source} and {other_source} come from different weights "
                            f"({encoder.weights_sha256[:12]} vs {other.weights_sha256[:12]}); use the graphs "
                            "of one export")


def check_decoder_shapes(shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """The prompt inputs of one decoder call agree: same prompt count P, same point count N,
    points of 2 coordinates, at least one prompt and one point."""
    prompts = {name: shapes[name][0] for name in PROMPT_BATCHED if name in shapes and len(shapes[name])}
    if len(set(prompts.values())) > 1:
        raise NanoSam2Error(f"{source}: the prompt inputs disagree on the number of prompts: "
                            + ", ".join(f"{n} {p}" for n, p in prompts.items()))
    points = {name: shapes[name][1] for name in POINT_AXIS_INPUTS if name in shapes and len(shapes[name]) > 1}
    if len(set(points.values())) > 1:
        raise NanoSam2Error(f"{source}: point_coords and point_labels disagree on the number of points: "
                            + ", ".join(f"{n} {p}" for n, p in points.items()))
    if POINT_COORDS in shapes and len(shapes[POINT_COORDS]) == 3 and shapes[POINT_COORDS][2] != 2:
        raise NanoSam2Error(f"{source}: point_coords must be [P, N, 2], got {shapes[POINT_COORDS]}")
    for name, dims in shapes.items():
        if name in PROMPT_BATCHED and any(d == 0 for d in dims):
            raise NanoSam2Error(f"{source}: {name} has an empty dimension {tuple(dims)}: at least one prompt and point")
