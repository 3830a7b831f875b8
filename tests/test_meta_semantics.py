"""Meta's semantics exactly, device memory that is safe (issue 31): each defect found on the earlier main has
its test here (or beside the code it concerns: the chunked logits in test_pipeline_graphs, the oracle run
of Meta's own ``tools/vos_inference.py`` in test_vos_oracle)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from nanosam2 import contract as C
from nanosam2.inference.tracker_config import VIDEO_PREDICTOR, VOS_INFERENCE, select_closest_cond_frames, \
    vos_inference_config
from nanosam2.samples import make_frames
from tests.test_video import GRAPHS, SIZE, fake_engines, stub_tracker, without_hole_filling


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    """test_video's resnet18 export at 512 px (made once per session for both files)."""
    from export.exporter import export_model
    from tests.conftest import export_once
    from tests.test_video import video_model

    return export_once(tmp_path_factory, "onnx-video-512",
                       lambda folder: export_model(video_model("resnet18"), "resnet18", folder))


# ---------------------------------------------------------------- the bank and the engines' profiles
def test_closest_conditioning_frames_are_metas():
    """Our selection against Meta's ``select_closest_cond_frames`` on random prompted frames and caps."""
    from sam2.modeling.sam2_utils import select_closest_cond_frames as metas

    rng = np.random.default_rng(0)
    for _ in range(300):
        frames = [int(t) for t in rng.choice(60, size=int(rng.integers(1, 12)), replace=False)]
        cond = {t: f"out{t}" for t in frames}
        frame_idx, cap = int(rng.integers(0, 60)), int(rng.choice([-1, 2, 3, 5, 8]))
        ours = select_closest_cond_frames(frame_idx, cond, cap)
        theirs = metas(frame_idx, cond, cap)
        assert ours[0] == theirs[0] and ours[1] == theirs[1], (frame_idx, cap, frames)
    assert select_closest_cond_frames(10, {2: "a", 12: "b", 30: "c"}, 1)[0] == {12: "b"}  # a cap of 1: the closest


def test_a_second_prompted_frame_never_outgrows_an_engine_profile(caplog):
    """An object prompted on frames 0 and 3 feeds 2 prompted pointers + 15 recent ones from frame 19 on: an
    engine built with the earlier default profile (16 memories, 16 pointers) failed there ("object_pointers of
    shape (17, 256) is outside the engine's profile"). The tracker reads the profile at open and keeps the
    closest prompted frame(s) (Meta's max_cond_frames_in_attn), said once; with today's default profile (22
    memories, 31 pointers) 16 prompted frames fit (ONNX Runtime: no profile, no cap, as Meta)."""
    frames = [np.zeros((64, 64, 3), np.uint8)] * 26
    prompts = {0: [{"obj_id": 1, "points": [[5, 5]], "labels": [1]}], 3: [{"obj_id": 1, "points": [[9, 9]], "labels": [1]}]}
    old_profile = {C.MASKMEM_FEATURES: 16, C.OBJECT_POINTERS: 16}
    with caplog.at_level("WARNING"):
        predictor = stub_tracker(limits=old_profile)
    assert predictor.config.max_cond_frames_in_attn == 1
    assert sum("at most 1 prompted frame(s) per object" in r.getMessage() for r in caplog.records) == 1
    assert len(list(predictor.track_stream(iter(frames), prompts))) == 26  # raised at frame 19 before

    default = {C.MASKMEM_FEATURES: C.EXPORT_MAX_MEMORIES, C.OBJECT_POINTERS: C.EXPORT_MAX_POINTERS}
    predictor = stub_tracker(limits=default)
    assert predictor.config.max_cond_frames_in_attn == C.MAX_PROMPTED_FRAMES  # Meta's -1 (all) up to the limit
    assert stub_tracker().config.max_cond_frames_in_attn == -1 == VIDEO_PREDICTOR.max_cond_frames_in_attn  # no profile
    many = {t: [{"obj_id": 1, "points": [[5, 5]], "labels": [1]}] for t in range(C.MAX_PROMPTED_FRAMES)}
    assert len(list(predictor.track_stream(iter(frames), many))) == 26
    with pytest.raises(Exception, match="fewer than one prompted frame"):
        stub_tracker(limits={C.MASKMEM_FEATURES: 6, C.OBJECT_POINTERS: 16})


