"""Builders for the SAM2.1 teacher and the nanosam2 students (sam2's ``build_sam2``, extended).

A student config names a Meta base config and a trunk; the builder composes Meta's config
with sam2's own Hydra set-up, swaps the trunk and derives the neck's channel list from the
backbone's feature contract, so that everything but the trunk is Meta's SAM2.1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nanosam2 import contract as C
from nanosam2.checkpoint import copy_heads_from_teacher, load_state_dict_strict, read_checkpoint, save_checkpoint
from nanosam2.errors import CheckpointError, NanoSam2Error
from nanosam2.modeling.backbones import get_backbone_spec, list_backbones
from nanosam2.seed_checkpoint import check_backbone, checkpoint_backbone, map_seed_state
from nanosam2.transforms import MaskSelection

logger = logging.getLogger(__name__)

# Short teacher names -> config inside the sam2 package, and Meta's checkpoint file name.
TEACHERS: dict[str, tuple[str, str]] = {
    "hiera_t": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "hiera_s": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "hiera_b+": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "hiera_l": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}
SAM2_CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/{}"

# sam2.build_sam.build_sam2(apply_postprocessing=True): single-mask output falls back to the
# best multimask output when it is unstable. Kept identical so predictions match Meta's.
POSTPROCESSING_OVERRIDES = [
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    f"++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta={MaskSelection.stability_delta}",
    f"++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh={MaskSelection.stability_thresh}",
]


# sam2.build_sam.build_sam2_video_predictor(apply_postprocessing=True): clicked frames enter the memory
# binarised, and holes up to 8 low-res pixels are filled (which needs Meta's CUDA extension).
VIDEO_PREDICTOR_TARGET = "sam2.sam2_video_predictor.SAM2VideoPredictor"
VIDEO_POSTPROCESSING_OVERRIDES = ["++model.binarize_mask_from_pts_for_mem_enc=true", "++model.fill_hole_area=8"]


def model_overrides(apply_postprocessing: bool = True, video: bool = False, image_size: int | None = None) -> list[str]:
    """Hydra overrides of Meta's config: its post-processing, its video predictor class, an image size
    other than 1024 (``contract.check_image_size``: smaller models for tests and low-power devices)."""
    overrides = list(POSTPROCESSING_OVERRIDES) if apply_postprocessing else []
    if video:
        overrides.append(f"++model._target_={VIDEO_PREDICTOR_TARGET}")
        overrides += VIDEO_POSTPROCESSING_OVERRIDES if apply_postprocessing else []
    if image_size is not None:
        C.check_image_size(image_size, "image size")
        overrides.append(f"++model.image_size={image_size}")
    return overrides


def known_backbones() -> list[str]:
    """Students of the registry, then the SAM2.1 teachers' short names."""
    return list_backbones() + list(TEACHERS)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def list_student_configs() -> list[str]:
    """Names of the student configs: one per registered backbone (``nanosam2.1_<backbone>``)."""
    return [student_config_name(name) for name in list_backbones()]


def student_config_name(backbone: str) -> str:
    """``resnet18`` -> ``nanosam2.1_resnet18``."""
    get_backbone_spec(backbone)  # unknown names list the known ones
    return f"nanosam2.1_{backbone}"


def student_spec(backbone: str) -> dict[str, Any]:
    """A student's config, from its registry entry: Meta's base config (its heads) and our trunk."""
    spec = get_backbone_spec(backbone)
    return {"base": spec.base_config, "name": student_config_name(backbone),
            "trunk": {"_target_": "nanosam2.modeling.StudentTrunk", "backbone": backbone, "pretrained": False}}


def teacher_config_path(sam2_config: str) -> str:
    """Accept ``hiera_s``, ``sam2.1_hiera_s``, ``sam2.1_hiera_s.yaml`` or sam2's own config path."""
    name = os.path.basename(sam2_config)
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    short = name.removeprefix("sam2.1_")
    if short in TEACHERS:
        return TEACHERS[short][0]
    known = ", ".join(list(TEACHERS) + [f"sam2.1_{k}" for k in TEACHERS])
    raise NanoSam2Error(f"unknown SAM2.1 teacher config {sam2_config!r}; known: {known}")


