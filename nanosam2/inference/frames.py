"""A video's frames, read when asked for: a folder of ``<number>.jpg`` frames (Meta's layout), a video
file (PyAV, by index, never decoded in full) or a list of RGB arrays; and a camera or a file read once,
in order (``read_video``)."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nanosam2.errors import NanoSam2Error

JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")


class Frames:
    """Random access to a video's frames (RGB uint8), decoded when asked for: a folder of
    ``<index>.jpg`` frames, a video file (``VideoFile``: never decoded in full) or a list of arrays.

    Frames are read by position (0 .. len-1); ``numbers`` are the frames' own numbers: the integers a
    JPEG folder's names carry (gaps stay gaps: 00000, 00004, ... keep their numbers), the position
    for a video file or a list. Prompts and output names use the numbers (:meth:`position`)."""

    def __init__(self, source: Any) -> None:
        self.files: list[Path] = []
        self.arrays: list[np.ndarray] = []
        self.video: VideoFile | None = None
        self.numbers: list[int] = []
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()  # the last decoded JPEG frames
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                numbered = jpeg_frames(path)
                self.numbers, self.files = [n for n, _ in numbered], [f for _, f in numbered]
            elif path.is_file():
                self.video = VideoFile(path)
            else:
                raise NanoSam2Error(f"no such video or frame folder: {path}")
        else:
            self.arrays = [np.asarray(frame) for frame in source]
            if not self.arrays:
                raise NanoSam2Error("the video has no frames")
        if not self.numbers:
            self.numbers = list(range(len(self)))
        self._positions = {number: index for index, number in enumerate(self.numbers)}
        first = self[0]
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __len__(self) -> int:
        return len(self.video) if self.video is not None else len(self.files) or len(self.arrays)

    def position(self, number: int) -> int:
        """The position of the frame numbered ``number``; a number the video lacks is an error."""
        if number not in self._positions:
            if self.files and 0 <= number <= self.numbers[-1]:
                raise NanoSam2Error(f"frame {number} is not in the frame folder (its frames are numbered "
                                    f"{_number_ranges(self.numbers)})")
            raise NanoSam2Error(f"frame {number} is past the end of the video (frames "
                                f"{_number_ranges(self.numbers)})")
        return self._positions[number]

    def __getitem__(self, index: int) -> np.ndarray:
        if self.video is not None:
            return self.video[index]
        if self.files:
            if index not in self._recent:  # the overlay asks for the frame the tracker just read: decoded once
                from nanosam2.images import read_rgb

                self._recent[index] = read_rgb(self.files[index])
                while len(self._recent) > 2:
                    self._recent.popitem(last=False)
            return self._recent[index]
        frame = self.arrays[index]
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NanoSam2Error(f"frame {index}: expected RGB uint8 [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[index] for index in range(len(self)))

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


def _number_ranges(numbers: list[int]) -> str:
    """``0-2, 7-8`` for [0, 1, 2, 7, 8]."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:4])
    return text + (", ..." if len(spans) > 4 else "")


FRAME_NAME = re.compile(r"[0-9]+")


def jpeg_frames(folder: Path) -> list[tuple[int, Path]]:
    """Meta's layout: ``<frame number>.jpg`` files, as (number, path) sorted by number. Names that are
    not a non-negative integer, and two files of one number (``1.jpg`` and ``01.jpg``), are refused:
    a frame must never take another's place."""
    names = [p for p in folder.iterdir() if p.suffix in JPEG_SUFFIXES]
    if not names:
        raise NanoSam2Error(f"{folder}: no JPEG frames (<index>.jpg) in the folder")
    bad = sorted(p.name for p in names if not FRAME_NAME.fullmatch(p.stem))
    if bad:
        raise NanoSam2Error(f"{folder}: frame file {bad[0]} is not named by its frame number (00000.jpg, ...)")
    numbered: dict[int, Path] = {}
    for path in sorted(names):
        number = int(path.stem)
        if number in numbered:
            raise NanoSam2Error(f"{folder}: {numbered[number].name} and {path.name} are both frame {number}")
        numbered[number] = path
    return sorted(numbered.items())