def test_streaming_scales_pointer_offsets_by_the_clip_length():
    """Meta divides a pointer's frame distance by min(num_frames, 16) - 1: a 6-frame clip read as a stream
    (eval-vos) gets fifths, as the whole-video API does; a camera (length unknown) gets fifteenths."""
    offsets: dict = {}

    def last_offsets(num_frames):
        banks: list = []
        predictor = stub_tracker(banks=banks)
        seen = []
        original = predictor.memory_attention.infer_impl

        def spy(feed, copy_outputs_to_host=True):
            seen.append(np.array(feed[C.OBJECT_POINTER_OFFSETS]))
            return original(feed, copy_outputs_to_host)

        predictor.memory_attention.infer_impl = spy
        frames = [np.zeros((64, 64, 3), np.uint8)] * 6
        list(predictor.track_stream(iter(frames), {0: [{"obj_id": 1, "points": [[5, 5]], "labels": [1]}]},
                                    num_frames=num_frames))
        return seen[-1]

    offsets["clip"], offsets["camera"] = last_offsets(6), last_offsets(None)
    assert np.allclose(sorted(offsets["clip"]), [k / 5 for k in range(1, 6)])  # frame 5: frames 4..0
    assert np.allclose(sorted(offsets["camera"]), [k / 15 for k in range(1, 6)])


# ---------------------------------------------------------------- device memory
def test_a_grown_ring_never_frees_another_objects_bank(student_onnx, tmp_path, monkeypatch):
    """Whole-video API on fake engines whose CUDA hands freed addresses out again (most recent first) and
    poisons freed memory: object 1's ring grows (8 -> 16 rows) and frees its first buffer; object 2's ring
    gets that address. Removing object 1 and collecting its ring must leave object 2's bank alone (a
    finalizer freeing by address freed it) and object 2 must track as if object 1 had never been there."""
    from nanosam2.inference.factory import load_video_predictor

    engines, cudart = fake_engines(student_onnx, tmp_path, monkeypatch)
    frames = make_frames(12, SIZE, SIZE)
    box = [SIZE * 0.2, SIZE * 0.2, SIZE * 0.6, SIZE * 0.6]
    config = without_hole_filling()
    with load_video_predictor(engines, config=config) as predictor:
        state = predictor.init_state(frames)
        predictor.add_new_points_or_box(state, 0, 1, box=box)
        for _ in predictor.propagate_in_video(state, max_frame_num_to_track=9):
            pass
        ring = state.objects[1].ring
        assert ring.capacity == 16  # grown: its first buffer was freed
        reused = cudart._reused
        predictor.add_new_points_or_box(state, 10, 2, box=box)
        list(predictor.propagate_in_video(state, start_frame_idx=10, max_frame_num_to_track=0))  # encodes 2's memory
        assert cudart._reused > reused  # object 2's ring sits where object 1's first buffer was
        predictor.remove_object(state, 1)
        del ring
        gc.collect()
        assert state.objects[2].ring.buffer.data in cudart.buffers  # still allocated
        ours = [m for _, _, m in predictor.propagate_in_video(state, start_frame_idx=10)]
    with load_video_predictor(engines, config=config) as predictor:
        state = predictor.init_state(frames)
        predictor.add_new_points_or_box(state, 10, 2, box=box)
        alone = [m for _, _, m in predictor.propagate_in_video(state, start_frame_idx=10)]
    assert all(np.isfinite(m).all() for m in ours) and (ours[-1] > 0).sum() > 50
    assert all(np.array_equal(a, b) for a, b in zip(ours, alone))