def _compose(config_name: str, overrides: list[str]):
    import sam2  # noqa: F401  (sam2/__init__ initialises Hydra on its own config module)
    from hydra import compose
    from omegaconf import OmegaConf

    cfg = compose(config_name=config_name, overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def compose_student_config(spec: dict[str, Any], apply_postprocessing: bool = True, video: bool = False,
                           image_size: int | None = None):
    """Meta's base config with the trunk swapped for the student's and the neck adapted."""
    from omegaconf import OmegaConf

    cfg = _compose(spec["base"], model_overrides(apply_postprocessing, video, image_size))
    trunk = dict(spec["trunk"])
    cfg.model.image_encoder.trunk = OmegaConf.create(trunk)
    cfg.model.image_encoder.neck.backbone_channel_list = get_backbone_spec(trunk["backbone"]).feature_info.channel_list
    return cfg


def load_student_spec(config: str) -> dict[str, Any]:
    """A student config: ``resnet18`` / ``nanosam2.1_resnet18`` (from the registry), or a YAML file of one
    (``base``: Meta's config; ``trunk``: ``StudentTrunk``'s arguments)."""
    from omegaconf import OmegaConf

    if not os.path.isfile(config):
        name = config[: -len(".yaml")] if config.endswith(".yaml") else config
        backbone = name.removeprefix("nanosam2.1_")
        if backbone not in list_backbones():
            raise NanoSam2Error(f"unknown nanosam2 config {config!r}; known: {', '.join(list_student_configs())}")
        return student_spec(backbone)
    spec = OmegaConf.to_container(OmegaConf.load(config))
    if not isinstance(spec, dict) or "base" not in spec or "trunk" not in spec:
        raise NanoSam2Error(f"{config} is not a nanosam2 student config (needs 'base' and 'trunk')")
    spec["name"] = Path(config).stem
    return spec


def _instantiate(cfg) -> nn.Module:
    from hydra.utils import instantiate

    return instantiate(cfg.model, _recursive_=True)


def _finish(model: nn.Module, device: str | None, mode: str) -> nn.Module:
    model = model.to(device or default_device())
    return model.eval() if mode == "eval" else model.train()


def build_nanosam2(
    config: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | None = None,
    teacher_checkpoint: str | os.PathLike[str] | None = None,
    apply_postprocessing: bool = True,
    mode: str = "eval",
    video: bool = False,
    image_size: int | None = None,
    payload: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a SAM2.1 model whose image-encoder trunk is a nanosam2 student.

    ``config``: a student config name (``nanosam2.1_resnet18``), a backbone name
    (``resnet18``) or a YAML path; may be omitted when ``checkpoint`` is a nanosam2 student
    checkpoint (it records its config). ``checkpoint``: a student checkpoint, loaded strictly.
    ``teacher_checkpoint``: a Meta SAM2.1 checkpoint whose heads initialise a new student.
    Without either, every weight is random (a loud warning says so). ``video``: Meta's
    ``SAM2VideoPredictor`` class (what ``build_sam2_video_predictor`` gives) instead of ``SAM2Base``.
    ``image_size``: other than the config's 1024 (the checkpoint's weights do not depend on it).
    ``payload``: ``checkpoint`` already read (``read_checkpoint``), so that it is not read twice.
    """
    if payload is None and checkpoint is not None:
        payload = read_checkpoint(checkpoint)
    found = checkpoint_backbone(payload["model"]) if payload is not None else None
    if config is None and found is not None and found.startswith("hiera"):
        check_backbone(payload["model"], "a nanosam2 student", str(checkpoint))  # type: ignore[index]
    if config is None and found is not None and "config_spec" not in payload:  # type: ignore[operator]
        config = student_config_name(found)  # e.g. a seed urbste/nanosam2 checkpoint: its trunk says which student
    if config is None:
        if payload is None or "config_spec" not in payload:
            raise NanoSam2Error("build_nanosam2 needs a config, or a nanosam2 checkpoint that records one")
        try:
            spec = dict(payload["config_spec"])
        except (TypeError, ValueError):
            raise CheckpointError(f"{checkpoint}: its config_spec is not a config record") from None
    else:
        spec = load_student_spec(config)
    registered = get_backbone_spec(spec["trunk"]["backbone"]).image_size
    if image_size is None and registered != C.IMAGE_SIZE:
        image_size = registered  # the size its registry entry says
    model = _instantiate(compose_student_config(spec, apply_postprocessing, video, image_size))
    model.nanosam2_spec = spec  # type: ignore[assignment]
    if payload is not None:
        if payload.get("quantization"):  # a QAT student: re-create its folded, fake-quantized encoder first
            from nanosam2.qat.modelopt_int8 import restore_quantization

            restore_quantization(model, payload["quantization"], str(checkpoint))
        check_backbone(payload["model"], spec["trunk"]["backbone"], str(checkpoint))
        state = map_seed_state(payload["model"], spec["trunk"]["backbone"], str(checkpoint))
        load_state_dict_strict(model, state, str(checkpoint))
        logger.info("loaded student checkpoint %s", checkpoint)
    elif teacher_checkpoint is not None:
        count = copy_heads_from_teacher(model, read_checkpoint(teacher_checkpoint)["model"], str(teacher_checkpoint))
        logger.info("copied %d SAM head tensors from teacher %s; the student encoder is untrained", count, teacher_checkpoint)
    else:
        logger.warning("nanosam2 %s: RANDOM WEIGHTS (no checkpoint given) - masks are meaningless", spec["name"])
    return _finish(model, device, mode)


def build_teacher(
    sam2_config: str,
    checkpoint: str | os.PathLike[str] | None,
    device: str | None = None,
    apply_postprocessing: bool = True,
    mode: str = "eval",
    video: bool = False,
    image_size: int | None = None,
    payload: dict[str, Any] | None = None,
) -> nn.Module:
    """Build Meta's SAM2.1 model (``hiera_t/s/b+/l``) and load ``checkpoint`` strictly (``video`` and
    ``image_size`` as in :func:`build_nanosam2`).

    ``checkpoint=None`` gives random weights (tests only; a warning says so). Meta's files:
    ``SAM2_CHECKPOINT_URL.format(name)`` with the names in :data:`TEACHERS`.
    """
    overrides = model_overrides(apply_postprocessing, video, image_size)
    model = _instantiate(_compose(teacher_config_path(sam2_config), overrides))
    if checkpoint is not None:
        load_state_dict_strict(model, (payload or read_checkpoint(checkpoint))["model"], str(checkpoint))
    else:
        logger.warning("SAM2.1 %s: RANDOM WEIGHTS (no checkpoint given)", sam2_config)
    return _finish(model, device, mode)


def is_teacher(name: str | None) -> bool:
    """``hiera_t``, ``sam2.1_hiera_s``, a SAM2.1 config path: one of Meta's models (else a student)."""
    if name is None:
        return False
    try:
        teacher_config_path(name)
    except NanoSam2Error:
        return False
    return True


