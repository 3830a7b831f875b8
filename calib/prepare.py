"""Calibration data from SA-1B: the encoder's inputs (and, optionally, decoder samples).

    python -m calib.prepare --images DIR [--chunks sa_000000,sa_000001 | --chunks-file F]
                            -n 512 --seed 0 --out calib/sa1_512.npy
                            [--encoder image_encoder.onnx --decoder-samples 32]

Images are drawn in a seeded order from the chosen chunks, preprocessed with exactly the
runtime's preprocessing (nanosam2.transforms.preprocess_image), and stored as one float32
array [n, 3, S, S] (memory-mapped, written under a temporary name). Unreadable images are
skipped and counted. A manifest OUT.json lists the files. With --encoder, the first
--decoder-samples images are also encoded (ONNX Runtime, CPU) and stored with prompts from
SA-1B's JSON annotations (sampled when absent) in OUT.decoder.npz, for calibrating the decoder.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nanosam2 import contract as C
from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_output_file, staged
from nanosam2.utils.outputs import check_replaceable_file, record_has
from nanosam2.utils.cli import ArgumentParser, positive_int, run_cli, setup_logging
from nanosam2.utils.lazy_import import require
from nanosam2.utils.ort_session import open_session
from calib.sa1b import annotation_prompts, find_images, read_chunk_list, sample_images
from nanosam2.data.sa1b_files import parse_chunks

logger = logging.getLogger("calib.prepare")

PROMPTS_PER_IMAGE = 4  # 2 boxes + 2 single clicks per decoder sample
POINTS_PER_PROMPT = 3  # box corners + padding, or click + padding (+1 pad)


def manifest_path(out: Path) -> Path:
    return out.with_suffix(".json")


def decoder_path(out: Path) -> Path:
    return out.with_suffix(".decoder.npz")


def prepare(images: str, out: str | Path, count: int, seed: int = 0, chunks: list[str] | None = None,
            image_size: int | None = None, encoder: str | None = None, decoder_samples: int = 32,
            progress: bool = True) -> dict:
    """Write the calibration files together (data, manifest, decoder samples); returns the manifest.
    ``image_size``: the model's input side (default: the --encoder's, else SAM2.1's 1024)."""
    if count < 1:
        raise NanoSam2Error("-n must be at least 1")
    graph_size = None
    if encoder:
        from nanosam2.utils.onnx_passes import read_metadata

        contract = read_metadata(encoder)
        contract.expect(C.ENCODER, encoder)
        graph_size = contract.image_size
    if image_size is not None and graph_size is not None and image_size != graph_size:
        raise NanoSam2Error(f"--image-size {image_size}: the --encoder {encoder} takes {graph_size} px images "
                            "(leave --image-size out to follow it)")
    image_size = C.check_image_size(image_size or graph_size or T.IMAGE_SIZE)
    out_path = Path(out)
    if out_path.suffix != ".npy":
        raise NanoSam2Error(f"--out must end in .npy (got {out_path.name})")
    outputs = [out_path, manifest_path(out_path)] + ([decoder_path(out_path)] if encoder else [])
    for path in outputs:
        check_output_file(path, inputs=[images, encoder])
    ours = record_has(manifest_path(out_path), "images", "count", "image_size")  # the manifest says it wrote them
    for path in outputs:
        check_replaceable_file(path, "calib.prepare", lambda _: ours)
    files = find_images(images, chunks)
    chosen: list[str] = []
    skipped: list[str] = []
    shapes: list[tuple[int, int]] = []
    bar = require("tqdm", "progress bars").tqdm(total=count, desc="calibration images", disable=not progress)
    with staged(outputs) as temps:
        data = np.lib.format.open_memmap(temps[0], mode="w+", dtype=np.float32, shape=(count, 3, image_size, image_size))
        for path, rgb in sample_images(files, count, seed):
            if len(chosen) == count:
                break
            if rgb is None:
                skipped.append(str(path))
                logger.warning("skipping unreadable image %s", path)
                continue
            data[len(chosen)] = T.preprocess_image(rgb, image_size)[0]
            chosen.append(str(path))
            shapes.append(rgb.shape[:2])
            bar.update(1)
        bar.close()
        if len(chosen) < count:
            raise NanoSam2Error(f"only {len(chosen)} readable images for -n {count} ({len(skipped)} unreadable)")
        data.flush()
        del data
        manifest = {"images": chosen, "skipped": skipped, "seed": seed, "count": count, "image_size": image_size,
                    "pixel_mean": list(T.PIXEL_MEAN), "pixel_std": list(T.PIXEL_STD), "source": str(images)}
        if encoder:
            write_decoder_samples(temps[0], temps[2], encoder, chosen[:decoder_samples], shapes, seed, image_size)
            manifest["decoder"] = str(decoder_path(out_path))
        temps[1].write_text(json.dumps(manifest, indent=1))
    logger.info("wrote %s (%d images, %d unreadable skipped)", out_path, count, len(skipped))
    return manifest


