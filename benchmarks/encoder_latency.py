"""PyTorch eager latency of the image encoder (trunk + neck) at 1x3x1024x1024, random weights.

``python -m benchmarks.encoder_latency --backbones resnet18,hiera_s --runs 10``
prints parameters, median and p90 per model; on CUDA the clock is read after
``torch.cuda.synchronize()`` (the seed's benchmark did not synchronise).
"""

from __future__ import annotations

from typing import Sequence

from nanosam2.errors import NanoSam2Error
from nanosam2.utils.cli import ArgumentParser, non_negative_int, positive_int, run_cli
from nanosam2.utils.timing import time_call


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.run_all import default_backbones

    parser = ArgumentParser(prog="python -m benchmarks.encoder_latency", description=__doc__)
    parser.add_argument("--backbones", default=default_backbones(),
                        help="comma-separated students and/or SAM2.1 teachers (hiera_t/s/b+/l)")
    parser.add_argument("--runs", type=positive_int, default=10, help="timed runs (default 10)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed warm-up runs (default 2)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--image-size", type=positive_int, default=1024, help="square input side (default 1024)")
    args = parser.parse_args(argv)

    import torch

    from nanosam2.build import build_model, known_backbones
    from nanosam2.utils.torch_device import resolve_device

    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    unknown = [n for n in names if n not in known_backbones()]
    if unknown or not names:
        raise NanoSam2Error(f"unknown backbone(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known_backbones())}")
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    image = torch.randn(1, 3, args.image_size, args.image_size, device=device)
    print(f"| model | encoder params (M) | median ms | p90 ms | FPS |  ({args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, eager fp32)")
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, device=str(device))
        encoder = model.image_encoder
        params = sum(p.numel() for p in encoder.parameters()) / 1e6
        with torch.inference_mode():
            timing = time_call(lambda encoder=encoder: encoder(image), runs=args.runs, warmup=args.warmup, synchronize=sync)
        print(f"| {name} | {params:.2f} | {timing.median_ms:.1f} | {timing.p90_ms:.1f} | {timing.fps:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
