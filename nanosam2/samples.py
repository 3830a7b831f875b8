"""The bundled inputs (torch-free): the sample image, and the synthetic clip of the demo, the
tracker's tests and benchmarks (no dataset can be downloaded there): moving shapes on a noisy
background, JPEG frames named by frame number (Meta's layout), and the prompts that pick the
shapes on frame 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_IMAGE = "grace_hopper.jpg"


def sample_image_path() -> Path:
    """The bundled public-domain sample image (see nanosam2/assets/README.md)."""
    from importlib import resources

    return Path(str(resources.files("nanosam2") / "assets" / SAMPLE_IMAGE))


def shape_masks(height: int, width: int, frame: int) -> dict[str, np.ndarray]:
    """The true masks of frame ``frame``: a red rectangle moving right, a green disc moving left-down."""
    yy, xx = np.mgrid[:height, :width]
    x0 = int(width * (0.12 + 0.04 * frame))
    y0 = int(height * 0.2)
    rect = (yy >= y0) & (yy < y0 + height // 4) & (xx >= x0) & (xx < x0 + width // 4)
    cx, cy = width * (0.72 - 0.03 * frame), height * (0.6 + 0.02 * frame)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.15 * min(height, width)) ** 2
    return {"rect": rect, "disc": disc}


def make_frames(num_frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    gen = np.random.default_rng(seed)
    frames = []
    for t in range(num_frames):
        image = gen.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
        masks = shape_masks(height, width, t)
        image[masks["rect"]] = (220, 40, 40)
        image[masks["disc"]] = (40, 200, 90)
        frames.append(image)
    return frames


def write_jpeg_folder(folder: Path, num_frames: int = 6, height: int = 512, width: int = 512, seed: int = 0) -> Path:
    """``folder/00000.jpg`` ... (quality 95), as ``ffmpeg -start_number 0 %05d.jpg`` writes them."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(make_frames(num_frames, height, width, seed)):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def write_video_file(path: Path, frames: list[np.ndarray], codec: str = "mpeg4", gop: int = 5,
                     b_frames: int = 2, fps: int = 25, options: dict[str, str] | None = None) -> Path:
    """``frames`` encoded by PyAV: a keyframe every ``gop`` frames, B-frames between (so reading by
    index must seek and reorder). Lossy: compare with the file's decoded frames, not ``frames``."""
    from nanosam2.utils.lazy_import import require

    av = require("av", "writing video files")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.gop_size, stream.codec_context.max_b_frames = gop, b_frames
        stream.options = dict(options or {})
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def default_prompts(height: int, width: int) -> list[dict]:
    """A click on the rectangle (object 1) and a box around the disc (object 2), on frame 0."""
    masks = shape_masks(height, width, 0)
    ys, xs = np.nonzero(masks["rect"])
    click = [float(xs.mean()), float(ys.mean())]
    ys, xs = np.nonzero(masks["disc"])
    box = [float(xs.min()) - 2, float(ys.min()) - 2, float(xs.max()) + 2, float(ys.max()) + 2]
    return [{"frame": 0, "obj_id": 1, "points": [click], "labels": [1]},
            {"frame": 0, "obj_id": 2, "box": box}]