def test_device_buffers_free_once_by_handle():
    from nanosam2.errors import NanoSam2Error
    from nanosam2.inference.tensorrt_runner import TensorRTRunner
    from nanosam2.utils.cuda_api import CudaRuntime
    from tests.fake_tensorrt import FakeCudart

    class Runner(TensorRTRunner):  # just the buffer calls, on the honest fake allocator
        def __init__(self, cuda):
            self.cuda, self._buffers, self.slots, self.backend, self.stream = cuda, set(), {}, "tensorrt", cuda.stream()

            class Stream:
                def flush(self):
                    pass

            self.engine_stream = Stream()

        def input_dtype(self, name):
            return np.dtype(np.float32)

    cudart = FakeCudart()
    runner = Runner(CudaRuntime(cudart))
    first = runner.new_buffer(C.MASKMEM_FEATURES, (2, 4))
    address = first.data
    runner.write_rows(first, 0, np.ones((2, 4), np.float32))
    first.free()
    second = runner.new_buffer(C.MASKMEM_FEATURES, (2, 4))
    assert second.data == address  # CUDA's allocator hands the freed address out again
    assert np.isnan(second.to_host()).all()  # what the freed memory held: poison
    first.free()  # a second free of the first handle frees nothing, whatever lives at its address now
    assert second.data in cudart.buffers
    with pytest.raises(NanoSam2Error, match="used after it was freed"):
        runner.rows(first, 0, 1)
    assert cudart.cudaFree(12345)[0] == cudart.cudaError_t.cudaErrorInvalidValue  # a pointer CUDA never gave


# ---------------------------------------------------------------- frames, presets, SA-V's object 000
def test_video_frames_are_prepared_as_metas_video_loader(tmp_path):
    """854x480 JPEG frames (DAVIS 480p) through Meta's ``load_video_frames`` and ours: equal to the bit (the
    image path's antialiased bilinear resize gave other features, and other masks)."""
    import torch
    from sam2.utils.misc import load_video_frames

    from nanosam2 import transforms as T
    from nanosam2.inference.frames import Frames
    from tests.vos_synthetic import write_crossing_set

    root = write_crossing_set(tmp_path, 1, 2, 480, 854)
    folder = root / "JPEGImages" / "cross-0"
    theirs, height, width = load_video_frames(str(folder), 256, offload_video_to_cpu=True,
                                              compute_device=torch.device("cpu"))
    frames = Frames(folder)
    assert (height, width) == (frames.height, frames.width) == (480, 854)
    for index in range(2):
        ours = T.preprocess_video_frame(frames[index], 256)
        assert np.array_equal(ours[0], theirs[index].numpy())
    assert not np.allclose(T.preprocess_image(frames[0], 256), ours, atol=1e-3)  # the image path resizes otherwise


def test_the_presets_are_metas_builders():
    """The presets' knobs against what Meta's builders configure (the model's own config for the sigmoid)."""
    import sam2.build_sam as build_sam
    from hydra import compose
    from omegaconf import OmegaConf

    def meta(apply_postprocessing: bool, per_obj_png_file: bool | None = None) -> dict:
        captured = {}
        extra = [] if per_obj_png_file is None else ["++model.non_overlap_masks=" + str(not per_obj_png_file).lower()]

        def instantiate(cfg, _recursive_=True):
            captured.update(OmegaConf.to_container(cfg, resolve=True))
            raise StopIteration

        original = build_sam.instantiate
        build_sam.instantiate = instantiate
        try:
            build_sam.build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                                                 apply_postprocessing=apply_postprocessing, hydra_overrides_extra=extra)
        except StopIteration:
            pass
        finally:
            build_sam.instantiate = original
        return captured

    assert compose is not None
    for config, model in ((VIDEO_PREDICTOR, meta(True)), (VOS_INFERENCE, meta(False, False)),
                          (vos_inference_config(True), meta(False, True))):
        decoder = model.get("sam_mask_decoder_extra_args") or {}
        assert config.binarize_mask_from_pts_for_mem_enc == bool(model.get("binarize_mask_from_pts_for_mem_enc", False))
        assert config.fill_hole_area == int(model.get("fill_hole_area", 0))
        assert config.non_overlap_masks == bool(model.get("non_overlap_masks", False))
        assert config.dynamic_multimask_via_stability == bool(decoder.get("dynamic_multimask_via_stability", False))
        assert config.max_cond_frames_in_attn == int(model.get("max_cond_frames_in_attn", -1))
        assert (config.sigmoid_scale_for_mem_enc, config.sigmoid_bias_for_mem_enc) == \
            (model["sigmoid_scale_for_mem_enc"], model["sigmoid_bias_for_mem_enc"])


