"""The two exportable graphs around a SAM2 model (student or Hiera teacher).

``ImageEncoderGraph``: image -> (image_embed, high_res_feats_0, high_res_feats_1), exactly the
features ``SAM2ImagePredictor.set_image`` stores. ``MaskDecoderGraph``: those features of one
image plus a batch of P prompts of N points -> logits and IoU of every mask token.

The decoder re-composes Meta's sub-modules (nothing of their maths is re-implemented), with
three export-driven differences: image features are broadcast over the prompt batch instead
of ``repeat_interleave`` (which becomes OneHot/Tile on a shape tensor that TensorRT rejects),
label-dependent embeddings are 0/1 blends instead of masked assignment (bit-identical for
finite values), and the optional mask prompt is a per-prompt blend selected by
``has_mask_input``. Mask selection and upsampling stay outside the graph (nanosam2.transforms).
"""

from __future__ import annotations

import torch
from torch import nn

import nanosam2
from nanosam2.checkpoint import state_digest
from nanosam2.contract import GraphContract


QAT_PRECISION = "int8-qat"  # encoder of a QAT student: Q/DQ nodes from training, decoder stays FP32


def is_quantized(module: nn.Module) -> bool:
    """True when modelopt's fake quantizers (a QAT student) are inside ``module``; checked by class
    name so that inference and export never import the QAT code."""
    return any(type(m).__name__ == "TensorQuantizer" for m in module.modules())


class ImageEncoderGraph(nn.Module):
    """SAM2 image encoder + conv_s0/conv_s1 + no_mem_embed, as in ``SAM2ImagePredictor.set_image``."""

    def __init__(self, sam_model: nn.Module) -> None:
        super().__init__()
        if not (sam_model.use_high_res_features_in_sam and sam_model.directly_add_no_mem_embed):
            raise ValueError("only SAM2.1 image-predictor models (high-res features, no_mem_embed) are supported")
        self.image_encoder = sam_model.image_encoder
        self.conv_s0 = sam_model.sam_mask_decoder.conv_s0
        self.conv_s1 = sam_model.sam_mask_decoder.conv_s1
        self.no_mem_embed = sam_model.no_mem_embed

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.image_encoder(image)["backbone_fpn"]
        image_embed = fpn[-1] + self.no_mem_embed.reshape(1, -1, 1, 1)
        return image_embed, self.conv_s0(fpn[0]), self.conv_s1(fpn[1])


class MaskDecoderGraph(nn.Module):
    """SAM2 prompt encoder + mask decoder for a batch of prompts on one image (or on one
    tracked frame: ``image_embed`` is then the memory-attention graph's output)."""

    def __init__(self, sam_model: nn.Module) -> None:
        super().__init__()
        self.prompt_encoder = sam_model.sam_prompt_encoder
        self.mask_decoder = sam_model.sam_mask_decoder
        self.obj_ptr_proj = sam_model.obj_ptr_proj
        self.image_size = int(sam_model.image_size)
        self.register_buffer("image_pe", self.prompt_encoder.get_dense_pe().detach().clone(), persistent=False)
        self.embed_hw = tuple(self.prompt_encoder.image_embedding_size)

    @property
    def num_mask_tokens(self) -> int:
        return int(self.mask_decoder.num_mask_tokens)

    def embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """``PromptEncoder._embed_points(pad=False)``: Fourier features + label embeddings."""
        encoder = self.prompt_encoder
        coords = (point_coords + 0.5) / float(self.image_size)
        embedding = encoder.pe_layer._pe_encoding(coords)
        labels = point_labels.unsqueeze(-1)
        is_pad = (labels == -1).to(embedding.dtype)
        embedding = embedding * (1.0 - is_pad) + is_pad * encoder.not_a_point_embed.weight
        for label, table in enumerate(encoder.point_embeddings):
            embedding = embedding + (labels == label).to(embedding.dtype) * table.weight
        return embedding

    def embed_masks(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """Dense prompt: downscaled mask where given, else the learned no-mask embedding."""
        encoder = self.prompt_encoder
        use = has_mask_input.reshape(-1, 1, 1, 1)
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return use * encoder.mask_downscaling(mask_input) + (1.0 - use) * no_mask

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        decoder = self.mask_decoder
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_masks(mask_input, has_mask_input)
        prompts = sparse.shape[0]

        # MaskDecoder.predict_masks, with the image broadcast over the prompt batch.
        first = 1 if decoder.pred_obj_scores else 0
        token_tables = [decoder.iou_token.weight, decoder.mask_tokens.weight]
        if decoder.pred_obj_scores:
            token_tables.insert(0, decoder.obj_score_token.weight)
        output_tokens = torch.cat(token_tables, dim=0).unsqueeze(0).expand(prompts, -1, -1)
        tokens = torch.cat([output_tokens, sparse], dim=1)
        src = image_embed + dense
        hs, src = decoder.transformer(src, self.image_pe, tokens)
        iou_token_out = hs[:, first, :]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens, :]

        height, width = self.embed_hw
        src = src.transpose(1, 2).reshape(prompts, -1, height, width)
        dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
        upscaled = act1(ln1(dc1(src) + high_res_feats_1))
        upscaled = act2(dc2(upscaled) + high_res_feats_0)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
        )
        channels, up_h, up_w = upscaled.shape[1], upscaled.shape[2], upscaled.shape[3]
        masks = torch.matmul(hyper_in, upscaled.reshape(prompts, channels, up_h * up_w)).reshape(
            prompts, self.num_mask_tokens, up_h, up_w
        )
        iou_pred = decoder.iou_prediction_head(iou_token_out)
        if decoder.pred_obj_scores:
            object_score_logits = decoder.pred_obj_score_head(hs[:, 0, :])
        else:
            object_score_logits = 10.0 * torch.ones_like(iou_pred[:, :1])
        # The tracker's object pointer of every mask token (SAM2Base._forward_sam_heads picks one and
        # blends it with no_obj_ptr by the object score: the memory-attention graph does that).
        object_pointers = self.obj_ptr_proj(mask_tokens_out)
        return masks, iou_pred, object_score_logits, object_pointers


