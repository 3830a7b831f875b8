"""Clients of a nanosam2 server (tritonclient, HTTP or gRPC), shaped like the local predictors so that every
command runs unchanged with ``--server URL``:

- :class:`RemotePredictor`: ``set_image`` / ``build_prompts`` / ``predict_prompts`` / ``predict_best`` /
  ``identity`` of ``nanosam2.inference.predictor.Predictor`` (predict, eval-coco);
- :class:`RemoteMaskGenerator`: ``generate`` of ``AutomaticMaskGenerator`` (everything);
- :class:`RemoteTracker`: ``track_stream`` of ``VideoPredictor`` (track --stream, eval-vos), one server session
  per video.

A URL is ``http://host:port`` (port 8000 by default) or ``grpc://host:port`` (8001); a bare ``host:port`` is HTTP.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import numpy as np

from nanosam2.errors import NanoSam2Error
from trt_runtime.serving import protocol as P

DEFAULT_TIMEOUT_S = 600.0  # one request (a large everything grid on a CPU takes minutes)


class Connection:
    """One tritonclient connection and the request/answer round trip every remote class uses."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        from nanosam2.utils.lazy_import import require

        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "grpc") or not parts.hostname:
            raise NanoSam2Error(f"--server {url}: give http://HOST:PORT or grpc://HOST:PORT")
        self.url, self.protocol = url, parts.scheme
        port = parts.port or (8000 if parts.scheme == "http" else 8001)
        self.address = f"{parts.hostname}:{port}"
        self.timeout_s = timeout_s
        if self.protocol == "http":
            self.lib = require("tritonclient.http", "--server")
            self.client = self.lib.InferenceServerClient(self.address, connection_timeout=timeout_s,
                                                         network_timeout=timeout_s)
        else:
            self.lib = require("tritonclient.grpc", "--server")
            self.client = self.lib.InferenceServerClient(self.address)
        self.last_identity: dict[str, Any] | None = None

    def close(self) -> None:
        self.client.close()

    def check_model(self, name: str) -> None:
        """One line if the server cannot be reached or does not serve ``name``."""
        try:
            ready = self.client.is_model_ready(name)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises socket, gevent and grpc errors alike
            raise NanoSam2Error(f"no nanosam2 server at {self.url} ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if not ready:
            raise NanoSam2Error(f"the server at {self.url} does not serve {name} (is it a nanosam2 server? does its "
                                "export have the graphs?)")

    def infer(self, spec: P.ModelSpec, inputs: dict[str, np.ndarray], outputs: Iterable[str] | None = None,
              headers: dict[str, str] | None = None) -> dict[str, np.ndarray]:
        """Send ``inputs`` (without the batch axis) and return the outputs; the server's ERROR as NanoSam2Error."""
        wrapped = []
        for name, value in inputs.items():
            tensor = spec.input(name)
            array = np.asarray(value)
            if spec.batching:
                array = array[None]
            item = self.lib.InferInput(name, list(array.shape), P.TRITON_TYPES[tensor.dtype])
            item.set_data_from_numpy(array)
            wrapped.append(item)
        wanted = [t.name for t in spec.outputs if outputs is None or t.name in outputs or t.name in (P.ERROR, P.MODEL)]
        requested = [self.lib.InferRequestedOutput(name) for name in wanted]
        try:
            if self.protocol == "http":
                result = self.client.infer(spec.name, wrapped, outputs=requested, headers=headers)
            else:
                result = self.client.infer(spec.name, wrapped, outputs=requested, headers=headers,
                                           client_timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001
            text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
            raise NanoSam2Error(f"the server at {self.url} failed the {spec.name} request: "
                                f"{(text or type(exc).__name__).strip().splitlines()[0]}") from None
        answer = {}
        for name in wanted:
            array = result.as_numpy(name)
            answer[name] = array[0] if spec.batching and array is not None else array
        error = P.error_text(answer.get(P.ERROR))
        if error:
            raise NanoSam2Error(f"the server refused it: {error}")
        self.last_identity = P.from_json_tensor(answer.get(P.MODEL), "MODEL", None)
        return answer


class _Pixels:
    """A request's prompts in image pixels (what ``RemotePredictor.build_prompts`` returns)."""

    def __init__(self, points: Any, labels: Any, boxes: Any, mask_input: Any) -> None:
        def listed(value: Any) -> Any:
            return None if value is None else np.asarray(value, np.float64).tolist()

        self.spec = {"points": listed(points), "labels": listed(labels), "boxes": listed(boxes)}
        self.mask_input = None if mask_input is None else np.asarray(mask_input, np.float32)


class _Remote:
    """A client of one server model: its connection (checked to serve ``model``), closing, the graphs' identity."""

    model = ""

    def __init__(self, connection: Connection | str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.connection = connection if isinstance(connection, Connection) else Connection(connection, timeout_s)
        self.connection.check_model(self.model)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def _describe(self) -> None:
        """Ask the server for its identity (a request that computes nothing)."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """The graphs that answered the last request (the server's own record of them; asked for if none yet)."""
        if self.connection.last_identity is None:
            self._describe()
        assert self.connection.last_identity is not None
        return dict(self.connection.last_identity["graphs"])


class RemotePredictor(_Remote):
    """``Predictor``'s interface over a server's image model: each predict sends the image and its prompts
    (a server keeps no image between requests, so that any replica can answer)."""

    model = P.IMAGE_MODEL

    def __init__(self, connection: Connection | str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(connection, timeout_s)
        self.image: np.ndarray | None = None
        self.timings: dict[str, float] = {}

    def set_image(self, image: Any) -> None:
        from nanosam2.inference.predictor import as_rgb_array

        self.image = as_rgb_array(image)

    @property
    def orig_hw(self) -> tuple[int, int]:
        if self.image is None:
            raise NanoSam2Error("call set_image(...) before predict(...)")
        return self.image.shape[:2]  # type: ignore[return-value]

    def build_prompts(self, points: Any = None, labels: Any = None, boxes: Any = None, mask_input: Any = None) -> _Pixels:
        return _Pixels(points, labels, boxes, mask_input)

    def _send(self, prompts: _Pixels, multimask: bool, best: bool, logits: bool) -> dict[str, np.ndarray]:
        if self.image is None:
            raise NanoSam2Error("call set_image(...) before predict(...)")
        inputs = {"IMAGE": self.image, "PROMPTS": P.to_json_tensor({**prompts.spec, "multimask": multimask,
                                                                     "best": best})}
        if prompts.mask_input is not None:
            side = prompts.mask_input.shape[-1]
            inputs["MASK_INPUT"] = prompts.mask_input.reshape(-1, 1, side, side)
        start = time.perf_counter()
        answer = self.connection.infer(P.IMAGE, inputs, ["MASKS", "SCORES"] + (["LOW_RES_LOGITS"] if logits else []))
        self.timings = {"server_round_trip_ms": 1000 * (time.perf_counter() - start)}
        return answer

    def predict_prompts(self, prompts: _Pixels, multimask_output: bool = True, return_logits: bool = False) -> Any:
        from nanosam2.inference.predictor import Prediction

        if return_logits:
            raise NanoSam2Error("a server answers masks, not full-size logits")
        answer = self._send(prompts, multimask_output, False, True)
        return Prediction(answer["MASKS"].astype(bool), answer["SCORES"], answer["LOW_RES_LOGITS"], dict(self.timings))


    def predict_best(self, prompts: _Pixels) -> tuple[np.ndarray, np.ndarray]:
        answer = self._send(prompts, True, True, False)
        return answer["MASKS"][:, 0].astype(bool), answer["SCORES"][:, 0]

    def _describe(self) -> None:
        self.connection.infer(P.IMAGE, {"IMAGE": np.zeros((2, 2, 3), np.uint8),
                                        "PROMPTS": P.to_json_tensor({"describe": True})}, [])


class RemoteMaskGenerator(_Remote):
    """``AutomaticMaskGenerator.generate`` over a server's everything model."""

    model = P.EVERYTHING_MODEL

    def __init__(self, connection: Connection | str, multimask_output: bool = True, **settings: Any) -> None:
        super().__init__(connection)
        self.settings = {**settings, "multimask": multimask_output}
        self.timings: dict[str, float] = {}
        self.prompts_decoded = 0
        self.point_grids: list[Any] = []

    def generate(self, image: Any) -> list[dict[str, Any]]:
        """SAM2AutomaticMaskGenerator's records, segmentation as COCO RLE (``rle_to_coco``'s form)."""
        from nanosam2.inference.predictor import as_rgb_array

        start = time.perf_counter()
        answer = self.connection.infer(P.EVERYTHING, {"IMAGE": as_rgb_array(image),
                                                      "SETTINGS": P.to_json_tensor(self.settings)})
        stats = P.from_json_tensor(answer["STATS"], "STATS", {})
        self.prompts_decoded = stats.get("prompts_decoded", 0)
        self.point_grids = [None] * stats.get("crop_layers", 1)
        self.timings = {**{f"server_{k}": v for k, v in stats.get("timings_ms", {}).items()},
                        "round_trip_ms": 1000 * (time.perf_counter() - start)}
        return P.from_json_tensor(answer["RECORDS"], "RECORDS", [])

    def _describe(self) -> None:
        raise NanoSam2Error("internal: ask for the identity after generate()")


_session_ids = itertools.count(1)


def new_sequence_id() -> int:
    """A session id unlikely to meet another client's: the process id, a counter and the clock, in 63 bits."""
    return ((os.getpid() & 0xFFFFF) << 40 | (next(_session_ids) & 0xFFFF) << 24 | int(time.time_ns() >> 20) & 0xFFFFFF) or 1


class RemoteConfig:
    """A server tracker's ``TrackerConfig`` as recorded: what results files and eval-vos read of it."""

    def __init__(self, record: dict[str, Any]) -> None:
        self._record = record
        self.non_overlap_masks = bool(record.get("non_overlap_masks", False))

    def record(self) -> dict[str, Any]:
        return dict(self._record)


class RemoteTracker(_Remote):
    """``VideoPredictor.track_stream`` over a server's track model: one session per video, ended (its bank freed)
    when the stream ends, fails or is dropped."""

    def __init__(self, connection: Connection | str, config: Any = None) -> None:
        """``config``: a ``TrackerConfig`` (the semantics a local run would have: preset and knobs), or None for
        the server's default (Meta's video predictor)."""
        super().__init__(connection)
        self.settings: dict[str, Any] = {} if config is None else {"config": config.record()}
        self.stage_ms = {"server_round_trip": 0.0}
        self.stage_calls = {"server_round_trip": 0}
        self._config: dict[str, Any] | None = None

    model = P.TRACK_MODEL

    @property
    def timings(self) -> dict[str, float]:
        return self.stage_ms

    @property
    def calls(self) -> dict[str, int]:
        return self.stage_calls

    @property
    def config(self) -> "RemoteConfig":
        """The server's tracker semantics for these settings (``record()`` as a local tracker's)."""
        if self._config is None:
            self._describe()
        return RemoteConfig(dict(self._config or {}))

    def _describe(self) -> None:
        """The server's semantics for these settings: a one-frame session without objects, ended at once."""
        self._step(new_sequence_id(), np.zeros((2, 2, 3), np.uint8), [], None, start=True, end=True)

    def _step(self, sequence_id: int, frame: np.ndarray | None, prompts: list[dict[str, Any]], masks: np.ndarray | None,
              start: bool = False, end: bool = False, num_frames: int | None = None) -> dict[str, np.ndarray]:
        inputs: dict[str, np.ndarray] = {"SEQUENCE_ID": np.array([sequence_id], np.uint64),
                                         "SEQUENCE_START": np.array([start]), "SEQUENCE_END": np.array([end])}
        if frame is not None:
            inputs["FRAME"] = np.ascontiguousarray(frame, np.uint8)
        if prompts:
            inputs["PROMPTS"] = P.to_json_tensor(prompts)
        if masks is not None:
            inputs["PROMPT_MASKS"] = masks
        if start:
            inputs["SETTINGS"] = P.to_json_tensor({**self.settings, "num_frames": num_frames})
        began = time.perf_counter()
        answer = self.connection.infer(P.TRACK, inputs, headers={"nanosam2-sequence-id": str(sequence_id)})
        self.stage_ms["server_round_trip"] += 1000 * (time.perf_counter() - began)
        self.stage_calls["server_round_trip"] += 1
        if self.connection.last_identity is not None:
            self._config = self.connection.last_identity.get("tracker")
        return answer

    def track_stream(self, frames: Iterable[np.ndarray], prompts: dict[int, list[dict[str, Any]]] | None = None,
                     on_frame: Any = None, num_frames: int | None = None) -> Iterator[tuple[int, list[Any], np.ndarray]]:
        """``VideoPredictor.track_stream`` on the server: (frame_idx, obj_ids, logits [O, 1, H, W]) per frame."""
        prompts = dict(prompts or {})
        sequence_id = new_sequence_id()
        started = ended = False
        try:
            for frame_idx, frame in enumerate(frames):
                frame = np.asarray(frame)
                new = list(prompts.pop(frame_idx, []))
                if on_frame is not None:
                    new += list(on_frame(frame_idx, frame) or [])
                items, masks = [], []
                for prompt in new:
                    item = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in prompt.items()
                            if k in ("obj_id", "points", "labels", "box", "remove") and v is not None}
                    if prompt.get("mask") is not None:
                        item["mask"] = len(masks)
                        masks.append((np.asarray(prompt["mask"]) > 0).astype(np.uint8))
                    items.append(item)
                answer = self._step(sequence_id, frame, items, np.stack(masks) if masks else None,
                                    start=not started, num_frames=num_frames)
                started = True
                obj_ids = [] if answer["OBJ_IDS"] is None else [int(i) for i in answer["OBJ_IDS"]]
                logits = answer["LOGITS"]
                if logits is None:  # no object yet: an empty answer is left out
                    logits = np.zeros((0, 1, *frame.shape[:2]), np.float32)
                yield frame_idx, obj_ids, logits
            if started:
                self._step(sequence_id, None, [], None, end=True)
                ended = True
        finally:
            if started and not ended:
                try:
                    self._step(sequence_id, None, [], None, end=True)
                except NanoSam2Error:
                    pass  # the server may be gone; it evicts the session after its timeout
