"""What the image and the video predictors share: their runners (one per graph of one export, each
checked to come from the encoder's model), their identity, closing, and the time of each stage."""

from __future__ import annotations

import time
from typing import Any

from nanosam2 import contract as C
from nanosam2.inference.runner import Runner


class Pipeline:
    """Runners by graph name (``None``: a graph this pipeline runs without), opened from one export."""

    def __init__(self, runners: dict[str, Runner | None]) -> None:
        self._runners = {name: runner for name, runner in runners.items() if runner is not None}
        encoder = self._runners[C.ENCODER]
        for name, runner in self._runners.items():
            if name != C.ENCODER:
                C.check_pair(encoder.contract, runner.contract, str(encoder.path), str(runner.path), name)
        self.stage_ms: dict[str, float] = {}  # accumulated per stage (timed by :meth:`run`)
        self.stage_calls: dict[str, int] = {}

    @property
    def runners(self) -> dict[str, Runner]:
        return dict(self._runners)

    def identity(self) -> dict[str, Any]:
        """What produced this pipeline's answers (every runner's identity)."""
        return {name: runner.identity() for name, runner in self._runners.items()}

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, stage: str, runner: Runner, feed: dict[str, Any], host: bool = True) -> dict[str, Any]:
        """One timed graph call; ``host=False`` leaves the outputs on the runner's device."""
        start = time.perf_counter()
        out = runner.infer(feed, copy_outputs_to_host=host)
        self.stage_ms[stage] = self.stage_ms.get(stage, 0.0) + 1000 * (time.perf_counter() - start)
        self.stage_calls[stage] = self.stage_calls.get(stage, 0) + 1
        return out
