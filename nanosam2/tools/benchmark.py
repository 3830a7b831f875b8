"""Seed-compatible encoder benchmark: ``python nanosam2/tools/benchmark.py --config=sam2.1_hiera_t``.

Times the image encoder (trunk + neck) on a 1x3x1024x1024 input with random weights, fp32 and
(on CUDA) fp16/bf16 autocast, then again with torch.compile - like the seed, but the clock is
read after ``torch.cuda.synchronize()`` (the seed's GPU figures measured kernel launches).
``--config`` takes SAM2.1 configs (``sam2.1_hiera_t``) or nanosam2 ones (``nanosam2.1_resnet18``).
"""

from __future__ import annotations

from typing import Sequence

from nanosam2.utils.cli import ArgumentParser, non_negative_int, positive_int, run_cli, setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="nanosam2/tools/benchmark.py", description=__doc__)
    parser.add_argument("--config", default="sam2.1_hiera_t", help="sam2.1_hiera_{t,s,b+,l} or nanosam2.1_<backbone>")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--runs", type=positive_int, help="timed runs (default 50 on CPU, 100 on CUDA, as the seed)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed warm-up runs (default 2)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from nanosam2.utils.timing import time_call
    from nanosam2.build import build_model
    from nanosam2.utils.torch_device import resolve_device

    device = resolve_device(args.device).type
    model = build_model(args.config, device=device)
    encoder = model.image_encoder.eval()
    runs = args.runs or (100 if device == "cuda" else 50)
    sync = torch.cuda.synchronize if device == "cuda" else None
    image = torch.ones(1, 3, 1024, 1024, device=device)
    dtypes = [torch.float32] + ([torch.float16, torch.bfloat16] if device == "cuda" else [])
    print(f"| device | dtype | batch_size | FPS (with torch.compile) |  [{args.config}, random weights, synchronised]")
    for dtype in dtypes:
        fps = []
        for compiled in ([False] if args.no_compile else [False, True]):
            module = torch.compile(encoder) if compiled else encoder

            def step(module=module, dtype=dtype) -> None:
                with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                    module(image)

            fps.append(time_call(step, runs, args.warmup, sync).fps)
        cell = f"{fps[0]:.1f}" + (f" ({fps[1]:.1f})" if len(fps) > 1 else "")
        print(f"| {device.upper()} | {str(dtype).replace('torch.', '')} | 1 | {cell} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