def _open_video(path: str | os.PathLike[str], **options: Any) -> Any:
    from nanosam2.utils.lazy_import import require

    av = require("av", "reading video files")
    try:
        container = av.open(str(path), **options)
    except (av.error.FFmpegError, OSError) as exc:
        raise NanoSam2Error(f"{path}: cannot open the video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise NanoSam2Error(f"{path}: no video stream")
    return container


def read_video(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file or a camera (``/dev/videoN``), decoded by PyAV one at a time."""
    options: dict[str, Any] = {"format": "v4l2"} if str(path).startswith("/dev/video") else {}
    with _open_video(path, **options) as container:
        import av

        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise NanoSam2Error(f"{path}: the video cannot be decoded ({exc})") from None


class VideoFile:
    """A video file's frames by index (RGB uint8), decoded when asked for, never all at once.

    Opening reads the packets' timestamps (demuxing, no decoding): the frame count and each
    frame's presentation time. Reading frames in order decodes each once; a jump back, or far
    ahead, seeks to the keyframe before the frame and decodes forward from it. The frames decoded
    last are cached up to ``cache_bytes``, so reverse propagation decodes a keyframe's group again
    once per cache-full of frames, not once per frame. Streams whose packets lack timestamps are
    numbered by decoding order, and a jump back decodes again from the start.
    """

    SEEK_AHEAD = 32  # decode forward rather than seek when the wanted frame is this close ahead

    def __init__(self, path: str | os.PathLike[str], cache_bytes: int = 256 << 20) -> None:
        self.path, self.cache_bytes = Path(path), int(cache_bytes)
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._container = _open_video(self.path)
        import av  # after _open_video, which names the extra where PyAV is missing

        self._frames: Iterator[tuple[int, Any]] | None = None
        self._next = self._floor = 0  # the index the running decode yields next; frames before floor are dropped
        try:
            sizes_and_pts = [(p.size, p.pts) for p in self._container.demux(self._container.streams.video[0])]
        except av.error.FFmpegError as exc:
            self.close()
            raise NanoSam2Error(f"{self.path}: the video cannot be read ({exc})") from None
        pts = [t for size, t in sizes_and_pts if size]
        self.timed = bool(pts) and None not in pts and len(set(pts)) == len(pts)
        self.pts = sorted(pts) if self.timed else []  # type: ignore[type-var]
        self.index = {t: i for i, t in enumerate(self.pts)}
        self.length = len(self.pts)
        if not self.timed:  # numbered by decoding order: count them once
            self._rewind()
            self.length = sum(1 for _ in self._decode())
        if not self.length:
            self.close()
            raise NanoSam2Error(f"{self.path}: the video has no frames")
        self._rewind()

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        self._frames = None
        self._container.close()

    def _rewind(self) -> None:
        self._container.close()
        self._container = _open_video(self.path)
        self._frames, self._next, self._floor = self._decode(), 0, 0

    def _decode(self) -> Iterator[tuple[int, Any]]:
        """(frame index, PyAV frame) in presentation order from where the container stands."""
        import av

        stream = self._container.streams.video[0]
        count = 0
        try:
            for frame in self._container.decode(stream):
                if self.timed:
                    number = self.index.get(frame.pts)
                    if number is None:
                        raise NanoSam2Error(f"{self.path}: a decoded frame has a timestamp ({frame.pts}) that no "
                                            "packet has; extract its frames as JPEGs and pass the folder")
                else:
                    number, count = count, count + 1
                yield number, frame
        except av.error.FFmpegError as exc:
            raise NanoSam2Error(f"{self.path}: the video cannot be decoded ({exc})") from None

    def _seek(self, index: int) -> None:
        """Decode from the keyframe at or before ``index`` (from the start where seeking lands after it)."""
        if self.timed and index > 0:
            self._container.seek(self.pts[index], stream=self._container.streams.video[0], backward=True)
            frames = self._decode()  # the seek flushed the decoder
            key = next((item for item in frames if item[1].key_frame), None)
            if key is not None and key[0] <= index:
                # Frames shown before the keyframe but decoded after it (open-GOP leading pictures)
                # reference frames before the seek point: they are skipped, never cached.
                self._frames, self._next, self._floor = frames, key[0] + 1, key[0]
                self._keep(key[0], key[1])
                return
        self._rewind()

    def _keep(self, index: int, frame: Any) -> None:
        array = frame.to_ndarray(format="rgb24")
        self.cache[index] = array
        self._cached_bytes += array.nbytes
        while len(self.cache) > 1 and self._cached_bytes > self.cache_bytes:
            self._cached_bytes -= self.cache.popitem(last=False)[1].nbytes

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} of a {self.length}-frame video")
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        if self._frames is None or not self._next <= index <= self._next + self.SEEK_AHEAD:
            self._seek(index)
        while index not in self.cache:
            assert self._frames is not None
            number, frame = next(self._frames, (None, None))
            if number is None or number > index:
                raise NanoSam2Error(f"{self.path}: frame {index} cannot be decoded")
            if number >= self._floor:
                self._next = number + 1
                self._keep(number, frame)
        return self.cache[index]
