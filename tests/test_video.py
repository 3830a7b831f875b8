"""Video tracking: the memory graphs against Meta's modules, the torch-free tracker against Meta's
``SAM2VideoPredictor`` on the same random weights, streaming memory, the ``track`` CLI and its
bad inputs. Models are built at 512 px (the weights do not depend on the size; memory attention
costs 16x less than at 1024) on synthetic videos whose frames need no resize (Meta's JPEG loader
resizes with PIL's filter, the image path with an antialiased bilinear one)."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import run_cli
from tests.conftest import made_once, export_once, with_present_objects, with_trained_logit_scale
from nanosam2.samples import default_prompts, make_frames, shape_masks, write_jpeg_folder

SIZE, FRAMES = 512, 6
GRAPHS = (C.ENCODER, C.DECODER, C.MEMORY_ATTENTION, C.MEMORY_ENCODER)


def video_model(backbone: str, image_size: int = SIZE):
    import torch

    from nanosam2.build import build_video_predictor

    torch.manual_seed(0)
    model = build_video_predictor(backbone, device="cpu", image_size=image_size)
    model.fill_hole_area = 0  # Meta skips hole filling without its CUDA extension: compare without it
    return with_present_objects(with_trained_logit_scale(model))


@pytest.fixture(scope="module")
def student():
    return video_model("resnet18")


@pytest.fixture(scope="module")
def student_onnx(student, tmp_path_factory):
    from export.exporter import export_model

    return export_once(tmp_path_factory, "onnx-video-512", lambda folder: export_model(student, "resnet18", folder))


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    return made_once(tmp_path_factory, "video-jpeg-512", lambda folder: write_jpeg_folder(folder, FRAMES, SIZE, SIZE))


def without_hole_filling(config=None):
    """Meta's video predictor as it runs here: it skips hole filling without its CUDA extension."""
    from nanosam2.inference.tracker_config import VIDEO_PREDICTOR

    return (config or VIDEO_PREDICTOR).replace(fill_hole_area=0)


def onnx_tracker(paths, config=None, options=None):
    from nanosam2.inference.factory import load_video_predictor

    return load_video_predictor({g: paths[g] for g in GRAPHS}, options, without_hole_filling(config))


def torch_tracker(model, config=None):
    from nanosam2.inference.torch_runner import TorchRunner
    from nanosam2.inference.video import VideoPredictor

    return VideoPredictor(*(TorchRunner(graph=g, model=model, device="cpu") for g in GRAPHS), without_hole_filling(config))


def scenario(predictor, frames_dir: Path, as_numpy) -> dict:
    """Click + box + mask objects, propagation, a correction click on a tracked frame, reverse propagation."""
    state = predictor.init_state(str(frames_dir))
    out: dict = {}
    for prompt in default_prompts(SIZE, SIZE):
        _, _, masks = predictor.add_new_points_or_box(state, prompt["frame"], prompt["obj_id"], points=prompt.get("points"),
                                                      labels=prompt.get("labels"), box=prompt.get("box"))
    out["prompt"] = as_numpy(masks)
    _, _, masks = predictor.add_new_mask(state, 0, 3, shape_masks(SIZE, SIZE, 0)["rect"])
    out["mask-prompt"] = as_numpy(masks)
    for frame, _, masks in predictor.propagate_in_video(state):
        out[frame] = as_numpy(masks)
    _, _, masks = predictor.add_new_points_or_box(state, 3, 1, points=[[60, 60]], labels=[0], clear_old_points=False)
    out["correction"] = as_numpy(masks)
    for frame, _, masks in predictor.propagate_in_video(state, start_frame_idx=3, reverse=True):
        out[("reverse", frame)] = as_numpy(masks)
    return out


def mask_ious(reference: np.ndarray, ours: np.ndarray) -> list[float]:
    ious = []
    for a, b in zip(reference > 0, ours > 0):
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
    return ious


def check_parity(meta, ours, frames_dir):
    reference = scenario(meta, frames_dir, lambda m: m.float().numpy())
    actual = scenario(ours, frames_dir, lambda m: m)
    assert reference.keys() == actual.keys()
    worst = min(min(mask_ious(reference[k], actual[k])) for k in reference)
    areas = [int((reference[k] > 0).sum()) for k in reference]
    assert min(areas) > 100  # every step compares real masks, not empty ones
    assert worst >= 0.99, {k: mask_ious(reference[k], actual[k]) for k in reference}
    return worst


def test_student_tracker_matches_meta_video_predictor(student, student_onnx, frames_dir):
    """ONNX Runtime graphs of a student vs Meta's SAM2VideoPredictor on the same weights."""
    with onnx_tracker(student_onnx) as ours:
        check_parity(student, ours, frames_dir)
        assert ours.calls["memory_attention"] > 0 and ours.calls["memory_encoder"] > 0


