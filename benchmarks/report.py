"""Benchmark results: one record per (backbone, backend, precision, stage); JSON, table, plots."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanosam2.utils.atomic import atomic_path

STAGES = ("encoder", "decoder_1", "decoder_16", "decoder_64", "pipeline")
EVERYTHING = "everything"  # segment everything: one image, a 32x32 point grid, no crops
SCHEMA_VERSION = 1


@dataclass
class Measurement:
    backbone: str
    backend: str  # torch-eager, torch-compile, onnxruntime-cpu, onnxruntime-cuda, tensorrt
    precision: str
    stage: str
    median_ms: float | None = None
    p90_ms: float | None = None
    runs: int = 0
    skipped: str | None = None  # the reason, when the machine cannot run it

    @property
    def fps(self) -> float | None:
        return 1000.0 / self.median_ms if self.median_ms else None


@dataclass
class Report:
    machine: dict
    measurements: list[Measurement] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        rows = [{**asdict(m), "fps": m.fps} for m in self.measurements]
        return json.dumps({"schema": SCHEMA_VERSION, "machine": self.machine, "measurements": rows,
                           "extra": self.extra}, indent=1)

    def configurations(self) -> list[tuple[str, str, str]]:
        seen: dict[tuple[str, str, str], None] = {}
        for m in self.measurements:
            seen[(m.backbone, m.backend, m.precision)] = None
        return list(seen)

    def get(self, config: tuple[str, str, str], stage: str) -> Measurement | None:
        return next((m for m in self.measurements if (m.backbone, m.backend, m.precision) == config and m.stage == stage), None)

    def table(self) -> str:
        """Markdown: one row per configuration, median ms per stage, pipeline FPS, the time the
        pipeline spends outside its two graph calls (pre/post-processing and glue) with its share,
        and segment-everything seconds per image (Meta's generator rows have only that)."""
        lines = ["| backbone | backend | precision | encoder ms | decoder 1 prompt ms | decoder 16 prompts ms | "
                 "decoder 64 prompts ms | pipeline ms | pipeline FPS | outside graphs ms (%) | everything s |",
                 "|" + " --- |" * 11]
        for config in self.configurations():
            cells = []
            reason = None
            for stage in STAGES:
                m = self.get(config, stage)
                if m is None or m.median_ms is None:
                    reason = reason or (m.skipped if m else None)
                    cells.append("-")
                else:
                    cells.append(f"{m.median_ms:.1f}")
            pipeline = self.get(config, "pipeline")
            fps = f"{pipeline.fps:.2f}" if pipeline and pipeline.fps else "-"
            host = self.get(config, "host")
            outside = f"{host.median_ms:.1f} ({100 * host.median_ms / pipeline.median_ms:.0f} %)" \
                if host and host.median_ms is not None and pipeline and pipeline.median_ms else "-"
            everything = self.get(config, EVERYTHING)
            seconds = f"{everything.median_ms / 1000:.2f}" if everything and everything.median_ms else "-"
            row = f"| {' | '.join(config)} | {' | '.join(cells)} | {fps} | {outside} | {seconds} |"
            empty = cells == ["-"] * len(STAGES) and seconds == "-"
            lines.append(row if reason is None or not empty else f"| {' | '.join(config)} | skipped: {reason} ||||||||")
        return "\n".join(lines)

    def write(self, out_dir: Path, stem: str) -> dict[str, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"json": out_dir / f"{stem}.json", "table": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
        with atomic_path(paths["json"]) as tmp:
            tmp.write_text(self.to_json())
        with atomic_path(paths["table"]) as tmp:
            tmp.write_text(self.table() + "\n")
        plot_fps(self, paths["plot"])
        if self.extra.get("coco_miou"):
            paths["accuracy_plot"] = out_dir / f"{stem}-accuracy.png"
            plot_accuracy(self, paths["accuracy_plot"])
        return paths


def plot_fps(report: Report, path: Path) -> None:
    """Bar chart of pipeline FPS (and encoder FPS) per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in report.configurations() if (m := report.get(c, "pipeline")) and m.fps]
    labels = ["\n".join(c) for c in configs]
    pipeline = [report.get(c, "pipeline").fps for c in configs]  # type: ignore[union-attr]
    encoder = [(m.fps if (m := report.get(c, "encoder")) and m.fps else 0.0) for c in configs]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(configs)), 4.5))
    x = range(len(configs))
    ax.bar([i - 0.2 for i in x], encoder, width=0.4, label="image encoder")
    ax.bar([i + 0.2 for i in x], pipeline, width=0.4, label="full predict pipeline")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("frames per second (batch 1)")
    ax.set_title(f"nanosam2 on {report.machine.get('cpu', '?')} ({report.machine.get('date', '')[:10]})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_accuracy(report: Report, path: Path) -> None:
    """COCO mIoU (all) against full-pipeline FPS, one point per configuration with results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for key, miou in report.extra["coco_miou"].items():
        pipeline = report.get(tuple(key.split("/")), "pipeline")  # type: ignore[arg-type]
        if pipeline is None or not pipeline.fps:
            continue
        ax.scatter(pipeline.fps, miou)
        ax.annotate(key, (pipeline.fps, miou), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("full predict pipeline FPS (batch 1)")
    ax.set_ylabel("COCO val2017 box-prompt mIoU (all)")
    ax.set_title("accuracy vs speed", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
