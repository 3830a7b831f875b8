"""``Predictor``: SAM2ImagePredictor's semantics over any pair of runners.

Pre- and post-processing come from ``nanosam2.transforms`` (numpy), so answers do not depend
on the backend; only the two graph calls differ. Stage timings of the last call are kept in
``predictor.timings`` (milliseconds; the runners synchronise before returning host arrays).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.inference.device import DeviceArray, to_host
from nanosam2.inference.pipeline import Pipeline
from nanosam2.inference.runner import Runner


@dataclass
class ImageState:
    """Features of the current image (where the encoder wrote them) and its original size."""

    features: dict[str, Any]  # numpy or DeviceArray, by encoder output name
    orig_hw: tuple[int, int]
    pixels: Any = None  # the image for the postprocess graph (on its device when there is one)


@dataclass
class Prediction:
    masks: np.ndarray  # [P, C, H, W] bool (or logits)
    scores: np.ndarray  # [P, C]
    low_res: Any  # [P, C, 256, 256] clamped to +-32: numpy, or a DeviceArray downloaded on first use
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def low_res_logits(self) -> np.ndarray:
        """[P, C, 256, 256] logits clamped to +-32 (downloaded from the device when asked for, or before the
        predictor's next call rewrites them: a Prediction never changes after it is returned)."""
        if isinstance(self.low_res, DeviceArray):
            self.low_res = self.low_res.to_host()
        return self.low_res


def as_rgb_array(image: Any) -> np.ndarray:
    """Accept an HxWx3 uint8 array or a PIL image; return a contiguous RGB uint8 array."""
    if hasattr(image, "convert"):
        from nanosam2.images import to_rgb

        image = to_rgb(image)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise NanoSam2Error(f"expected an RGB image [H, W, 3], got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        raise NanoSam2Error(f"expected a uint8 image, got {array.dtype}")
    return np.ascontiguousarray(array)


def check_image(image: Any) -> np.ndarray:
    """:func:`as_rgb_array`, and at least 2x2 pixels: the one check of an image any predictor encodes."""
    rgb = as_rgb_array(image)
    if min(rgb.shape[:2]) < 2:
        raise NanoSam2Error(f"the image is {rgb.shape[1]}x{rgb.shape[0]} pixels; at least 2x2 is needed")
    return rgb


class Predictor(Pipeline):
    """Interactive segmentation over an encoder runner and a decoder runner.

    The encoder's outputs stay where the encoder wrote them (GPU memory on a GPU backend) and
    every decoder call binds them in place. With ``preprocess`` / ``postprocess`` runners (the
    exported ``preprocess`` and ``postprocess`` graphs, on the same backend) the resize,
    normalisation, mask selection, upsampling and threshold run as graphs too, so on a GPU only
    the uint8 pixels, the prompts and the final uint8 masks (and scores) cross the bus; without
    them the numpy reference in ``nanosam2.transforms`` does that work on the host.
    """

    def __init__(self, encoder: Runner, decoder: Runner, preprocess: Runner | None = None,
                 postprocess: Runner | None = None) -> None:
        super().__init__({C.ENCODER: encoder, C.DECODER: decoder, C.PREPROCESS: preprocess, C.POSTPROCESS: postprocess})
        self.encoder, self.decoder = encoder, decoder
        self.preprocess, self.postprocess = preprocess, postprocess
        self.encoder_contract, self.contract = encoder.contract, decoder.contract
        self.selection = self.contract.mask_selection
        self.state: ImageState | None = None
        self.timings: dict[str, float] = {}
        self._zero_masks: tuple[int, Any] | None = None  # (prompt count, zero mask_input on the decoder's device)
        self._lazy: weakref.ref[Prediction] | None = None  # the last Prediction whose logits are still on the device

    def close(self) -> None:
        self._settle()  # a Prediction the caller holds must outlive the runners' buffers
        super().close()

    def _settle(self) -> None:
        """Download the logits a returned Prediction still views on the device before a call rewrites them
        (only if the caller still holds it: nothing is downloaded for predictions already dropped)."""
        prediction = self._lazy() if self._lazy is not None else None
        self._lazy = None
        if prediction is not None and isinstance(prediction.low_res, DeviceArray):
            prediction.low_res = prediction.low_res.to_host()

    def __enter__(self) -> "Predictor":
        return self

    def set_image(self, image: Any) -> None:
        """Preprocess and encode one image; its features serve every following ``predict``."""
        rgb = check_image(image)
        self._settle()
        start = time.perf_counter()
        pixels: Any = rgb
        if self.preprocess is not None:
            pixels = self.preprocess.to_device(C.PIXELS, rgb)  # the one upload of the image
            tensor = self.preprocess.infer({C.PIXELS: pixels}, copy_outputs_to_host=False)[C.IMAGE]
        else:
            tensor = T.preprocess_image(rgb, self.encoder_contract.image_size, tuple(self.encoder_contract.pixel_mean),
                                        tuple(self.encoder_contract.pixel_std))
        encoded_at = time.perf_counter()
        features = self.encoder.infer({C.IMAGE: tensor}, copy_outputs_to_host=False)
        self.encoder.synchronize()  # the encoding is done when set_image returns (a CUDA graph runs here)
        done = time.perf_counter()
        self.state = ImageState({n: features[n] for n in C.ENCODER_OUTPUTS}, rgb.shape[:2], pixels)
        self.timings = {"preprocess_ms": 1000 * (encoded_at - start), "encoder_ms": 1000 * (done - encoded_at)}

    def encode_batch(self, images: list[Any]) -> list[ImageState] | None:
        """Encode several images in one encoder call and return their states (:meth:`use_image` selects one
        for ``predict``), or None where that cannot be done: a preprocess graph, or an encoder that takes fewer
        images at once (an engine's profile: one, by default). A server batches its clients' images this way;
        each image's features are a slice of the batch's, kept on the host."""
        most = self.encoder.max_rows(C.IMAGE)
        if self.preprocess is not None or len(images) > min(most or C.EXPORT_MAX_BATCH, C.EXPORT_MAX_BATCH):
            return None
        rgbs = [check_image(image) for image in images]
        self._settle()
        contract = self.encoder_contract
        start = time.perf_counter()
        tensor = np.concatenate([T.preprocess_image(rgb, contract.image_size, tuple(contract.pixel_mean),
                                                    tuple(contract.pixel_std)) for rgb in rgbs])
        encoded_at = time.perf_counter()
        features = self.encoder.infer({C.IMAGE: tensor})
        done = time.perf_counter()
        self.timings = {"preprocess_ms": 1000 * (encoded_at - start), "encoder_ms": 1000 * (done - encoded_at)}
        return [ImageState({n: features[n][i:i + 1] for n in C.ENCODER_OUTPUTS}, rgb.shape[:2], rgb)
                for i, rgb in enumerate(rgbs)]

    def use_image(self, state: ImageState) -> None:
        """Predict on an image :meth:`encode_batch` encoded."""
        self._settle()
        self.state = state

    @property
    def orig_hw(self) -> tuple[int, int]:
        if self.state is None:
            raise NanoSam2Error("call set_image(...) before predict(...)")
        return self.state.orig_hw

    def _chunks(self, prompts: T.DecoderPrompts) -> list[slice]:
        """Batches larger than the decoder accepts (an engine profile's max) are split."""
        if self.state is None:
            raise NanoSam2Error("call set_image(...) before predict(...)")
        limit = self.decoder.max_batch() or prompts.count
        return [slice(lo, min(lo + limit, prompts.count)) for lo in range(0, prompts.count, limit)]

    def _prompt_feed(self, prompts: T.DecoderPrompts, rows: slice) -> dict[str, Any]:
        """The decoder's prompt inputs. Without a mask prompt, ``mask_input`` (256 KB of zeros per
        prompt) is one buffer uploaded once and bound to every call, not sent each time."""
        feed = C.prompt_feed(prompts, rows)
        if np.any(feed[C.HAS_MASK_INPUT]):
            return feed
        count = len(feed[C.HAS_MASK_INPUT])
        if self._zero_masks is None or self._zero_masks[0] != count:
            self._zero_masks = (count, self.decoder.to_device(C.MASK_INPUT, np.zeros_like(feed[C.MASK_INPUT])))
        feed[C.MASK_INPUT] = self._zero_masks[1]
        return feed

    def decode(self, prompts: T.DecoderPrompts) -> tuple[np.ndarray, np.ndarray]:
        """Raw decoder outputs for P prompts, on the host: logits [P,T,256,256] and IoU [P,T] of all T tokens."""
        self._settle()
        start = time.perf_counter()
        low_parts, iou_parts = [], []
        for rows in self._chunks(prompts):
            out = self.decoder.infer({**self.state.features, **self._prompt_feed(prompts, rows)})  # type: ignore[union-attr]
            low_parts.append(out[C.LOW_RES_MASKS])
            iou_parts.append(out[C.IOU_PREDICTIONS])
        self.timings["decoder_ms"] = 1000 * (time.perf_counter() - start)
        return np.concatenate(low_parts), np.concatenate(iou_parts)

    def _decode_and_postprocess(self, prompts: T.DecoderPrompts, planes: list[int]) -> tuple[np.ndarray, np.ndarray, Any]:
        """Decoder and postprocess graph, chunk by chunk, with the decoder's outputs left on the device:
        bool masks [P,K,H,W] and scores [P,K] on the host, clamped logits (device or host) [P,K,256,256]."""
        assert self.postprocess is not None and self.state is not None
        self._settle()
        decoder_s = post_s = 0.0
        masks, scores, logits = [], [], []
        chunks = self._chunks(prompts)
        for rows in chunks:
            start = time.perf_counter()
            out = self.decoder.infer({**self.state.features, **self._prompt_feed(prompts, rows)}, copy_outputs_to_host=False)
            decoded = time.perf_counter()
            post = self.postprocess.infer({C.LOW_RES_MASKS: out[C.LOW_RES_MASKS], C.IOU_PREDICTIONS: out[C.IOU_PREDICTIONS],
                                           C.PIXELS: self.state.pixels, C.MASK_PLANES: np.asarray(planes, np.int64)},
                                          copy_outputs_to_host=False)
            masks.append(to_host(post[C.MASKS]).view(np.bool_))  # uint8 0/1: the only large download
            scores.append(to_host(post[C.SCORES]))
            # the next chunk rewrites the runner's output buffer: a chunk's logits are copied before it runs
            logits.append(post[C.LOW_RES_LOGITS] if len(chunks) == 1 else to_host(post[C.LOW_RES_LOGITS]))
            decoder_s, post_s = decoder_s + decoded - start, post_s + time.perf_counter() - decoded
        self.timings["decoder_ms"], self.timings["postprocess_ms"] = 1000 * decoder_s, 1000 * post_s
        low_res = logits[0] if len(logits) == 1 else np.concatenate(logits)
        return np.concatenate(masks), np.concatenate(scores), low_res

    def predict_prompts(self, prompts: T.DecoderPrompts, multimask_output: bool = True,
                        return_logits: bool = False) -> Prediction:
        """Decode a prepared batch of P prompts; masks [P,C,H,W] at the original resolution."""
        if self.postprocess is not None and not return_logits:  # logits at full size: numpy only
            planes = list(C.PLANES_MULTI) if multimask_output else [C.PLANE_SINGLE]
            masks, scores, low_res = self._decode_and_postprocess(prompts, planes)
            prediction = Prediction(masks, scores, low_res, dict(self.timings))
            if isinstance(low_res, DeviceArray):
                self._lazy = weakref.ref(prediction)
            return prediction
        low, iou = self.decode(prompts)
        start = time.perf_counter()
        low, scores = T.select_masks(low, iou, multimask_output, self.selection)
        masks, low_clamped = T.postprocess_masks(low, self.orig_hw, self.contract.mask_threshold, return_logits)
        self.timings["postprocess_ms"] = 1000 * (time.perf_counter() - start)
        return Prediction(masks, scores, low_clamped, dict(self.timings))

    def predict_best(self, prompts: T.DecoderPrompts) -> tuple[np.ndarray, np.ndarray]:
        """Per prompt, the multimask output with the highest predicted IoU: masks [P,H,W], scores [P].

        Selects on the low-res logits and upsamples only the chosen masks (the COCO protocol).
        """
        if self.postprocess is not None:
            masks, scores, _ = self._decode_and_postprocess(prompts, [C.PLANE_BEST])
            return masks[:, 0], scores[:, 0]
        low, iou = self.decode(prompts)
        start = time.perf_counter()
        low, iou = T.select_masks(low, iou, True, self.selection)
        best = np.argmax(iou, axis=1)
        rows = np.arange(len(best))
        masks, _ = T.postprocess_masks(low[rows, best], self.orig_hw, self.contract.mask_threshold)
        self.timings["postprocess_ms"] = 1000 * (time.perf_counter() - start)
        return masks, iou[rows, best]

    def build_prompts(self, points: np.ndarray | None = None, labels: np.ndarray | None = None,
                      boxes: np.ndarray | None = None, mask_input: np.ndarray | None = None) -> T.DecoderPrompts:
        """Prompts in the image's pixels as one decoder call's arrays, in the frame of this model's
        contract (its image size), for the image set last."""
        try:
            return T.build_prompts(self.orig_hw, points, labels, boxes, mask_input, self.contract.image_size)
        except ValueError as exc:
            raise NanoSam2Error(str(exc)) from None

    def predict(
        self,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same inputs and outputs as ``SAM2ImagePredictor.predict``.

        ``points`` [N,2] / ``labels`` [N] (or [P,N,2] / [P,N]), ``boxes`` [4] or [P,4] XYXY, all
        in original pixels; ``mask_input`` [1,256,256] logits. Returns masks [C,H,W], scores
        [C] and low-res logits [C,256,256], with a leading P axis for a batch of P > 1 prompts.
        """
        prompts = self.build_prompts(points, labels, boxes, mask_input)
        result = self.predict_prompts(prompts, multimask_output, return_logits)
        if result.masks.shape[0] == 1:
            return result.masks[0], result.scores[0], result.low_res_logits[0]
        return result.masks, result.scores, result.low_res_logits