def test_fp16_memory_attention_matches_fp32(student_onnx, tmp_path):
    """The FP16 memory attention (what the exporter writes and TensorRT 11's --fp16 converts to: one
    ``to_fp16``, Softmax kept FP32) against the FP32 graph on the largest bank (16 memories: 16k keys
    at 512 px, 16 pointers) and the smallest (1 memory, no pointer)."""
    import onnx
    import torch

    from export.examples import graph_inputs
    from nanosam2.utils.onnx_passes import save_checked, to_fp16
    from nanosam2.metrics import cosine
    from nanosam2.inference.factory import open_runner

    model = to_fp16(onnx.load(str(student_onnx[C.MEMORY_ATTENTION])))
    producers = {out: node for node in model.graph.node for out in node.output}
    softmax = [node for node in model.graph.node if node.op_type == "Softmax"]
    assert softmax and all(producers[n.input[0]].op_type == "Cast"
                           and producers[n.input[0]].attribute[0].i == onnx.TensorProto.FLOAT for n in softmax)
    assert sum(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer) > 10
    save_checked(model, tmp_path / "memory_attention.fp16.onnx")
    torch.manual_seed(0)
    embed = torch.randn(1, 256, SIZE // 16, SIZE // 16)
    with open_runner(student_onnx[C.MEMORY_ATTENTION]) as fp32, open_runner(tmp_path / "memory_attention.fp16.onnx") as fp16:
        for memories, pointers in ((C.EXPORT_MAX_MEMORIES, C.EXPORT_MAX_POINTERS), (1, 0)):
            feed = {n: a.numpy() for n, a in zip(C.MEMORY_ATTENTION_INPUTS, graph_inputs(
                C.MEMORY_ATTENTION, _model_stub(), (embed,), memories=memories, pointers=pointers))}
            want, got = (r.infer(feed)[C.CONDITIONED_IMAGE_EMBED] for r in (fp32, fp16))
            assert cosine(want, got) >= 0.9999
            assert np.abs(want - got).max() <= 0.01 * np.abs(want).max(), (memories, np.abs(want - got).max())


@pytest.mark.slow
def test_teacher_tracker_matches_meta_video_predictor(frames_dir):
    """hiera_t (random weights) through the PyTorch backend's graph modules vs Meta's predictor."""
    model = video_model("hiera_t")
    with torch_tracker(model) as ours:
        check_parity(model, ours, frames_dir)


def test_rope_rewrite_matches_meta_complex_rotation():
    import torch
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    from nanosam2.modeling.video_graphs import axial_rope_tables, rotate_pairs

    cis = compute_axial_cis(256, 16, 16)
    cos, sin = axial_rope_tables(256, 16, 16)
    q, k = torch.randn(1, 1, 256, 256) * 3, torch.randn(1, 1, 3 * 256, 256) * 3
    q_ref, k_ref = apply_rotary_enc(q, k, cis, repeat_freqs_k=True)
    assert (q_ref - rotate_pairs(q, cos, sin)).abs().max() <= 1e-5
    k_ours = rotate_pairs(k.reshape(1, 1, 3, 256, 256), cos, sin).reshape(k.shape)
    assert (k_ref - k_ours).abs().max() <= 1e-5
    assert (rotate_pairs(q, cos, sin) - q).abs().max() > 1  # the rotation does something


def test_memory_graphs_match_meta_modules(student):
    """The memory-attention graph on a bank laid out as SAM2 lays it out (queries in slices or
    whole: the same); the memory encoder."""
    import torch
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    from nanosam2.modeling.video_graphs import MemoryAttentionGraph, MemoryEncoderGraph

    m, side = student, SIZE // 16
    gen = torch.Generator().manual_seed(1)
    embed = torch.randn(1, 256, side, side, generator=gen)
    feats = torch.randn(3, 64, side, side, generator=gen).to(torch.bfloat16).float()
    slots, ptrs = torch.tensor([6, 4, 5]), torch.randn(4, 256, generator=gen)
    offsets, present = torch.tensor([1.0, 2, 3, -4]) / 15, torch.tensor([1.0, 0, 1, 1])
    with torch.no_grad():
        ours = MemoryAttentionGraph(m).eval()(embed, feats, slots, ptrs, offsets, present)
        curr = (embed - m.no_mem_embed.reshape(1, 256, 1, 1)).flatten(2).permute(2, 0, 1)
        curr_pos = m.image_encoder.neck.position_encoding(embed).flatten(2).permute(2, 0, 1)
        mem_pos = m.memory_encoder.position_encoding(feats[:1]).flatten(2).permute(2, 0, 1)
        memory = [feats[i : i + 1].flatten(2).permute(2, 0, 1) for i in range(3)]
        pos = [mem_pos + m.maskmem_tpos_enc[slots[i]] for i in range(3)]
        blended = present[:, None] * ptrs + (1 - present[:, None]) * m.no_obj_ptr
        memory.append(blended[:, None].reshape(-1, 1, 4, 64).permute(0, 2, 1, 3).flatten(0, 1))
        pos.append(m.obj_ptr_tpos_proj(get_1d_sine_pe(offsets, dim=256)).unsqueeze(1).repeat_interleave(4, dim=0))
        ref = m.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=torch.cat(memory), memory_pos=torch.cat(pos),
                                 num_obj_ptr_tokens=16).permute(1, 2, 0).reshape(ours.shape)
        assert (ours - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))
        for chunks in (1, 3):  # the default slices the 1024 queries in 4; 3 slices are uneven
            other = MemoryAttentionGraph(m, query_chunks=chunks).eval()(embed, feats, slots, ptrs, offsets, present)
            assert (other - ours).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
        # the memories' order does not matter (the tracker feeds its ring's rows in place, in row order)
        order = torch.tensor([2, 0, 1])
        shuffled = MemoryAttentionGraph(m).eval()(embed, feats[order], slots[order], ptrs, offsets, present)
        assert (shuffled - ours).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
        low = torch.randn(1, 1, SIZE // 4, SIZE // 4, generator=gen) * 5
        features, _, raw = MemoryEncoderGraph(m).eval()(embed, low, torch.tensor([1.0]), torch.tensor([[-1.0]]))
        high = torch.nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        ref_features, _ = m._encode_new_memory([curr], [(side, side)], high, torch.tensor([[-1.0]]), True)
        # the graph stores the memory as Meta's video predictor does: rounded to bfloat16
        assert ((features - ref_features).abs() <= ref_features.abs() * 2.0**-8 + 1e-4).all()
        assert (features == ref_features.to(torch.bfloat16).float()).float().mean() >= 0.99
        assert (raw.flatten(2).permute(2, 0, 1) - curr).abs().max() <= 1e-5


def test_the_memory_encoders_bfloat16_rounding_is_torchs_cast_in_eager_and_onnx(tmp_path):
    """The memory encoder graph rounds as ``.to(torch.bfloat16).float()`` does, to the bit, in float32 ops
    (ties to even, next to powers of two where log2 is approximate, tiny and huge values), eager and in
    ONNX Runtime."""
    import onnxruntime as ort
    import torch

    from nanosam2.modeling.video_graphs import round_to_bfloat16

    gen = torch.Generator().manual_seed(0)
    powers = torch.exp2(torch.arange(-110, 120).float())
    ties = (torch.randint(128, 256, (2000,), generator=gen).float() + 0.5) * torch.exp2(
        torch.randint(-30, 30, (2000,), generator=gen).float())
    values = torch.cat([torch.randn(20000, generator=gen) * 10, torch.randn(5000, generator=gen) * 1e-3,
                        torch.randn(1000, generator=gen) * 1e30, powers, torch.nextafter(powers, torch.zeros(1)),
                        torch.nextafter(powers, powers * 4), ties, -ties,
                        torch.tensor([0.0, -0.0, 1.00390625, 1.01171875, 255.5, 3.4e38])])
    expected = values.to(torch.bfloat16).float()
    assert torch.equal(round_to_bfloat16(values), expected)

    class Round(torch.nn.Module):
        def forward(self, x):
            return round_to_bfloat16(x)

    path = tmp_path / "round.onnx"
    torch.onnx.export(Round(), (values,), str(path), input_names=["x"], output_names=["y"], opset_version=C.DEFAULT_OPSET,
                      dynamic_shapes={"x": {0: torch.export.Dim("n")}}, dynamo=True, external_data=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": values.numpy()})[0]
    assert np.array_equal(got, expected.numpy())


def stub_tracker(size: int = 128, banks: list | None = None, config=None, limits: dict | None = None):
    """A tracker over fast stand-in runners with the real contract shapes (the bank, not the maths).
    With ``banks``: the n-th memory encoded is filled with n, and each memory-attention call appends
    {memory value: tpos index} and the memories array it was fed. ``limits``: {input name: most rows}, as an
    engine profile's maxima (the stub refuses more, as TensorRT does)."""
    from nanosam2.contract import GraphContract
    from nanosam2.inference.runner import Runner
    from nanosam2.inference.video import VideoPredictor

    side, low = size // 16, size // 4

    class Stub(Runner):
        backend = "stub"

        def __init__(self, graph: str) -> None:
            super().__init__(None)
            self.contract = GraphContract.for_graph(graph, "resnet18", image_size=size, low_res_size=low)
            self._inputs, self._outputs = (list(n) for n in C.GRAPH_IO[graph])

        def max_rows(self, name):
            return (limits or {}).get(name) if self.contract.graph == C.MEMORY_ATTENTION else None

        def infer_impl(self, feed, copy_outputs_to_host=True):
            rng = np.random.default_rng(len(feed))
            for name, most in ((limits or {}).items() if self.contract.graph == C.MEMORY_ATTENTION else ()):
                if feed[name].shape[0] > most:
                    raise NanoSam2Error(f"{name} of shape {feed[name].shape} is outside the engine's profile")
            if self.contract.graph == C.ENCODER:
                return {C.IMAGE_EMBED: rng.random((1, 256, side, side), np.float32),
                        C.HIGH_RES_FEATS_0: np.zeros((1, 32, 4 * side, 4 * side), np.float32),
                        C.HIGH_RES_FEATS_1: np.zeros((1, 64, 2 * side, 2 * side), np.float32)}
            if self.contract.graph == C.DECODER:
                return {C.LOW_RES_MASKS: rng.standard_normal((1, 4, low, low)).astype(np.float32),
                        C.IOU_PREDICTIONS: rng.random((1, 4), np.float32), C.OBJECT_SCORE_LOGITS: np.ones((1, 1), np.float32),
                        C.OBJECT_POINTERS: rng.random((1, 4, 256), np.float32)}
            if self.contract.graph == C.MEMORY_ATTENTION:
                assert feed[C.MASKMEM_FEATURES].shape[0] == len(feed[C.MASKMEM_TPOS_INDEX])
                if banks is not None:
                    memories = feed[C.MASKMEM_FEATURES]
                    assert all(np.all(m == m.flat[0]) for m in memories)
                    banks.append(({int(m.flat[0]): int(i) for m, i in zip(memories, feed[C.MASKMEM_TPOS_INDEX])},
                                  memories))
                return {C.CONDITIONED_IMAGE_EMBED: feed[C.IMAGE_EMBED]}
            memory = rng.random((1, 64, side, side), np.float32)
            if banks is not None:
                self.encoded = getattr(self, "encoded", -1) + 1
                memory = np.full((1, 64, side, side), self.encoded, np.float32)
            return {C.MASKMEM_FEATURES: memory,
                    C.MASK_PROMPT: np.zeros((1, 1, low, low), np.float32), C.IMAGE_FEATURES: feed[C.IMAGE_EMBED]}

    return VideoPredictor(*(Stub(g) for g in GRAPHS), without_hole_filling(config))


def test_streaming_memory_stays_bounded():
    """300 frames from an iterator: the bank stops growing after the window fills, and so does the
    memory numpy holds (frames are never kept)."""
    predictor = stub_tracker()
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(300))
    prompts = {0: [{"obj_id": 1, "points": [[20, 20]], "labels": [1]}], 40: [{"obj_id": 2, "box": [10, 10, 60, 50]}]}
    sizes, traced = [], []
    tracemalloc.start()
    try:
        for frame_idx, obj_ids, masks in predictor.track_stream(frames, prompts):
            assert masks.shape == (len(obj_ids), 1, 96, 128)
            sizes.append(predictor.memory_size(predictor.stream_state))
            if frame_idx in (100, 299):
                traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert sizes[100] == sizes[299]  # 2 objects: prompted frame + 6 spatial memories, 15 pointers each
    assert sizes[299]["memories"] == 2 * 7 and sizes[299]["pointers"] == 2 * 16 and sizes[299]["masks"] <= 4
    assert traced[1] - traced[0] < 256 * 1024, traced
    assert predictor.calls["encoder"] == 300


def test_the_bank_stays_on_the_device_and_memory_attention_reads_it_in_place():
    """Each object's memories are rows of one buffer (the memory attention's device): streaming feeds a
    view of it (no copy; one row moved per frame to keep the rows packed) and it never grows; the
    whole-video API gathers the rows it needs. Either way each memory arrives with its own temporal
    slot: frame t - k's memory at index k - 1, the prompted frame's at num_maskmem - 1."""
    banks: list = []
    predictor = stub_tracker(banks=banks)
    frames = [np.zeros((64, 64, 3), np.uint8)] * 40
    stream = predictor.track_stream(iter(frames), {0: [{"obj_id": 1, "points": [[5, 5]], "labels": [1]}]})
    copies = []
    for frame_idx, _, _ in stream:
        ring = predictor.stream_state.objects[1].ring
        copies.append(ring.row_copies)
        if frame_idx >= 1:  # frame t read memories 0 (the prompt) and t-1 .. t-6 (the n-th memory is frame n's)
            seen, memories = banks[-1]
            assert seen == {0: 6, **{frame_idx - k: k - 1 for k in range(1, min(frame_idx, 7))}}, (frame_idx, seen)
            assert np.shares_memory(memories, ring.buffer.data)  # the ring itself, not a copy
    assert ring.capacity == 8 and ring.buffer.shape[0] == 8  # prompt + 6 recent + the newest before forgetting
    assert np.diff(copies)[10:].tolist() == [1] * (len(copies) - 11)  # one row moved per frame, no gather
    assert predictor.memory_size(predictor.stream_state)["device_bytes"] == 8 * 64 * 8 * 8 * 4

    banks.clear()
    predictor = stub_tracker(banks=banks)
    state = predictor.init_state(frames[:20])
    predictor.add_new_points_or_box(state, 5, 1, points=[[5, 5]], labels=[1])
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        if frame_idx > 5:
            seen, memories = banks[-1]
            # memories encoded: 0 (frame 5), then frame 6 -> 1, ...: frame t's memory is t - 5
            assert seen == {0: 6, **{frame_idx - 5 - k: k - 1 for k in range(1, min(frame_idx - 5, 7))}}, seen
    ring = state.objects[1].ring
    assert ring.capacity == 16 and ring.row_copies > 0  # every frame's memory kept; the bank gathered from it
    predictor.remove_object(state, 1)
    assert ring.buffer is None


def test_max_memory_frames_limits_the_bank():
    from nanosam2.inference.tracker_config import VIDEO_PREDICTOR

    predictor = stub_tracker(config=VIDEO_PREDICTOR.replace(memory_frames=2))
    frames = [np.zeros((64, 64, 3), np.uint8)] * 12
    for _ in predictor.track_stream(frames, {0: [{"obj_id": 1, "points": [[5, 5]], "labels": [1]}]}):
        pass
    assert predictor.memory_size(predictor.stream_state)["memories"] == 1 + 2


def test_tracker_api_errors(student_onnx, frames_dir):
    with onnx_tracker(student_onnx) as predictor:
        state = predictor.init_state(str(frames_dir))
        with pytest.raises(NanoSam2Error, match="outside the video"):
            predictor.add_new_points_or_box(state, FRAMES, 1, points=[[5, 5]], labels=[1])
        with pytest.raises(NanoSam2Error, match="no object has a prompt"):
            list(predictor.propagate_in_video(state))
        with pytest.raises(NanoSam2Error, match="unknown|cannot remove object id 7"):
            predictor.remove_object(state, 7, strict=True)
        predictor.add_new_points_or_box(state, 0, 1, points=[[100, 100]], labels=[1])
        predictor.add_new_points_or_box(state, 0, 2, box=[200, 200, 300, 300])
        assert predictor.remove_object(state, 1) == [2]
        assert [f for f, _, _ in predictor.propagate_in_video(state, max_frame_num_to_track=2)] == [0, 1, 2]
        predictor.reset_state(state)
        assert state.obj_ids == []


def track(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trt_runtime", "track", *args], capture_output=True, text=True)


def test_track_cli_end_to_end(student_onnx, frames_dir, tmp_path):
    import av

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(default_prompts(SIZE, SIZE)))
    model_dir = student_onnx[C.ENCODER].parent
    out = tmp_path / "out"
    result = track("--model-dir", str(model_dir), "--video", str(frames_dir), "--prompts", str(prompts),
                   "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "FPS" in result.stdout and "memory_attention" in result.stdout
    for obj in (1, 2):
        files = sorted((out / "masks" / str(obj)).iterdir())
        assert [f.name for f in files] == [f"{t:05d}.png" for t in range(FRAMES)]
        from PIL import Image

        first = np.asarray(Image.open(files[0]))
        assert first.shape == (SIZE, SIZE) and set(np.unique(first)) <= {0, 255} and first.any()
    with av.open(str(out / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    record = json.loads((out / "track.json").read_text())
    assert record["frames"] == FRAMES and record["objects"] == [1, 2]
    # a second run (shortcut flags) replaces the first one's outputs, leaving no staging folder behind
    result = track("--model-dir", str(model_dir), "--video", str(frames_dir), "--point", "150,190", "--no-overlay",
                   "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["masks", "track.json"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["1"]


def test_track_cli_bad_inputs(student_onnx, frames_dir, runtime_onnx, tmp_path):
    from PIL import Image

    model_dir = str(student_onnx[C.ENCODER].parent)
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"frame": 0, "obj_id": 1, "points": [[10, 10]], "labels": [1]}]))
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    for t in range(2):
        Image.fromarray(make_frames(1, 64, 64)[0]).save(broken / f"{t:05d}.jpg")
    (broken / "00001.jpg").write_bytes(b"not a jpeg")
    late = tmp_path / "late.json"
    late.write_text(json.dumps([{"frame": 99, "obj_id": 1, "box": [1, 1, 20, 20]}]))
    cases = [
        (["--video", str(empty), "--prompts", str(good)], "no JPEG frames"),
        (["--video", str(broken), "--prompts", str(good)], "00001.jpg"),
        (["--video", str(frames_dir), "--prompts", str(late)], "past the end"),
        (["--video", str(frames_dir), "--prompts", str(tmp_path / "missing.json")], "no such prompts file"),
        (["--video", str(tmp_path / "nowhere"), "--prompts", str(good)], "no such video"),
        (["--video", str(frames_dir)], "give --prompts"),
        (["--video", str(frames_dir), "--prompts", str(good), "--encoder", str(runtime_onnx[C.ENCODER])],
         "different image sizes|different weights"),
    ]
    for content, message in (("{", "not a valid JSON"), ('[{"frame": 0, "obj_id": 1}]', "give points"),
                             ('[{"frame": -1, "obj_id": 1, "box": [0, 0, 5, 5]}]', "frame must be"),
                             ('[{"frame": 0, "obj_id": 1, "points": [[1, 2]], "labels": [7]}]', "labels must be"),
                             ('[{"frame": 0, "obj_id": 1, "box": [5, 5, 1, 1]}]', "x0 < x1")):
        bad = tmp_path / f"bad{len(cases)}.json"
        bad.write_text(content)
        cases.append((["--video", str(frames_dir), "--prompts", str(bad)], message))
    for args, message in cases:
        out = tmp_path / "out"
        result = track("--model-dir", model_dir, *args, "--output", str(out))
        assert result.returncode != 0, args
        lines = [line for line in result.stderr.strip().splitlines()  # tqdm's progress lines aside
                 if line.strip() and not line.startswith("track")]
        assert len(lines) == 1 and __import__("re").search(message, lines[0]), (args, result.stderr)
        assert not out.exists() or not any(out.iterdir()), args  # nothing half-written


def test_track_keeps_frame_numbers_and_the_users_files(student_onnx, frames_dir, tmp_path, capsys):
    """Issue 22: a JPEG folder with gaps keeps its numbers (masks, prompts, overlay); a user's files
    in OUT, a foreign track.json and inputs inside OUT's outputs are refused before any work; prompts
    predict refuses are refused; several --box are several objects."""
    import shutil

    from trt_runtime import cli

    gaps = tmp_path / "gaps"
    gaps.mkdir()
    for number, source in zip((0, 1, 2, 7, 8), sorted(frames_dir.iterdir())):
        shutil.copy(source, gaps / f"{number}.jpg")
    model = ["track", "--model-dir", str(student_onnx[C.ENCODER].parent), "--no-overlay"]
    prompts = tmp_path / "late.json"
    prompts.write_text(json.dumps([{"frame": 7, "obj_id": 3, "box": [100, 120, 300, 330]}]))
    out = tmp_path / "out"
    assert run_cli(cli.main, [*model, "--video", str(gaps), "--prompts", str(prompts), "--output", str(out)]) == 0
    assert sorted(p.name for p in (out / "masks" / "3").iterdir()) == [f"{n:05d}.png" for n in (0, 1, 2, 7, 8)]
    record = json.loads((out / "track.json").read_text())
    assert record["frames"] == 5 and record["prompts"][0]["frame"] == 7
    prompts.write_text(json.dumps([{"frame": 3, "obj_id": 3, "box": [100, 120, 300, 330]}]))
    assert run_cli(cli.main, [*model, "--video", str(gaps), "--prompts", str(prompts), "--output", str(out)]) == 2
    assert "frame 3 is not in the frame folder" in capsys.readouterr().err

    def refused(args: list[str], says: str, where: Path = out) -> None:
        before = {str(p): p.read_bytes() for p in where.rglob("*") if p.is_file()}
        assert run_cli(cli.main, [*model, *args, "--output", str(where)]) == 2, args
        assert says in capsys.readouterr().err, args
        assert {str(p): p.read_bytes() for p in where.rglob("*") if p.is_file()} == before, args

    video = ["--video", str(frames_dir)]
    (out / "masks" / "3" / "edited.png").write_bytes(b"the user's")  # beside the recorded masks
    refused([*video, "--box", "10,10,90,90"], "edited.png is in the way")
    (out / "masks" / "3" / "edited.png").unlink()
    mine = tmp_path / "mine"
    (mine / "masks").mkdir(parents=True)
    (mine / "masks" / "hand.png").write_bytes(b"hand-made")
    (mine / "track.json").write_text('{"frames": 1}')  # any file named track.json is not a record
    refused([*video, "--box", "10,10,90,90"], "is not the record of a `track` run", mine)
    (mine / "track.json").unlink()
    refused([*video, "--box", "10,10,90,90"], "hand.png is in the way", mine)
    mask_prompt = out / "masks" / "3" / "00000.png"
    prompts.write_text(json.dumps([{"frame": 0, "obj_id": 1, "mask": str(mask_prompt)}]))
    refused([*video, "--prompts", str(prompts)], "lies inside what `track` would replace")
    refused(["--video", str(out / "overlay.mp4"), "--box", "1,1,9,9"], "no such video")  # not written with --no-overlay
    for args, says in ((["--point", "600,10"], "outside the 512x512 frame"),
                       (["--box", "10,10,90,90", "--box", "5,5,50,50", "--point", "20,20"], "several --box"),
                       (["--box", "10,10,90,90", "--cuda-graph"], "--cuda-graph: an option of the tensorrt backend")):
        refused([*video, *args], says)
    with pytest.raises(SystemExit) as exited:  # the image graphs' flags are not track's (the table says whose)
        cli.main([*model, *video, "--box", "10,10,90,90", "--preprocess", "missing.onnx", "--output", str(out)])
    assert exited.value.code == 2 and "unrecognized arguments: --preprocess" in capsys.readouterr().err
    prompts.write_text('[{"frame": 0, "obj_id": 1, "points": [[Infinity, 2]]}]')
    refused([*video, "--prompts", str(prompts)], "finite")
    two = tmp_path / "two"
    assert run_cli(cli.main, [*model, *video, "--box", "10,10,200,200", "--box", "250,250,500,500",
                              "--output", str(two)]) == 0
    assert sorted(p.name for p in (two / "masks").iterdir()) == ["1", "2"]


def test_offline_track_decodes_each_frame_once_and_reads_no_mask_back(student_onnx, frames_dir, tmp_path,
                                                                       monkeypatch):
    """Issue 23: the overlay of an offline run drew from the mask PNGs read back and a second decode of
    every frame; now a forward run decodes each frame once and reads no PNG."""
    import nanosam2.images as images
    from nanosam2.inference import video_prompts
    from trt_runtime import tracking

    decoded: list[str] = []
    real_read = images.read_rgb
    monkeypatch.setattr(images, "read_rgb", lambda path: decoded.append(Path(path).name) or real_read(path))
    opened: list[str] = []
    real_open = tracking.Image.open
    monkeypatch.setattr(tracking.Image, "open", lambda path, *a: opened.append(str(path)) or real_open(path, *a))
    prompts = video_prompts.parse_prompts([{"frame": 0, "obj_id": 1, "box": [100, 120, 300, 330]}], tmp_path)
    with onnx_tracker(student_onnx) as predictor:
        result = tracking.track_video(predictor, str(frames_dir), prompts, tmp_path / "out", overlay=True)
    assert result.frames == FRAMES and (tmp_path / "out" / "overlay.mp4").stat().st_size > 0
    assert sorted(decoded) == sorted(f"{t:05d}.jpg" for t in range(FRAMES))
    assert not [path for path in opened if path.endswith(".png")]  # no mask read back


def test_predict_cli_prompts_follow_the_models_image_size(student_onnx, frames_dir, tmp_path):
    """Issue 23: the predict CLI built prompts for a 1024-px model whatever the graphs said; on this
    512-px export its masks now equal ``Predictor.predict``'s."""
    from PIL import Image

    from trt_runtime import cli
    from nanosam2.inference.factory import BackendOptions, load_predictor

    image = sorted(frames_dir.iterdir())[0]
    out = tmp_path / "out"
    assert run_cli(cli.main, ["predict", "--encoder", str(student_onnx[C.ENCODER]), "--decoder",
                              str(student_onnx[C.DECODER]), "--image", str(image), "--box", "100,120,300,330",
                              "--output", str(out)]) == 0
    with load_predictor(student_onnx[C.ENCODER], student_onnx[C.DECODER]) as predictor:
        assert predictor.contract.image_size == SIZE
        from nanosam2.images import read_rgb

        predictor.set_image(read_rgb(image))
        masks, _, _ = predictor.predict(boxes=np.array([100, 120, 300, 330], np.float32), multimask_output=False)
    assert (np.asarray(Image.open(out / "mask_0_0.png")) > 0).tolist() == masks[0].astype(bool).tolist()
    assert BackendOptions(cuda_graph=True, trt_flavour="rtx").for_backend("tensorrt") == {}  # the stream carries them


OPEN_GOP = {"x264-params": "open-gop=1:keyint=7:min-keyint=7:scenecut=0:bframes=3:b-pyramid=0"}  # leading B-frames


@pytest.mark.parametrize("codec, suffix, options", [("mpeg4", "mp4", None), ("libx264", "mkv", OPEN_GOP),
                                                   ("libx264", "h264", None)])
def test_video_file_frames_by_index(tmp_path, codec, suffix, options):
    """Frames of a video file read in any order (backwards, shuffled) are exactly the frames a
    sequential decode gives: keyframe seeks, B-frame reordering, open GOPs, and a raw H.264 stream
    without timestamps (numbered by decoding order); the cache stays within its bytes."""
    from nanosam2.samples import write_video_file
    from nanosam2.inference.frames import VideoFile, read_video

    path = write_video_file(tmp_path / f"clip.{suffix}", make_frames(30, 48, 64), codec, gop=7, b_frames=3,
                            options=options)
    expected = list(read_video(path))
    frame_bytes = expected[0].nbytes
    video = VideoFile(path, cache_bytes=4 * frame_bytes)
    assert len(video) == len(expected) == 30 and video.timed == (suffix != "h264")
    order = list(range(30))[::-1] + [int(i) for i in np.random.default_rng(0).permutation(30)] + list(range(30))
    for index in order:
        assert np.array_equal(video[index], expected[index]), index
        assert len(video.cache) <= 4
    with pytest.raises(IndexError):
        video[30]
    video.close()


def test_video_file_bad_inputs(tmp_path):
    from nanosam2.inference.frames import Frames, VideoFile

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(NanoSam2Error, match="cannot open the video"):
        VideoFile(junk)
    with pytest.raises(NanoSam2Error, match="no such video"):
        Frames(tmp_path / "missing.mp4")


def test_tracker_reads_a_video_file_as_its_decoded_frames(student_onnx, tmp_path):
    """A video file tracks exactly as the list of its decoded frames (offline, with a prompt on a
    later frame so that tracking also runs backwards through the file)."""
    from nanosam2.samples import write_video_file
    from nanosam2.inference.frames import read_video

    path = write_video_file(tmp_path / "clip.mp4", make_frames(FRAMES, SIZE // 2, SIZE // 2))
    results = []
    for source in (str(path), list(read_video(path))):
        with onnx_tracker(student_onnx) as predictor:
            state = predictor.init_state(source)
            predictor.add_new_points_or_box(state, 2, 1, box=[20, 40, 110, 110])
            masks = {(reverse, f): m for reverse in (False, True)
                     for f, _, m in predictor.propagate_in_video(state, 2, reverse=reverse)}
            state.frames.close()
        results.append(masks)
    assert results[0].keys() == results[1].keys() and len(results[0]) == FRAMES + 1
    assert all(np.array_equal(results[0][k], results[1][k]) for k in results[0])


def test_track_cli_streams_a_video_file(student_onnx, tmp_path):
    """--stream: one pass over the file, a prompt acting from its frame on; masks for every frame
    after an object's prompt, the overlay, and a record saying how it ran."""
    import av

    from nanosam2.samples import write_video_file

    path = write_video_file(tmp_path / "clip.mp4", make_frames(FRAMES, SIZE // 2, SIZE // 2))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"frame": 0, "obj_id": 1, "points": [[60, 60]], "labels": [1]},
                                   {"frame": 2, "obj_id": 2, "box": [150, 150, 220, 220]}]))
    out = tmp_path / "out"
    model_dir = str(student_onnx[C.ENCODER].parent)
    result = track("--model-dir", model_dir, "--video", str(path), "--prompts", str(prompts), "--stream",
                   "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert [f.name for f in sorted((out / "masks" / "1").iterdir())] == [f"{t:05d}.png" for t in range(FRAMES)]
    assert [f.name for f in sorted((out / "masks" / "2").iterdir())] == [f"{t:05d}.png" for t in range(2, FRAMES)]
    with av.open(str(out / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    record = json.loads((out / "track.json").read_text())
    assert record["mode"] == "stream" and record["frames"] == FRAMES
    for args, message in ((["--stream", "--max-frames", "2"], "past the end"), (["--max-frames", "3"], "goes with --stream")):
        bad = track("--model-dir", model_dir, "--video", str(path), "--prompts", str(prompts), *args,
                    "--output", str(tmp_path / "bad"))
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_camera_runs_until_ctrl_c_or_max_frames(student_onnx, tmp_path, monkeypatch):
    """camera:N streams /dev/videoN (PyAV's v4l2 reader, replaced here by synthetic frames): Ctrl-C
    ends the run and what was tracked is published; --max-frames stops it; a bad name is one error."""
    from nanosam2.inference import video_prompts
    from trt_runtime import tracking

    frames = make_frames(5, 96, 128)
    opened = []

    def camera(path):
        opened.append(path)
        yield from frames[:3]
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "read_video", camera)
    prompts = video_prompts.parse_prompts([{"frame": 0, "obj_id": 1, "box": [10, 20, 50, 60]}], tmp_path)
    with onnx_tracker(student_onnx) as predictor:
        result = tracking.track_video(predictor, "camera:3", prompts, tmp_path / "ctrl-c", overlay=False)
        assert opened == ["/dev/video3"] and result.frames == 3 and result.record["mode"] == "stream"
        assert len(list((tmp_path / "ctrl-c" / "masks" / "1").iterdir())) == 3
        result = tracking.track_video(predictor, "camera:0", prompts, tmp_path / "two", overlay=False, max_frames=2)
        assert result.frames == 2 and len(list((tmp_path / "two" / "masks" / "1").iterdir())) == 2
        with pytest.raises(NanoSam2Error, match="camera:N"):
            tracking.track_video(predictor, "camera:front", prompts, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # the staging folder, and the folder made for it, are gone


def test_tracking_benchmark_times_each_stage_ours_and_metas(student, student_onnx, tmp_path, capsys):
    """benchmarks/tracking.py on the 512-px student: the stage split of our tracker and of Meta's
    predictor (forward hooks), the tables, and the memory-length trade-off (full memory vs one frame)."""
    from benchmarks import tracking
    from benchmarks.report import Report, track_stage
    from benchmarks.cases import Settings
    from benchmarks.run_all import main as run_all_main, tracking_summary
    from nanosam2.utils.cli import run_cli

    settings = Settings(1, 1, 0, tmp_path, everything_points=0, track_frames=tracking.MIN_TRACK_FRAMES,
                        track_objects=(2,), track_size=(SIZE // 2, SIZE // 2))
    report = Report({"host": "test", "date": "2026-11-25T00:00:00", "cpu": "stub"})
    tracking.tracking_cases(report, "resnet18", {("onnxruntime-cpu", "fp32"): lambda: onnx_tracker(student_onnx)},
                            settings)
    folder = tracking.write_video(tmp_path, settings.track_frames, settings.track_size)
    first = tracking.first_timed_frame(settings.track_frames)
    assert first == tracking.MIN_TRACK_FRAMES - 2 == 7  # full spatial memory: the prompt + 6 recent frames
    meta = tracking.track_meta(student, folder, tracking.track_prompts(2, settings.track_size), first)
    tracking.record(report, ("resnet18", "meta-sam2-eager", "fp32"), 2, meta)
    for config in (("resnet18", "onnxruntime-cpu", "fp32"), ("resnet18", "meta-sam2-eager", "fp32")):
        frame = report.get(config, track_stage(2, "frame"))
        stages = [report.get(config, track_stage(2, s)) for s in tracking.STAGES]
        assert frame.runs == 2 and all(s.runs == 2 and s.median_ms > 0 for s in stages)
        assert sum(s.median_ms for s in stages) <= frame.median_ms * 1.05
    assert "| resnet18 | meta-sam2-eager | fp32 | 2 |" in report.tracking_table()
    assert len(tracking_summary(report)) == 2

    from benchmarks.vos import vos_jf
    from nanosam2.samples import write_vos_dataset

    settings.vos_dataset = write_vos_dataset(tmp_path / "vos", 1, 3, 128, 128)  # J&F per memory length on it
    tracking.memory_tradeoff(report, "resnet18", lambda recent: onnx_tracker(
        student_onnx, without_hole_filling().replace(memory_frames=recent)),
                             settings, memory_frames=(6, 0))
    full, one = report.extra["memory_tradeoff"]
    assert all(0 <= row["jf"] <= 100 and abs(row["jf"] - (row["j"] + row["f"]) / 2) <= 0.01 for row in (full, one))
    assert (settings.work_dir / "vos-memory-0" / "shapes-0" / "00002.png").is_file()
    import shutil

    shutil.copytree(settings.vos_dataset / "Annotations", tmp_path / "vos-results" / "resnet18.onnxruntime-cpu.fp32")
    report.extra["vos_jf"] = vos_jf(settings.vos_dataset / "Annotations", tmp_path / "vos-results")
    assert report.extra["vos_jf"] == {"resnet18/onnxruntime-cpu/fp32": 100.0}  # the truth scores 100
    assert (full["spatial_memories"], one["spatial_memories"]) == (7, 1)
    assert full["mean_iou_vs_full"] == full["min_iou_vs_full"] == 1.0 and 0 <= one["min_iou_vs_full"] <= 1
    assert 0 < full["full_mask_fraction"] < 0.9  # real masks (trained-magnitude logits), not empty or full ones
    assert "| resnet18/onnxruntime-cpu/fp32 | 1 |" in report.tradeoff_table() and "J&F | J | F |" in report.tradeoff_table()
    paths = report.write(tmp_path / "out", "stub")
    assert paths["accuracy_plot"].stat().st_size > 0  # J&F against tracking FPS
    assert paths["tracking_plot"].stat().st_size > 0 and "Video tracking" in paths["table"].read_text()
    assert run_cli(run_all_main, ["--track-frames", "5", "--output-dir", str(tmp_path / "bad")]) != 0
    assert "--track-frames must be 0 or at least 9" in capsys.readouterr().err
    assert run_cli(run_all_main, ["--vos-results", str(tmp_path), "--output-dir", str(tmp_path / "bad")]) != 0
    assert "--vos-results and --vos-gt go together" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["10.3.0", "11.4.1"])
def test_fake_tensorrt_runs_the_memory_graphs(student_onnx, tmp_path, monkeypatch, version):
    """Engines of the memory graphs with the default profile (memory length 1..16, pointers 0..16),
    run by the TensorRT runner on banks of several lengths: same answers as ONNX Runtime."""
    import torch

    from engines import build_engine
    from engines.plan import BuildRequest, read_onnx_info, resolve_profile
    from export.examples import graph_inputs
    from nanosam2.utils import cuda_api
    from nanosam2.utils.cli import run_cli
    from tests.fake_tensorrt import FakeCudart, FakeTensorRT, make_builder_module
    from nanosam2.inference.factory import open_runner
    from nanosam2.inference import engine_stream, tensorrt_runner

    profile = resolve_profile(read_onnx_info(student_onnx[C.MEMORY_ATTENTION]), BuildRequest())
    assert profile[C.MASKMEM_FEATURES][0][0] == 1 and profile[C.MASKMEM_FEATURES][2][0] == 16 + 6  # 16 prompted frames
    assert profile[C.OBJECT_POINTERS] == ((0, 256), (16, 256), (16 + 15, 256))
    encoder_profile = resolve_profile(read_onnx_info(student_onnx[C.MEMORY_ENCODER]), BuildRequest())
    assert encoder_profile[C.MASK_LOGITS] == ((1, 1, SIZE // 4, SIZE // 4), (1, 1, SIZE // 4, SIZE // 4), (1, 1, SIZE, SIZE))

    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, version)
    make_builder_module(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_api, "open_cuda", lambda prefer=None: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(tensorrt_runner, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    monkeypatch.setattr(engine_stream, "open_cuda", lambda: cuda_api.CudaRuntime(cudart))
    engine = tmp_path / "memory_attention.engine"
    assert run_cli(build_engine.main, [f"--onnx={student_onnx[C.MEMORY_ATTENTION]}", f"--saveEngine={engine}"]) == 0
    embed = torch.randn(1, 256, SIZE // 16, SIZE // 16)
    with open_runner(engine) as trt_runner, open_runner(student_onnx[C.MEMORY_ATTENTION]) as ort_runner:
        assert trt_runner.contract.graph == C.MEMORY_ATTENTION
        for memories, pointers in ((1, 0), (7, 16)):
            feed = {n: a.numpy() for n, a in zip(C.MEMORY_ATTENTION_INPUTS, graph_inputs(
                C.MEMORY_ATTENTION, _model_stub(), (embed,), memories=memories, pointers=pointers))}
            got, want = trt_runner.infer(feed), ort_runner.infer(feed)
            assert np.allclose(got[C.CONDITIONED_IMAGE_EMBED], want[C.CONDITIONED_IMAGE_EMBED], atol=1e-5)


def _model_stub():
    class Shapes:  # what the memory-attention example maker reads of a model
        num_maskmem, mem_dim, hidden_dim, image_size = 7, 64, 256, SIZE

    return Shapes()


def fake_engines(student_onnx, tmp_path, monkeypatch):
    """Engines of the tracker's four graphs, built and run by the fake TensorRT on the fake CUDA layer."""
    from engines import build_engine
    from nanosam2.inference import engine_stream, tensorrt_runner
    from nanosam2.utils import cuda_api
    from tests.fake_tensorrt import FakeCudart, FakeTensorRT, make_builder_module

    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, "10.3.0")
    make_builder_module(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for module in (cuda_api, tensorrt_runner, engine_stream):
        monkeypatch.setattr(module, "open_cuda", lambda prefer=None: cuda_api.CudaRuntime(cudart))
    engines = {}
    for graph in GRAPHS:
        engines[graph] = tmp_path / f"{graph}.engine"
        assert run_cli(build_engine.main, [f"--onnx={student_onnx[graph]}", f"--saveEngine={engines[graph]}"]) == 0
    return engines, cudart


def tracker_bus_bytes(student_onnx, tmp_path, monkeypatch) -> tuple[dict[str, int], dict[str, int]]:
    """One object clicked on frame 0 and tracked on fake engines: the host<->device bytes of the last
    tracked frame (a full pointer list is not needed: the bank's size is in the formula), and that
    frame's bank sizes."""
    from nanosam2.inference.factory import load_video_predictor

    engines, cudart = fake_engines(student_onnx, tmp_path, monkeypatch)
    frames = write_jpeg_folder(tmp_path / "frames", 3, SIZE, SIZE)
    with load_video_predictor(engines) as predictor:
        state = predictor.init_state(str(frames))
        predictor.add_new_points_or_box(state, 0, 1, points=[[SIZE * 0.3, SIZE * 0.3]], labels=[1])
        moved, bank = {}, {}
        for frame, _, _ in predictor.propagate_in_video(state):
            if frame == 1:
                cudart.transferred.update(htod=0, dtoh=0, dtod=0)
            if frame == 2:
                moved = dict(cudart.transferred)
                bank = predictor.bank.feed(state.objects[1], 2, False, state.num_frames)
    return moved, {name: value.nbytes for name, value in bank.items()}


def test_a_tracked_frame_moves_pixels_bank_and_answers_not_features(student_onnx, tmp_path, monkeypatch):
    """Per tracked frame and object, what crosses the bus (the fake CUDA layer counts it): up, the frame,
    the prompts and the bank's pointer list; down, the decoder's answers. The encoder's features, the
    conditioned embedding, the memory encoder's outputs and the spatial memories stay on the device: the
    new memory is copied device to device into the object's ring, which the memory attention reads in place."""
    moved, bank = tracker_bus_bytes(student_onnx, tmp_path, monkeypatch)
    low, side = SIZE // 4, SIZE // 16
    frame = 3 * SIZE * SIZE * 4  # the preprocessed float frame (the tracker preprocesses on the host)
    prompts = 2 * 2 * 4 + 2 * 4 + 4  # two padding points, their labels, has_mask_input
    memory_in = low * low * 4 + 4 + 4  # the low-res mask, binarize, object score
    pointers = sum(size for name, size in bank.items() if name != C.MASKMEM_FEATURES)  # + the memories' slots
    assert moved["htod"] == frame + pointers + prompts + memory_in, (moved, bank)
    decoder_out = 4 * low * low * 4 + 4 * 4 + 4 + 4 * 256 * 4
    assert moved["dtoh"] == decoder_out, moved
    assert moved["dtod"] == 64 * side * side * 4, moved  # the new memory into its row; the bank is read in place
    features = (256 * side * side + 32 * (4 * side) ** 2 + 64 * (2 * side) ** 2) * 4
    print(f"bus bytes of one tracked frame at {SIZE} px: {moved}; the encoder's features alone: {features}")


def test_track_replays_cuda_graphs_with_the_same_masks(student_onnx, tmp_path, monkeypatch):
    """``--cuda-graph`` for tracking: the bank is read where it lies (one address per object) and the
    decoder's zero mask is uploaded once, so the launches between two synchronisations are replayed
    from CUDA graphs once their shapes repeat (the memory encoder from the second tracked frame on);
    the masks equal those of plain launches to the bit."""
    from nanosam2.inference.factory import BackendOptions, load_video_predictor

    engines, cudart = fake_engines(student_onnx, tmp_path, monkeypatch)
    frames = make_frames(4, SIZE, SIZE)
    prompts = {0: [{"obj_id": 1, "box": [SIZE * 0.2, SIZE * 0.2, SIZE * 0.5, SIZE * 0.5]}]}
    results = {}
    for graphs in (False, True):
        launches = cudart.graph_launches
        with load_video_predictor(engines, BackendOptions(cuda_graph=graphs)) as predictor:
            results[graphs] = [masks for _, _, masks in predictor.track_stream(iter(frames), prompts)]
        assert (cudart.graph_launches - launches > 0) == graphs
    assert all(np.array_equal(a, b) for a, b in zip(results[False], results[True]))
    assert (results[True][-1] > 0).sum() > 50  # a real mask, not an empty one


@pytest.mark.gpu
def test_the_bank_on_a_cuda_device_tracks_as_on_the_cpu(frames_dir):
    """On a GPU (gpu_check): the rounding in CUDA kernels is torch's cast to the bit, and a PyTorch tracker
    whose rings live in GPU memory gives the CPU tracker's masks."""
    import copy

    import torch

    from nanosam2.inference.torch_runner import TorchRunner
    from nanosam2.inference.video import VideoPredictor
    from nanosam2.modeling.video_graphs import round_to_bfloat16

    values = torch.randn(1 << 20, device="cuda") * 100
    assert torch.equal(round_to_bfloat16(values), values.to(torch.bfloat16).float())
    model = video_model("resnet18")
    masks = {}
    for device in ("cpu", "cuda"):
        tracker = VideoPredictor(*(TorchRunner(graph=g, model=copy.deepcopy(model).to(device), device=device)
                                   for g in GRAPHS))
        state = tracker.init_state(str(frames_dir))
        tracker.add_new_points_or_box(state, 0, 1, box=[SIZE * 0.2, SIZE * 0.2, SIZE * 0.6, SIZE * 0.6])
        masks[device] = [m for _, _, m in tracker.propagate_in_video(state)]
        assert state.objects[1].ring.buffer.device.startswith(device)
    assert min(min(mask_ious(a, b)) for a, b in zip(masks["cpu"], masks["cuda"])) >= 0.99