def graph_contract(graph_name: str, model: nn.Module, backbone: str, precision: str = "fp32",
                   weights_sha256: str | None = None) -> GraphContract:
    """The I/O contract of one graph of ``model``, as its mask decoder and predictor define it.

    ``weights_sha256`` (computed from ``model`` when not given) ties the graphs of one model
    together: the runtime refuses an encoder and a decoder whose hashes differ."""
    decoder = model.sam_mask_decoder
    return GraphContract.for_graph(
        graph_name,
        backbone,
        image_size=int(model.image_size),
        low_res_size=int(model.image_size) // 4,
        num_mask_tokens=int(decoder.num_mask_tokens),
        multimask_slice=[1, int(decoder.num_mask_tokens)],
        dynamic_multimask_via_stability=bool(decoder.dynamic_multimask_via_stability),
        stability_delta=float(decoder.dynamic_multimask_stability_delta),
        stability_thresh=float(decoder.dynamic_multimask_stability_thresh),
        precision=precision,
        exporter=f"nanosam2 {nanosam2.__version__}, torch {torch.__version__}",
        weights_sha256=weights_sha256 if weights_sha256 is not None else state_digest(model),
        num_maskmem=int(getattr(model, "num_maskmem", 7)),
        max_object_pointers=int(getattr(model, "max_obj_ptrs_in_encoder", 16)),
    )


def preprocess_module(model: nn.Module) -> nn.Module:
    """uint8 pixels -> the encoder's input, with ``model``'s image size and normalisation."""
    from nanosam2.modeling.pipeline_graphs import PreprocessGraph

    contract = graph_contract("preprocess", model, "", weights_sha256="")
    return PreprocessGraph(contract.image_size, tuple(contract.pixel_mean), tuple(contract.pixel_std))


def postprocess_module(model: nn.Module) -> nn.Module:
    """The decoder's outputs -> masks at the image size, with ``model``'s mask selection."""
    from nanosam2.modeling.pipeline_graphs import PostprocessGraph

    contract = graph_contract("postprocess", model, "", weights_sha256="")
    return PostprocessGraph(contract.mask_selection, contract.mask_threshold, contract.low_res_size)


def build_graph_module(graph_name: str, model: nn.Module) -> nn.Module:
    """The torch module of one nanosam2 graph of ``model`` (what the exporter writes and the PyTorch
    backend runs): the builder its entry of ``nanosam2.contract.GRAPH_SPECS`` names."""
    from nanosam2 import contract as C

    if graph_name not in C.GRAPH_SPECS:
        raise ValueError(f"unknown graph {graph_name!r}")
    return C.resolve(C.GRAPH_SPECS[graph_name].module)(model)
