"""nanosam2 on Triton Inference Server, through PyTriton: the three models of ``protocol.py`` over one export.

``NanoSam2Models`` is the serving logic and knows nothing of Triton (tests call it directly too): it opens the
graphs once (one runner per graph, shared by the image predictor and the trackers), runs one model call at a
time (a lock: the runners keep their buffers between calls), batches the images of concurrent image requests
through the encoder, and keeps the tracking sessions (``Sessions``: bounded in number and in idle time, each
with its own state and memory bank). ``serve`` binds it to a real ``tritonserver`` with PyTriton.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from nanosam2 import contract as C
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.predictor import check_image
from nanosam2.prompts import Prompts
from trt_runtime.serving import protocol as P

logger = logging.getLogger(__name__)

ENDED_REMEMBERED = 4096  # ids of ended sessions kept to say why a late request finds none


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_sessions: int = 16
    session_timeout: float = 60.0  # s without a request, then the session is evicted
    max_batch: int = 8  # images of concurrent image requests per encoder call (1: no dynamic batching)
    batch_delay_us: int = 2000  # how long Triton holds an image request for others to join it
    max_requests: int | None = None  # stop after this many requests (tests, benchmarks)
    max_seconds: float | None = None  # stop after this long
    drain_seconds: float = 10.0  # on SIGTERM/SIGINT: new requests refused, those running get this long to finish


@dataclass
class Session:
    state: Any  # TrackingState
    tracker: Any  # the VideoPredictor of its settings
    frames: int = 0
    last_seen: float = field(default_factory=time.monotonic)


class Sessions:
    """Tracking sessions by sequence id: at most ``limit`` at once, each evicted after ``timeout`` s idle
    (its bank freed); an ended or evicted id is remembered so that a late request is told which."""

    def __init__(self, limit: int, timeout: float, release: Callable[[Session], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.timeout, self.release, self.clock = limit, timeout, release, clock
        self.live: dict[int, Session] = {}
        self.ended: OrderedDict[int, str] = OrderedDict()

    def start(self, sequence_id: int, make: Callable[[], Session]) -> Session:
        if sequence_id in self.live:
            raise NanoSam2Error(f"sequence {sequence_id} is already running: end it first, or choose another id")
        if len(self.live) >= self.limit:
            raise NanoSam2Error(f"the server holds {len(self.live)} tracking sessions, its limit (--max-sessions "
                                f"{self.limit}): end one, or wait for an idle one to time out "
                                f"({self.timeout:g} s)")
        session = make()
        self.live[sequence_id] = session
        self.ended.pop(sequence_id, None)
        return session

    def get(self, sequence_id: int) -> Session:
        session = self.live.get(sequence_id)
        if session is None:
            why = self.ended.get(sequence_id, "was never started (send SEQUENCE_START with its first frame)")
            raise NanoSam2Error(f"no tracking session {sequence_id}: it {why}")
        session.last_seen = self.clock()
        return session

    def end(self, sequence_id: int, why: str) -> None:
        session = self.live.pop(sequence_id, None)
        if session is not None:
            self.release(session)
            self.ended[sequence_id] = why
            while len(self.ended) > ENDED_REMEMBERED:
                self.ended.popitem(last=False)

    def evict_idle(self) -> list[int]:
        now = self.clock()
        idle = [sid for sid, s in self.live.items() if now - s.last_seen > self.timeout]
        for sid in idle:
            self.end(sid, f"was evicted after {self.timeout:g} s without a request")
        return idle

    def close(self) -> None:
        for sid in list(self.live):
            self.end(sid, "ended when the server stopped")


def _batch_item(request: Any, name: str, batched: bool) -> np.ndarray | None:
    """One request's input without the batch axis of a batching model (None: absent)."""
    data = request.data if hasattr(request, "data") else request
    if name not in data:
        return None
    array = np.asarray(data[name])
    if batched:
        if array.shape[0] != 1:
            raise NanoSam2Error(f"{name} has a batch of {array.shape[0]}: send one image per request")
        array = array[0]
    return array


def _requested(request: Any, spec: P.ModelSpec) -> set[str]:
    names = getattr(request, "requested_output_names", None)
    return set(names) if names else {t.name for t in spec.outputs}