def test_sav_object_000_is_an_object(tmp_path, capsys):
    """SA-V numbers object folders from 000: object 000 is read as an object (it was taken for a palette PNG
    and merged into object 1), written as Meta writes it (0/1, not all zeros) and scored (3 of 3 objects)."""
    from nanosam2.evaluation.vos_data import open_dataset, read_mask_png
    from nanosam2.evaluation.vos_eval import evaluate_vos, plan_vos
    from nanosam2.evaluation.vos_metrics import score
    from tests.vos_synthetic import crossing_objects, write_crossing_set

    root = write_crossing_set(tmp_path / "sav", 1, 6, 48, 80, per_object=True, every=2)
    sequence = open_dataset(root / "JPEGImages", root / "Annotations")[0]
    assert sequence.objects == [0, 1, 2]
    masks, _ = sequence.read(0, (48, 80))
    truth = crossing_objects(48, 80, 0, 6)
    assert sorted(masks) == [0, 1, 2] and all(np.array_equal(masks[k], truth[k]) for k in range(3))

    def oracle(seq, prompts):  # the truth as logits: the loop without a model
        for t, (number, _) in enumerate(seq.frames):
            yield number, {k: np.where(m, 10.0, -10.0) for k, m in enumerate(crossing_objects(48, 80, t, 6))}

    out = tmp_path / "pred"
    evaluate_vos(plan_vos(root / "JPEGImages", root / "Annotations", out), oracle, "truth", progress=False)
    written, _ = read_mask_png(out / "cross-0" / "000" / "00003.png")
    assert written.max() == 1 and np.array_equal(written > 0, crossing_objects(48, 80, 3, 6)[0])
    scores = score(root / "Annotations", out)
    assert {obj for _, obj in scores.j} == {0, 1, 2} and scores.global_jf == 100.0


def test_graph_table_default_profiles_take_the_documented_bank():
    from engines.plan import BuildRequest, read_onnx_info, resolve_profile  # noqa: F401  (the planner reads the table)

    assert C.MEMORIES.profile[2] == C.EXPORT_MAX_MEMORIES == C.MAX_PROMPTED_FRAMES + 6
    assert C.POINTERS.profile[2] == C.EXPORT_MAX_POINTERS == C.MAX_PROMPTED_FRAMES + 15
    assert set(GRAPHS) == set(C.TRACKER_GRAPHS)


