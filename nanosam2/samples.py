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


def vos_objects(height: int, width: int, frame: int, sequence: int) -> dict[int, np.ndarray]:
    """The true masks {object id: mask} of a synthetic VOS sequence's frame. Sequence 0: the rectangle
    (1) and the disc (2) throughout; odd sequences: the disc leaves after frame 2 and a blue square (3)
    enters on frame 2 (an object absent from the first frame); further sequences shift the shapes."""
    shapes = shape_masks(height, width, frame + 2 * (sequence // 2))
    objects = {1: shapes["rect"]}
    if sequence % 2 == 0 or frame <= 2:
        objects[2] = shapes["disc"]
    if sequence % 2 == 1 and frame >= 2:
        yy, xx = np.mgrid[:height, :width]
        y0, x0 = int(height * (0.62 - 0.02 * frame)), int(width * (0.1 + 0.03 * frame))
        objects[3] = (yy >= y0) & (yy < y0 + height // 5) & (xx >= x0) & (xx < x0 + width // 5)
    return objects


VOS_COLOURS = {1: (220, 40, 40), 2: (40, 200, 90), 3: (50, 90, 230)}


def write_vos_dataset(root: Path, sequences: int = 2, num_frames: int = 6, height: int = 512, width: int = 512,
                      per_object: bool = False) -> Path:
    """A DAVIS-layout set of moving shapes (:func:`vos_objects`): ``JPEGImages/<seq>/00000.jpg`` and
    ``Annotations/<seq>/00000.png`` (palette, pixel = object id) on every frame, or with ``per_object``
    SA-V's ``Annotations/<seq>/<obj:03d>/00000.png`` on every other frame (sparse)."""
    from PIL import Image

    from nanosam2.evaluation.vos_data import davis_palette, write_mask_png

    palette = davis_palette()
    for index in range(sequences):
        name = f"shapes-{index}"
        images, annotations = root / "JPEGImages" / name, root / "Annotations" / name
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        gen = np.random.default_rng(index)
        for t in range(num_frames):
            frame = gen.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
            ids = np.zeros((height, width), np.uint8)
            objects = vos_objects(height, width, t, index)
            for obj in sorted(objects, reverse=True):
                frame[objects[obj]], ids[objects[obj]] = VOS_COLOURS[obj], obj
            Image.fromarray(frame).save(images / f"{t:05d}.jpg", quality=95)
            if not per_object:
                write_mask_png(annotations / f"{t:05d}.png", ids, palette)
            elif t % 2 == 0 or t == num_frames - 1:
                for obj in (1, 2, 3) if index % 2 else (1, 2):
                    (annotations / f"{obj:03d}").mkdir(exist_ok=True)
                    write_mask_png(annotations / f"{obj:03d}" / f"{t:05d}.png", (ids == obj).astype(np.uint8), palette)
    return root