def _reply(spec: P.ModelSpec, identity: str, error: str = "", **outputs: np.ndarray) -> dict[str, np.ndarray]:
    """ERROR, MODEL and the outputs computed, with a batch axis where ``spec`` batches. An empty array is left
    out (PyTriton cannot move a tensor with a zero in its shape): a client reads a missing output as empty."""
    reply = {P.ERROR: np.array([error.encode()], dtype=np.object_), P.MODEL: np.array([identity.encode()], dtype=np.object_)}
    if not error:
        reply.update({name: np.asarray(value) for name, value in outputs.items() if np.asarray(value).size})
    return {name: value[None] if spec.batching else value for name, value in reply.items()}


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, NanoSam2Error):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    logger.exception("internal error")
    return f"internal: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _array(value: Any, what: str, shape_tail: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise NanoSam2Error(f"{what} must be numbers, got {str(value)[:60]}") from None
    if shape_tail is not None and (array.ndim < 1 or array.shape[-1] != shape_tail):
        raise NanoSam2Error(f"{what} must be lists of {shape_tail} numbers, got shape {list(array.shape)}")
    return array


class NanoSam2Models:
    """The serving logic of the image, everything and track models over one export's runners."""

    def __init__(self, runners: dict[str, Any], settings: ServeSettings) -> None:
        from nanosam2.inference.predictor import Predictor

        self.runners = runners
        self.settings = settings
        self.lock = threading.RLock()
        self.image = Predictor(runners[C.ENCODER], runners[C.DECODER], runners.get(C.PREPROCESS),
                               runners.get(C.POSTPROCESS))
        self.identity = json.dumps({"graphs": self.image.identity()}, sort_keys=True)  # image and everything
        self.can_track = all(g in runners for g in C.TRACKER_GRAPHS)
        self._trackers: dict[str, Any] = {}
        self.sessions = Sessions(settings.max_sessions, settings.session_timeout, self._release)
        self.requests = 0
        self.in_flight = 0
        self._counting = threading.Lock()
        self.draining = False  # stopping: every new request is refused

    # ------------------------------------------------------------------ life
    def close(self, wait_s: float = 10.0) -> None:
        """Free the sessions and the runners; a call still running (its client is gone with the server) is waited
        for up to ``wait_s``, then left to the process's exit."""
        if not self.lock.acquire(timeout=wait_s):
            logger.warning("a request was still running %g s after the server stopped; exiting without it", wait_s)
            return
        try:
            self.sessions.close()
            for runner in self.runners.values():
                runner.close()
        finally:
            self.lock.release()

    def _release(self, session: Session) -> None:
        session.tracker.reset_state(session.state)  # every object's bank freed (device memory on a GPU)

    def reap(self) -> list[int]:
        """Evict the idle sessions (later, if a request is running: the server's loop must not wait for it)."""
        if not self.lock.acquire(blocking=False):
            return []
        try:
            evicted = self.sessions.evict_idle()
        finally:
            self.lock.release()
        for sid in evicted:
            logger.info("tracking session %d evicted after %g s idle", sid, self.settings.session_timeout)
        return evicted

    @contextmanager
    def _call(self, count: int) -> Iterator[None]:
        with self._counting:  # Triton calls the models from several threads
            self.in_flight += 1
        try:
            with self.lock:
                self.requests += count
                yield
        finally:
            with self._counting:
                self.in_flight -= 1

    def _refused(self, spec: P.ModelSpec, requests: list[Any]) -> list[dict[str, np.ndarray]] | None:
        if not self.draining:
            return None
        return [_reply(spec, self.identity, "the server is shutting down: send it to another replica") for _ in requests]

    def _each(self, spec: P.ModelSpec, requests: list[Any], handle: Callable[[Any], dict[str, np.ndarray]]
              ) -> list[dict[str, np.ndarray]]:
        """``handle`` each request in turn; an error is that request's one-line answer."""
        refused = self._refused(spec, requests)
        if refused is not None:
            return refused
        with self._call(len(requests)):
            replies = []
            for request in requests:
                try:
                    replies.append(handle(request))
                except Exception as exc:  # noqa: BLE001 - one line back to that client only
                    replies.append(_reply(spec, self.identity, _one_line(exc)))
            return replies

    # ------------------------------------------------------------------ image
    def infer_image(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        """SAM2ImagePredictor.predict for each request; the images of requests that arrive together share one
        encoder call where the encoder takes a batch."""
        refused = self._refused(P.IMAGE, requests)
        if refused is not None:
            return refused
        with self._call(len(requests)):
            jobs: list[Any] = []
            for request in requests:
                try:
                    jobs.append(self._image_job(request))
                except Exception as exc:  # noqa: BLE001 - one line back to that client only
                    jobs.append(exc)
            good = [job for job in jobs if not isinstance(job, BaseException) and not job.get("describe")]
            states = self.image.encode_batch([job["image"] for job in good]) if len(good) > 1 else None
            for index, job in enumerate(good):
                job["state"] = states[index] if states is not None else None
            replies = []
            for job in jobs:
                if isinstance(job, BaseException):
                    replies.append(_reply(P.IMAGE, self.identity, _one_line(job)))
                    continue
                if job.get("describe"):  # the identity alone
                    replies.append(_reply(P.IMAGE, self.identity))
                    continue
                try:
                    if job["state"] is not None:
                        self.image.use_image(job["state"])
                    else:
                        self.image.set_image(job["image"])
                    replies.append(self._predict(job))
                except Exception as exc:  # noqa: BLE001
                    replies.append(_reply(P.IMAGE, self.identity, _one_line(exc)))
            return replies

    def _image_job(self, request: Any) -> dict[str, Any]:
        image = check_image(_batch_item(request, "IMAGE", True))  # before batching: a bad one stays its own
        spec = P.from_json_tensor(_batch_item(request, "PROMPTS", True), "PROMPTS", {})
        if not isinstance(spec, dict):
            raise NanoSam2Error("PROMPTS is a JSON object: {\"points\", \"labels\", \"boxes\", \"multimask\", \"best\"}")
        if spec.get("describe") is True:
            return {"describe": True}
        unknown = set(spec) - {"points", "labels", "boxes", "multimask", "best"}
        if unknown:
            raise NanoSam2Error(f"PROMPTS has unknown keys {sorted(unknown)}: use points, labels, boxes, multimask, best")
        points = _array(spec["points"], "points", 2) if spec.get("points") is not None else None
        labels = _array(spec["labels"], "labels") if spec.get("labels") is not None else None
        if (points is None) != (labels is None):
            raise NanoSam2Error("points and labels go together")
        boxes = _array(spec["boxes"], "boxes", 4) if spec.get("boxes") is not None else None
        mask_input = _batch_item(request, "MASK_INPUT", True)
        if points is None and boxes is None and mask_input is None:
            raise NanoSam2Error("give points (with labels), boxes or a MASK_INPUT")
        height, width = image.shape[:2]
        Prompts(points=np.zeros((0, 2), np.float32) if points is None else points.reshape(-1, 2),
                labels=np.zeros(0, np.int32) if labels is None else labels.reshape(-1),
                boxes=np.zeros((0, 4), np.float32) if boxes is None else boxes.reshape(-1, 4)).check_inside(width, height)
        return {"image": image, "points": points, "labels": labels, "boxes": boxes, "mask_input": mask_input,
                "multimask": bool(spec.get("multimask", False)), "best": bool(spec.get("best", False)),
                "requested": _requested(request, P.IMAGE)}

    def _predict(self, job: dict[str, Any]) -> dict[str, np.ndarray]:
        prompts = self.image.build_prompts(job["points"], job["labels"], job["boxes"], job["mask_input"])
        if job["best"]:
            masks, scores = self.image.predict_best(prompts)
            return _reply(P.IMAGE, self.identity, MASKS=masks[:, None], SCORES=scores[:, None].astype(np.float32))
        result = self.image.predict_prompts(prompts, multimask_output=job["multimask"])
        outputs = {"MASKS": result.masks, "SCORES": result.scores.astype(np.float32)}
        if "LOW_RES_LOGITS" in job["requested"]:
            outputs["LOW_RES_LOGITS"] = result.low_res_logits.astype(np.float32)
        return _reply(P.IMAGE, self.identity, **outputs)

    # ------------------------------------------------------------------ everything
    def infer_everything(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        return self._each(P.EVERYTHING, requests, self._everything)

    def _everything(self, request: Any) -> dict[str, np.ndarray]:
        from nanosam2.inference.automatic import MAX_PROMPTS, AutomaticMaskGenerator, check_crops
        from nanosam2.masks import rle_to_coco

        image = check_image(_batch_item(request, "IMAGE", False))
        settings = P.from_json_tensor(_batch_item(request, "SETTINGS", False), "SETTINGS", {})
        if not isinstance(settings, dict):
            raise NanoSam2Error("SETTINGS is a JSON object of SAM2AutomaticMaskGenerator's parameters")
        settings = dict(settings)
        multimask = bool(settings.pop("multimask", True))
        settings["max_prompts"] = min(int(settings.get("max_prompts") or MAX_PROMPTS), MAX_PROMPTS)  # the server's cap
        if settings.get("min_mask_region_area"):
            from nanosam2.utils.lazy_import import require

            require("scipy.ndimage", "min_mask_region_area")
        check_crops(image.shape[:2], settings.get("crop_n_layers", 0), settings.get("crop_overlap_ratio", 512 / 1500))
        try:
            generator = AutomaticMaskGenerator(self.image, **settings, output_mode="uncompressed_rle",
                                               multimask_output=multimask, progress=False)
        except TypeError as exc:
            raise NanoSam2Error(f"SETTINGS: {exc}") from None
        records = generator.generate(image)
        for record in records:
            record["segmentation"] = rle_to_coco(record["segmentation"])
        stats = {"prompts_decoded": generator.prompts_decoded, "crop_layers": len(generator.point_grids),
                 "timings_ms": generator.timings}
        return _reply(P.EVERYTHING, self.identity, RECORDS=P.to_json_tensor(records),
                      SCORES=np.array([r["predicted_iou"] for r in records], np.float32), STATS=P.to_json_tensor(stats))

    # ------------------------------------------------------------------ track
    def tracker(self, settings: dict[str, Any]) -> Any:
        """The VideoPredictor of these semantics (one per preset and knobs, sharing the runners)."""
        from nanosam2.inference.tracker_config import TrackerConfig, preset
        from nanosam2.inference.video import VideoPredictor

        if not self.can_track:
            raise NanoSam2Error("this server has no tracker: serve an export with memory_attention and memory_encoder")
        unknown = set(settings) - {"preset", "config", "fill_hole_area", "memory_frames", "num_frames"}
        if unknown:
            raise NanoSam2Error(f"SETTINGS has unknown keys {sorted(unknown)}: use preset (or config), fill_hole_area, "
                                "memory_frames, num_frames")
        if isinstance(settings.get("config"), dict):  # a TrackerConfig's record (what our client sends)
            try:
                config = TrackerConfig(**settings["config"])
            except TypeError as exc:
                raise NanoSam2Error(f"SETTINGS config: {exc}") from None
        else:
            config = preset(settings.get("preset", "video-predictor"))
        changes = {k: int(settings[k]) for k in ("fill_hole_area", "memory_frames") if settings.get(k) is not None}
        config = config.replace(**changes)
        key = json.dumps(config.record(), sort_keys=True, default=str)
        if key not in self._trackers:
            if len(self._trackers) >= 8:
                raise NanoSam2Error("the server keeps 8 tracker settings at most; use a preset's")
            self._trackers[key] = VideoPredictor(*(self.runners[g] for g in C.TRACKER_GRAPHS), config)
        return self._trackers[key]

    def infer_track(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        return self._each(P.TRACK, requests, self._track)

    def _track(self, request: Any) -> dict[str, np.ndarray]:
        def flag(name: str) -> bool:
            value = _batch_item(request, name, False)
            return bool(value is not None and np.asarray(value).reshape(-1)[:1].any())

        ident = _batch_item(request, "SEQUENCE_ID", False)
        if ident is None or ident.size != 1 or int(ident.reshape(-1)[0]) == 0:
            raise NanoSam2Error("SEQUENCE_ID must be one non-zero id")
        sequence_id = int(ident.reshape(-1)[0])
        frame = _batch_item(request, "FRAME", False)
        frame = None if frame is None else check_image(frame)
        start, end = flag("SEQUENCE_START"), flag("SEQUENCE_END")
        if start:
            if frame is None:
                raise NanoSam2Error("a session starts with its first FRAME")
            settings = P.from_json_tensor(_batch_item(request, "SETTINGS", False), "SETTINGS", {})
            if not isinstance(settings, dict):
                raise NanoSam2Error("SETTINGS is a JSON object")
            tracker = self.tracker(settings)
            num_frames = settings.get("num_frames")
            session = self.sessions.start(sequence_id, lambda: Session(tracker.new_stream(frame, num_frames), tracker))
        else:
            session = self.sessions.get(sequence_id)
        identity = json.dumps({"graphs": session.tracker.identity(), "tracker": session.tracker.config.record()},
                                sort_keys=True, default=str)
        if frame is None:
            if not end:
                raise NanoSam2Error("give the next FRAME, or SEQUENCE_END to end the session")
            self.sessions.end(sequence_id, "was ended by its client")
            return _reply(P.TRACK, identity, FRAME_INDEX=np.array([session.frames - 1], np.int64),
                          OBJ_IDS=np.zeros(0, np.int64), LOGITS=np.zeros((0, 1, 0, 0), np.float32))
        try:
            state, tracker = session.state, session.tracker
            if frame.shape[:2] != (state.video_height, state.video_width):
                raise NanoSam2Error(f"frame {session.frames} is {frame.shape[1]}x{frame.shape[0]}, the session's "
                                    f"{state.video_width}x{state.video_height}")
            prompts = self._track_prompts(request, state, tracker, session.frames)
            index = session.frames
            logits = tracker.stream_step(state, index, frame, prompts)
            session.frames += 1
            obj_ids = np.array(state.obj_ids, np.int64)
        except Exception:
            if start:  # a session that could not take its first frame does not exist
                self.sessions.end(sequence_id, "failed on its first frame")
            raise
        finally:
            if end and sequence_id in self.sessions.live:
                self.sessions.end(sequence_id, "was ended by its client")
        return _reply(P.TRACK, identity, FRAME_INDEX=np.array([index], np.int64), OBJ_IDS=obj_ids,
                      LOGITS=logits.astype(np.float32, copy=False))

    def _track_prompts(self, request: Any, state: Any, tracker: Any, index: int) -> list[dict[str, Any]]:
        items = P.from_json_tensor(_batch_item(request, "PROMPTS", False), "PROMPTS", [])
        masks = _batch_item(request, "PROMPT_MASKS", False)
        if not isinstance(items, list):
            raise NanoSam2Error("PROMPTS is a JSON list of prompts")
        prompts = []
        for number, item in enumerate(items):
            where = f"prompt {number} (frame {index})"
            if not isinstance(item, dict):
                raise NanoSam2Error(f"{where} is not a JSON object")
            if "remove" in item:
                tracker.remove_object(state, int(item["remove"]), strict=True)
                continue
            if not isinstance(item.get("obj_id"), int):
                raise NanoSam2Error(f"{where} needs an integer obj_id")
            prompt: dict[str, Any] = {"obj_id": item["obj_id"]}
            if item.get("mask") is not None:
                k = item["mask"]
                if masks is None or not isinstance(k, int) or not 0 <= k < len(masks):
                    raise NanoSam2Error(f"{where}: mask {k} is not in PROMPT_MASKS")
                if masks[k].shape != (state.video_height, state.video_width):
                    raise NanoSam2Error(f"{where}: its mask is {masks[k].shape[1]}x{masks[k].shape[0]}, the frames "
                                        f"{state.video_width}x{state.video_height}")
                prompt["mask"] = masks[k]
            else:
                if item.get("points") is None and item.get("box") is None:
                    raise NanoSam2Error(f"{where} needs points (with labels), a box or a mask")
                if item.get("points") is not None:
                    prompt["points"] = _array(item["points"], f"{where}: points", 2).tolist()
                    prompt["labels"] = [int(v) for v in _array(item.get("labels", [1] * len(prompt["points"])),
                                                               f"{where}: labels")]
                if item.get("box") is not None:
                    prompt["box"] = _array(item["box"], f"{where}: box", 4).reshape(4).tolist()
                Prompts.from_dict(prompt).check_inside(state.video_width, state.video_height, where, "frame")
            prompts.append(prompt)
        return prompts


# ---------------------------------------------------------------------- Triton
def _triton_tensors(tensors: tuple[P.Tensor, ...]) -> list[Any]:
    from pytriton.model_config import Tensor

    return [Tensor(name=t.name, dtype=np.bytes_ if t.dtype is bytes else t.dtype, shape=t.shape, optional=t.optional)
            for t in tensors]


def bind(triton: Any, models: NanoSam2Models, settings: ServeSettings) -> list[str]:
    """The three models (the track model only where the export has the tracker's graphs); their names."""
    from pytriton.model_config import DynamicBatcher, ModelConfig

    names = []
    if settings.max_batch > 1:
        image_config = ModelConfig(max_batch_size=settings.max_batch,
                                   batcher=DynamicBatcher(max_queue_delay_microseconds=settings.batch_delay_us))
    else:
        image_config = ModelConfig(max_batch_size=1)
    for spec, infer, config in ((P.IMAGE, models.infer_image, image_config),
                                (P.EVERYTHING, models.infer_everything, ModelConfig(batching=False)),
                                (P.TRACK, models.infer_track, ModelConfig(batching=False))):
        if spec is P.TRACK and not models.can_track:
            continue
        triton.bind(model_name=spec.name, infer_func=infer, inputs=_triton_tensors(spec.inputs),
                    outputs=_triton_tensors(spec.outputs), config=config, strict=False)
        names.append(spec.name)
    return names


@contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def serve(models: NanoSam2Models, settings: ServeSettings, on_ready: Callable[[list[str]], None] | None = None) -> int:
    """Run ``tritonserver`` with the models until SIGINT/SIGTERM, ``max_requests`` or ``max_seconds``."""
    from nanosam2.utils.lazy_import import require

    require("pytriton.triton", "serve")
    import pytriton.server.triton_server as triton_server
    from pytriton.triton import Triton, TritonConfig

    from trt_runtime.serving.stub_env import server_environment, stub_environment

    stub = stub_environment()
    triton_server.get_triton_python_backend_python_env = lambda: stub  # numpy 1 for the stub only (stub_env.py)
    config = TritonConfig(http_address=settings.host, grpc_address=settings.host, metrics_address=settings.host,
                          http_port=settings.http_port, grpc_port=settings.grpc_port, metrics_port=settings.metrics_port,
                          exit_timeout_secs=5)
    stop = threading.Event()
    reason = "SIGINT/SIGTERM"

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    triton = None
    try:
        with _environment(server_environment()):
            triton = Triton(config=config)
            names = bind(triton, models, settings)
            triton.run()
        if on_ready is not None:
            on_ready(names)
        while not stop.wait(1.0):
            models.reap()
            if not triton.is_alive():
                reason = "tritonserver exited"
                break
            if settings.max_seconds is not None and time.monotonic() - started > settings.max_seconds:
                reason = f"--max-seconds {settings.max_seconds:g} reached"
                break
            if settings.max_requests is not None and models.requests >= settings.max_requests:
                reason = f"--max-requests {settings.max_requests} reached"
                break
        logger.info("stopping (%s)", reason)
        drain(models, triton, settings.drain_seconds)
        triton = None
    finally:
        if triton is not None:
            triton.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        models.close(wait_s=0.0 if models.in_flight else 10.0)  # a request the drain gave up on is not waited for
    return 0


def drain(models: NanoSam2Models, triton: Any, seconds: float) -> None:
    """Stop as Triton does (``--exit-timeout-secs``): new requests refused at once, the running ones given
    ``seconds`` to finish; then ``tritonserver`` is stopped, and a request still running fails on its client's
    side with a closed connection (never a partial answer)."""
    models.draining = True
    deadline = time.monotonic() + seconds
    while models.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    abandoned = models.in_flight > 0
    if abandoned:
        logger.warning("a request was still running %g s after the stop: it fails", seconds)
        _kill_children("tritonserver")
    stopper = threading.Thread(target=triton.stop, daemon=True)
    stopper.start()
    stopper.join(5 if abandoned else 30)  # PyTriton waits long for the abandoned call's proxy


def _kill_children(name: str) -> None:
    """SIGKILL this process's children called ``name`` (Linux: /proc)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if comm == name and int(rest[1]) == me:
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