def write_decoder_samples(calibration_file: Path, target: Path, encoder_onnx: str, files: list[str],
                          shapes: list[tuple[int, int]], seed: int, image_size: int = T.IMAGE_SIZE) -> Path:
    """Encoder outputs of ``files`` plus prompts, stacked per sample, written to ``target`` (.npz)."""
    session = open_session(encoder_onnx, purpose="encoding calibration images")
    calibration = np.load(calibration_file, mmap_mode="r")
    rng = np.random.default_rng(seed + 1)
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in C.DECODER_INPUTS}
    for index, file in enumerate(files):
        features = dict(zip(C.ENCODER_OUTPUTS, session.run(list(C.ENCODER_OUTPUTS),
                                                           {C.IMAGE: np.ascontiguousarray(calibration[index : index + 1])})))
        boxes, points = annotation_prompts(Path(file), rng, PROMPTS_PER_IMAGE, shapes[index])
        half = PROMPTS_PER_IMAGE // 2
        prompts = T.pad_prompts([
            T.build_prompts(shapes[index], boxes=boxes[:half], image_size=image_size),
            T.build_prompts(shapes[index], points=points[half:, None], labels=np.ones((PROMPTS_PER_IMAGE - half, 1)),
                            image_size=image_size),
        ])
        for name in C.ENCODER_OUTPUTS:
            arrays[name].append(features[name])
        for key, value in C.prompt_feed(prompts).items():
            arrays[key].append(value)
    with open(target, "wb") as handle:
        stacked: dict[str, Any] = {name: np.stack(values) for name, values in arrays.items()}
        np.savez(handle, **stacked)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m calib.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="SA-1B root (chunk folders sa_XXXXXX/ or images directly)")
    parser.add_argument("--chunks", help="chunk folders to draw from: comma-separated names or a text file of them "
                                          "(default: all)")
    parser.add_argument("--chunks-file", help="text file with one chunk folder per line")
    parser.add_argument("-n", "--num-images", type=positive_int, default=512, help="images to keep (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--out", default="calib/sa1_512.npy", help="output .npy (default calib/sa1_512.npy)")
    parser.add_argument("--image-size", type=int,
                        help="model input side (default: the --encoder's, else 1024; export.onnx --image-size)")
    parser.add_argument("--encoder", help="FP32 image_encoder.onnx: also write decoder calibration samples")
    parser.add_argument("--decoder-samples", type=positive_int, default=32, help="images encoded for the decoder (default 32)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    chunks = parse_chunks(args.chunks) or (read_chunk_list(args.chunks_file) if args.chunks_file else None)
    manifest = prepare(args.images, args.out, args.num_images, args.seed, chunks, args.image_size, args.encoder,
                       args.decoder_samples)
    print(f"wrote {args.out}: {manifest['count']} images ({len(manifest['skipped'])} unreadable skipped)"
          + (f"; decoder samples {manifest['decoder']}" if "decoder" in manifest else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
