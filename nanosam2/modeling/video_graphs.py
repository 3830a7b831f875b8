"""The two graphs SAM2's video path adds to the image graphs: memory attention and memory encoder.

``MemoryAttentionGraph``: the current frame's ``image_embed`` (the encoder graph's output) and one
object's memory bank -> the memory-conditioned embedding the mask decoder reads on tracked
frames (``SAM2Base._prepare_memory_conditioned_features`` + ``MemoryAttention``). The bank is
given as it is stored, not as Meta's pre-flattened token list: F spatial memories
[F, 64, h, w] with their temporal slots, and K object pointers [K, 256] with their signed
temporal offsets and object-presence flags. Everything constant per model (the spatial position
encodings, the temporal tables, the no-object pointer, the pointer-offset projection, RoPE's
tables) lives in the graph, so the runtime stores and ships only what changes per frame.

``MemoryEncoderGraph``: ``image_embed`` + the frame's low-resolution mask logits -> the spatial
memory of that frame (``SAM2Base._encode_new_memory``, rounded to bfloat16 as the video predictor
stores it, so the tracker writes it into its bank on the device unchanged), and, for a mask prompt, what
``_use_mask_as_output`` feeds the decoder: the prompt (``mask_downsample``) and the features
without ``no_mem_embed``.

Export-driven differences from Meta's modules, each equal within float rounding:
- RoPE with real cos/sin tables instead of complex multiplication (``rotate_pairs``);
- cross-attention values are projected after the attention: softmax rows sum to one, so
  ``A (M Wv^T + bv) = (A M) Wv^T + bv`` and the second product reads 64-d memory tokens
  instead of 256-d values (a quarter of the largest matmul of a tracking step);
- the raw top-level feature is ``image_embed - no_mem_embed`` (the encoder graph adds it);
- cross-attention runs over ``QUERY_CHUNKS`` slices of the queries in turn: softmax rows are
  independent, so the result is the same, and a backend holds a quarter of the [queries, memory
  tokens] score matrix at a time (at 1024 px with a full bank: 4096 x 28,736 floats = 470 MB, and
  as much again for the softmax). Measured on ONNX Runtime, 2 cores, full bank: the graph's
  peak resident growth 1372 -> 758 MB at the same speed (2.2-3.0 s per run either way).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nanosam2.errors import NanoSam2Error

QUERY_CHUNKS = 4  # cross-attention query slices (see the module docstring)


def axial_rope_tables(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [end_x * end_y, dim // 2] of Meta's ``compute_axial_cis`` (same float32 angles)."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x, t_y = (t % end_x).float(), torch.div(t, end_x, rounding_mode="floor").float()
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Meta's ``apply_rotary_enc`` on real numbers: channel pairs (2i, 2i+1) of ``x`` [..., N, D]
    rotated by the angles whose cos/sin [N, D/2] are given (``(a + ib)(c + is)``)."""
    pairs = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def sine_pe_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """sam2_utils.get_1d_sine_pe: [K] -> [K, dim]."""
    pe_dim = dim // 2
    dim_t = torch.arange(pe_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / pe_dim)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def round_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """``x.to(torch.bfloat16).float()`` (to nearest, ties to even: Meta stores memories so) in float32 ops
    every backend runs: Turing GPUs have no bfloat16 (TensorRT-RTX support matrix,
    docs.nvidia.com/deeplearning/tensorrt-rtx/latest/getting-started/support-matrix.html), and ONNX has no
    bit cast. A float with exponent e keeps 8 significant bits: a multiple of 2**(e - 7), an exact scaling,
    and ``Round`` is half-to-even. Values under 2**-119 are rounded to multiples of 2**-126 (no subnormal
    steps, which GPUs may flush)."""
    magnitude = x.abs()
    exponent = torch.floor(torch.log2(magnitude.clamp_min(2.0 ** -119)))
    scale = torch.exp2(exponent)  # log2 is approximate next to powers of two: correct by one either way
    exponent = exponent - (magnitude < scale).to(x.dtype) + (magnitude >= 2 * scale).to(x.dtype)
    step = torch.exp2(exponent.clamp_min(-119) - 7)
    return torch.round(x / step) * step


def check_video_model(model: nn.Module) -> None:
    """Refuse SAM2 variants whose video path differs from what the graphs and the tracker implement."""
    wanted = {"use_obj_ptrs_in_encoder": True, "add_tpos_enc_to_obj_ptrs": True, "proj_tpos_enc_in_obj_ptrs": True,
              "pred_obj_scores": True, "fixed_no_obj_ptr": True, "soft_no_obj_ptr": False,
              "use_multimask_token_for_obj_ptr": True, "directly_add_no_mem_embed": True,
              "use_high_res_features_in_sam": True, "use_mask_input_as_output_without_sam": True,
              "non_overlap_masks_for_mem_enc": False}
    wrong = [f"{k}={getattr(model, k, None)}" for k, v in wanted.items() if getattr(model, k, None) != v]
    if getattr(model, "no_obj_embed_spatial", None) is None:
        wrong.append("no_obj_embed_spatial=None")
    if int(getattr(model, "num_maskmem", 0)) < 2:
        wrong.append(f"num_maskmem={getattr(model, 'num_maskmem', None)}")
    if wrong:
        raise NanoSam2Error("the video graphs implement SAM2.1's video path; this model differs: " + ", ".join(wrong))