def build_model(name: str | None = None, checkpoint: str | os.PathLike[str] | None = None, device: str | None = None,
                *, video: bool = False, image_size: int | None = None, apply_postprocessing: bool = True,
                mode: str = "eval") -> nn.Module:
    """The one "teacher or student?" dispatch: Meta's SAM2.1 ``name`` (``hiera_s`` ...) with Meta's
    checkpoint, or a nanosam2 student (a backbone, a student config, or None for a checkpoint that
    records its config, ours or the seed's). Without a checkpoint the weights are random (said)."""
    payload = None
    if name is None and checkpoint is not None:  # Meta's own checkpoint names its model by its trunk
        payload = read_checkpoint(checkpoint)  # read once, handed on
        found = checkpoint_backbone(payload["model"])
        if found in TEACHERS:
            logger.info("%s: Meta's SAM2.1 %s checkpoint (its trunk says so)", checkpoint, found)
            name = found
    if is_teacher(name):
        return build_teacher(name, checkpoint, device, apply_postprocessing, mode, video, image_size,  # type: ignore[arg-type]
                             payload=payload)
    return build_nanosam2(name, checkpoint, device, apply_postprocessing=apply_postprocessing, mode=mode,
                          video=video, image_size=image_size, payload=payload)


def build_video_predictor(backbone: str | None, checkpoint: str | os.PathLike[str] | None = None,
                          device: str | None = None, image_size: int | None = None,
                          apply_postprocessing: bool = True) -> nn.Module:
    """Meta's ``SAM2VideoPredictor`` over a nanosam2 student (``resnet18`` ...; its checkpoint) or a
    SAM2.1 teacher (``hiera_t`` ...; Meta's checkpoint): ``build_sam2_video_predictor`` for students.

        predictor = build_video_predictor("resnet18", "student.pth")
        state = predictor.init_state("video_frames/")
    """
    return build_model(backbone, checkpoint, device, video=True, image_size=image_size,
                       apply_postprocessing=apply_postprocessing)


def save_student(path: str | os.PathLike[str], model: nn.Module, **extra: Any) -> Path:
    """Save a self-contained student checkpoint (weights + the config it was built from)."""
    spec = getattr(model, "nanosam2_spec", None)
    if spec is None:
        raise NanoSam2Error("save_student needs a model made by build_nanosam2")
    return save_checkpoint(path, model, config_spec=spec, **extra)