# ---------------------------------------------------------------- options that do not apply
@pytest.mark.parametrize("flags, says", [
    (["--dtype", "bf16"], "--dtype: an option of the torch backend"),
    (["--compile", "--device", "cpu"], "--compile and --device: options of the torch backend"),
    (["--trt-flavour", "rtx"], "--trt-flavour: an option of the tensorrt backend"),
    (["--runtime-cache", "cache.bin"], "--runtime-cache: an option of the tensorrt backend"),
])
def test_options_no_chosen_backend_reads_are_refused(flags, says, runtime_onnx, tmp_path, capsys):
    """They were accepted and ignored (exit 0, no cache written, the record silent)."""
    from trt_runtime.cli import main
    from nanosam2.utils.cli import run_cli

    args = ["predict", "--encoder", str(runtime_onnx[C.ENCODER]), "--decoder", str(runtime_onnx[C.DECODER]),
            "--image", "nanosam2/assets/grace_hopper.jpg", "--point", "100,100", "--output", str(tmp_path / "o")]
    assert run_cli(main, [*args, *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache.bin").exists()


def test_the_provider_that_runs_is_the_one_asked_for_or_refused(runtime_onnx, monkeypatch):
    """ONNX Runtime's CUDA provider falls back to the CPU when its libraries do not load, while the record
    said cuda: now refused in one line, and the identity records the provider that runs."""
    import onnxruntime as ort

    from nanosam2.errors import NanoSam2Error
    from nanosam2.inference.onnxruntime_runner import OnnxRuntimeRunner

    real = ort.InferenceSession

    def falling_back(path, options=None, providers=None):  # what onnxruntime-gpu does without its CUDA libraries
        return real(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", falling_back)
    with pytest.raises(NanoSam2Error, match="runs it on CPUExecutionProvider, not on the CUDAExecutionProvider"):
        OnnxRuntimeRunner(runtime_onnx[C.DECODER], provider="cuda")
    with OnnxRuntimeRunner(runtime_onnx[C.DECODER]) as runner:
        assert runner.identity()["provider"] == "CPUExecutionProvider"


def test_pytorch_records_the_precision_each_graph_runs_at(runtime_model):
    from nanosam2.inference.torch_runner import TorchRunner

    precisions = {g: TorchRunner(graph=g, model=runtime_model, device="cpu", dtype="bf16").identity()["precision"]
                  for g in (C.ENCODER, C.DECODER, C.MEMORY_ATTENTION, C.MEMORY_ENCODER)}
    assert precisions == {C.ENCODER: "bf16", C.DECODER: "bf16", C.MEMORY_ATTENTION: "fp32", C.MEMORY_ENCODER: "fp32"}


# ---------------------------------------------------------------- CUDA graphs with many objects
def test_nine_objects_replay_their_cuda_graphs_without_recapture():
    """Each object's bank has its own address, part of what a captured graph replays: a tracked frame of N
    objects is about 2N + 1 launch sequences. The cache held 8, so from ~4 objects on every frame recaptured
    (18 captures a frame with 9: slower than no graphs). The tracker now reserves room for its objects."""
    from nanosam2.inference.engine_stream import EngineStream
    from nanosam2.inference.video import GRAPHS_PER_FRAME, GRAPHS_PER_OBJECT
    from nanosam2.utils.cuda_api import CudaRuntime
    from tests.fake_tensorrt import FakeCudart

    class Engine:  # what the stream needs of an engine's runner
        def __init__(self, name):
            self.name, self.bound = name, 0

        def launch(self, check=True):
            return True

        def launch_key(self):
            return (self.name, self.bound)

    def captures_in_the_steady_state(reserve: bool) -> int:
        stream = EngineStream(CudaRuntime(FakeCudart()), cuda_graph=True)
        encoder, attention, decoder, memory = (Engine(n) for n in ("enc", "attn", "dec", "mem"))
        if reserve:
            stream.max_graphs = max(stream.max_graphs, GRAPHS_PER_OBJECT * 9 + GRAPHS_PER_FRAME)
        counts = []
        for _ in range(4):
            before = stream.captures
            stream.submit(encoder)
            for obj in range(9):
                attention.bound = memory.bound = 1000 + obj  # the object's ring
                stream.submit(attention)
                stream.submit(decoder)
                stream.flush()  # the decoder's answer comes back
                stream.submit(memory)
                stream.flush()  # the new memory is copied into the ring
            counts.append(stream.captures - before)
        return counts[-1]

    assert captures_in_the_steady_state(reserve=False) == 18
    assert captures_in_the_steady_state(reserve=True) == 0
    reserved = []
    predictor = stub_tracker()
    for runner in predictor.runners.values():
        runner.reserve_graphs = reserved.append
    frames = [np.zeros((64, 64, 3), np.uint8)] * 2
    list(predictor.track_stream(iter(frames), {0: [{"obj_id": k, "points": [[5, 5]], "labels": [1]} for k in range(9)]}))
    assert max(reserved) == GRAPHS_PER_OBJECT * 9 + GRAPHS_PER_FRAME


def test_cuda_graph_under_tensorrt_rtx_is_refused_until_a_gpu_proves_it(monkeypatch):
    from nanosam2.errors import NanoSam2Error
    from nanosam2.inference import engine_stream
    from nanosam2.utils.tensorrt_flavour import RTX, TensorRT

    monkeypatch.setattr(engine_stream, "import_tensorrt", lambda flavour, purpose: TensorRT(object(), RTX))
    with pytest.raises(NanoSam2Error, match="--cuda-graph is not offered with TensorRT-RTX"):
        engine_stream.open_engine_stream(cuda_graph=True, flavour=RTX)