class _Attention(nn.Module):
    """Meta's ``RoPEAttention`` (or plain ``Attention``) with real RoPE tables.

    ``value_after_attention``: project the values after the attention (cross-attention to memory
    tokens narrower than the model: fewer multiply-adds, same result).
    """

    def __init__(self, attention: nn.Module, cos: torch.Tensor | None, sin: torch.Tensor | None,
                 value_after_attention: bool, query_chunks: int = 1) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (attention.q_proj, attention.k_proj,
                                                                 attention.v_proj, attention.out_proj)
        self.heads = int(attention.num_heads)
        self.head_dim = int(attention.internal_dim) // self.heads
        self.rope = cos is not None
        if cos is not None:
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
        self.value_after_attention = value_after_attention
        self.query_chunks = query_chunks

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [1, N, C] -> [1, h, N, C/h]
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope_frames: int = 0,
                spatial_tokens: int = 0) -> torch.Tensor:
        """``rope_frames`` > 0: keys are that many frames of ``spatial_tokens`` tokens (RoPE repeated per
        frame) followed by tokens RoPE leaves alone (object pointers); 0: queries and keys share positions."""
        q, k = self._heads(self.q_proj(q)), self._heads(self.k_proj(k))
        if self.rope:
            q = rotate_pairs(q, self.cos, self.sin)
            if rope_frames:
                rotated = k[:, :, : rope_frames * spatial_tokens].reshape(1, self.heads, rope_frames, spatial_tokens, -1)
                rotated = rotate_pairs(rotated, self.cos, self.sin).reshape(1, self.heads, rope_frames * spatial_tokens, -1)
                k = torch.cat([rotated, k[:, :, rope_frames * spatial_tokens :]], dim=2)
            else:
                k = rotate_pairs(k, self.cos, self.sin)
        q, keys = q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-2, -1)  # scaled before the product: smaller
        if self.value_after_attention:
            chunk = -(-q.shape[2] // self.query_chunks)
            memory = v.unsqueeze(1)  # [1, 1, M, kv_dim]
            mixed = torch.cat([torch.matmul(torch.softmax(torch.matmul(part, keys), dim=-1), memory)
                               for part in q.split(chunk, dim=2)], dim=2)  # [1, h, N, kv_dim]
            w = self.v_proj.weight.reshape(self.heads, self.head_dim, -1)  # [h, d, kv_dim]
            out = torch.matmul(mixed, w.transpose(1, 2)) + self.v_proj.bias.reshape(1, self.heads, 1, self.head_dim)
        else:
            out = torch.matmul(torch.softmax(torch.matmul(q, keys), dim=-1), self._heads(self.v_proj(v)))
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        return self.out_proj(out)


class MemoryAttentionGraph(nn.Module):
    """One object's memory-conditioned features of the current frame (batch 1)."""

    def __init__(self, model: nn.Module, query_chunks: int = QUERY_CHUNKS) -> None:
        super().__init__()
        check_video_model(model)
        attention = model.memory_attention
        size = int(model.sam_image_embedding_size)
        self.size, self.hidden_dim, self.mem_dim = size, int(model.hidden_dim), int(model.mem_dim)
        self.pointer_split = self.hidden_dim // self.mem_dim
        self.no_mem_embed = model.no_mem_embed
        self.no_obj_ptr = model.no_obj_ptr
        self.maskmem_tpos_enc = model.maskmem_tpos_enc  # [num_maskmem, 1, 1, mem_dim]
        self.obj_ptr_tpos_proj = model.obj_ptr_tpos_proj
        self.pos_enc_at_input = bool(attention.pos_enc_at_input)
        self.layers_meta = attention.layers
        self.norm = attention.norm
        with torch.no_grad():
            curr_pos = model.image_encoder.neck.position_encoding(torch.zeros(1, self.hidden_dim, size, size))
            mem_pos = model.memory_encoder.position_encoding(torch.zeros(1, self.mem_dim, size, size))
        self.register_buffer("curr_pos", curr_pos.flatten(2).transpose(1, 2).contiguous(), persistent=False)
        self.register_buffer("memory_pos", mem_pos.flatten(2).transpose(1, 2).contiguous(), persistent=False)
        self.self_attn, self.cross_attn = nn.ModuleList(), nn.ModuleList()
        for layer in attention.layers:
            for source, target, cross in ((layer.self_attn, self.self_attn, False),
                                          (layer.cross_attn_image, self.cross_attn, True)):
                cos = sin = None
                if type(source).__name__ == "RoPEAttention":
                    dim = int(source.internal_dim) // int(source.num_heads)
                    cos, sin = axial_rope_tables(dim, size, size, float(source.compute_cis.keywords.get("theta", 1e4)))
                target.append(_Attention(source, cos, sin, value_after_attention=cross,
                                         query_chunks=query_chunks if cross else 1))

    def forward(
        self,
        image_embed: torch.Tensor,  # [1, C, h, w]
        maskmem_features: torch.Tensor,  # [F, mem_dim, h, w]
        maskmem_tpos_index: torch.Tensor,  # [F] int64: row of maskmem_tpos_enc (num_maskmem - t_pos - 1)
        object_pointers: torch.Tensor,  # [K, C]
        object_pointer_offsets: torch.Tensor,  # [K] float32: signed frame distance / max distance
        object_pointer_present: torch.Tensor,  # [K] float32: 1 where the object was present
    ) -> torch.Tensor:
        channels, tokens = self.hidden_dim, self.size * self.size
        curr = (image_embed - self.no_mem_embed.reshape(1, channels, 1, 1)).flatten(2).transpose(1, 2)
        frames = maskmem_features.shape[0]
        memory = maskmem_features.flatten(2).transpose(1, 2)  # [F, hw, mem_dim]
        tpos = torch.index_select(self.maskmem_tpos_enc.reshape(-1, self.mem_dim), 0, maskmem_tpos_index)
        memory_pos = self.memory_pos + tpos.unsqueeze(1)  # [F, hw, mem_dim]
        present = object_pointer_present.unsqueeze(-1)
        pointers = present * object_pointers + (1.0 - present) * self.no_obj_ptr
        pointer_pos = self.obj_ptr_tpos_proj(sine_pe_1d(object_pointer_offsets, channels))  # [K, mem_dim]
        pointers = pointers.reshape(-1, self.mem_dim)  # [K * split, mem_dim]: each pointer's tokens in a row
        pointer_pos = pointer_pos.unsqueeze(1).expand(-1, self.pointer_split, -1).reshape(-1, self.mem_dim)
        memory = torch.cat([memory.reshape(-1, self.mem_dim), pointers], dim=0).unsqueeze(0)
        memory_pos = torch.cat([memory_pos.reshape(-1, self.mem_dim), pointer_pos], dim=0).unsqueeze(0)

        output = curr + 0.1 * self.curr_pos if self.pos_enc_at_input else curr
        for layer, self_attn, cross_attn in zip(self.layers_meta, self.self_attn, self.cross_attn):
            tgt = layer.norm1(output)
            qk = tgt + self.curr_pos if layer.pos_enc_at_attn else tgt
            output = output + self_attn(qk, qk, tgt)
            tgt = layer.norm2(output)
            output = output + cross_attn(
                tgt + self.curr_pos if layer.pos_enc_at_cross_attn_queries else tgt,
                memory + memory_pos if layer.pos_enc_at_cross_attn_keys else memory,
                memory, rope_frames=frames, spatial_tokens=tokens)
            output = output + layer.linear2(layer.activation(layer.linear1(layer.norm3(output))))
        output = self.norm(output)
        return output.transpose(1, 2).reshape(1, channels, self.size, self.size)


class MemoryEncoderGraph(nn.Module):
    """The spatial memory of one object on one frame, from the frame's features and mask logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_video_model(model)
        self.image_size, self.hidden_dim = int(model.image_size), int(model.hidden_dim)
        self.no_mem_embed = model.no_mem_embed
        self.memory_encoder = model.memory_encoder
        self.no_obj_embed_spatial = model.no_obj_embed_spatial
        self.mask_downsample = model.mask_downsample
        self.scale, self.bias = float(model.sigmoid_scale_for_mem_enc), float(model.sigmoid_bias_for_mem_enc)

    def forward(
        self,
        image_embed: torch.Tensor,  # [1, C, h, w]
        mask_logits: torch.Tensor,  # [1, 1, m, m]: low-res logits, or scale * mask + bias of a mask prompt at S
        binarize_mask: torch.Tensor,  # [1] float32: 1 for frames the user prompted (mask > 0), else sigmoid
        object_score_logits: torch.Tensor,  # [1, 1]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pix_feat = image_embed - self.no_mem_embed.reshape(1, self.hidden_dim, 1, 1)
        high_res = F.interpolate(mask_logits, size=(self.image_size, self.image_size), mode="bilinear",
                                 align_corners=False)
        use_binary = binarize_mask.reshape(1, 1, 1, 1)
        mask = use_binary * (high_res > 0).to(high_res.dtype) + (1.0 - use_binary) * torch.sigmoid(high_res)
        mask = mask * self.scale + self.bias
        features = self.memory_encoder(pix_feat, mask, skip_mask_sigmoid=True)["vision_features"]
        absent = 1.0 - (object_score_logits > 0).to(features.dtype).reshape(1, 1, 1, 1)
        features = features + absent * self.no_obj_embed_spatial.reshape(1, -1, 1, 1)
        features = round_to_bfloat16(features)  # as SAM2 stores a memory: the tracker keeps it on the device as is
        # _use_mask_as_output: the decoder's mask prompt is mask_downsample of the 0/1 mask.
        mask_prompt = self.mask_downsample((high_res - self.bias) / self.scale)
        return features, mask_prompt, pix_feat
