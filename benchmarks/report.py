"""Benchmark results: one record per (backbone, backend, precision, stage); JSON, table, plots."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanosam2.inference.video import STAGES as TRACK_STAGES  # the tracker's graphs, in call order
from nanosam2.utils.atomic import atomic_path

STAGES = ("encoder", "decoder_1", "decoder_16", "decoder_64", "pipeline")
EVERYTHING = "everything"  # segment everything: one image, a 32x32 point grid, no crops
SCHEMA_VERSION = 1
TRACK_FRAME = "frame"  # a whole tracked frame (every object), wall time


def track_stage(objects: int, stage: str) -> str:
    """The stage name of a tracking measurement: ``track1_memory_attention``, ``track3_frame``..."""
    return f"track{objects}_{stage}"


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
            if all(m.stage.startswith("track") for m in self.measurements if (m.backbone, m.backend, m.precision) == config):
                continue  # tracking only (Meta's video predictor): its own table
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

    def tracked_configurations(self) -> list[tuple[str, str, str, int]]:
        """(backbone, backend, precision, objects) of every tracking measurement, in run order."""
        seen: dict[tuple[str, str, str, int], None] = {}
        for m in self.measurements:
            if m.stage.startswith("track") and m.stage.endswith("_" + TRACK_FRAME):
                seen[(m.backbone, m.backend, m.precision, int(m.stage[5:].split("_")[0]))] = None
        return list(seen)

    def tracking_table(self) -> str:
        """Markdown: per tracked frame, median ms of each stage (summed over objects), the frame, FPS,
        and the process's peak resident memory while tracking (its growth in brackets)."""
        rows = self.tracked_configurations()
        if not rows:
            return ""
        video = self.extra.get("tracking_video")
        heading = (f"Video tracking, {video['size'][0]}x{video['size'][1]}, frames {video['timed_from_frame']}.."
                   f"{video['frames'] - 1} timed" if video else "Video tracking")
        lines = [heading + " (median ms per frame, stages summed over the objects):", "",
                 "| model | backend | precision | objects | encoder | memory attention | decoder | memory encoder | "
                 "frame | FPS | peak RSS MB (+growth) |", "|" + " --- |" * 11]
        memory = self.extra.get("tracking_memory_mb", {})
        for *config, objects in rows:
            cells = [f"{m.median_ms:.1f}" if (m := self.get(tuple(config), track_stage(objects, s)))  # type: ignore[arg-type]
                     and m.median_ms is not None else "-" for s in (*TRACK_STAGES, TRACK_FRAME)]
            frame = self.get(tuple(config), track_stage(objects, TRACK_FRAME))  # type: ignore[arg-type]
            fps = f"{frame.fps:.2f}" if frame and frame.fps else "-"
            mem = memory.get(f"{'/'.join(config)}/{objects}")
            peak = f"{mem['peak']:.0f} (+{mem['added']:.0f})" if mem else "-"
            lines.append(f"| {' | '.join(config)} | {objects} | {' | '.join(cells)} | {fps} | {peak} |")
        return "\n".join(lines)

    def tradeoff_table(self) -> str:
        rows = self.extra.get("memory_tradeoff", [])
        if not rows:
            return ""
        jf = all("jf" in r for r in rows)  # J&F on a dataset (--vos-dataset)
        lines = ["Memory length (one object; IoU against the full-memory masks over every tracked frame"
                 + ("; J&F, J, F on the --vos-dataset set" if jf else "") + "):", "",
                 "| config | spatial memories | frame ms | memory attention ms | mean IoU vs full | min IoU vs full | "
                 "full-memory mask share |" + (" J&F | J | F |" if jf else ""), "|" + " --- |" * (10 if jf else 7)]
        for r in rows:
            share = r.get("full_mask_fraction", float("nan"))
            lines.append(f"| {r['config']} | {r['spatial_memories']} | {r['frame_ms']:.1f} | {r['memory_attention_ms']:.1f} "
                         f"| {r['mean_iou_vs_full']:.4f} | {r['min_iou_vs_full']:.4f} | {share:.4f} |"
                         + (f" {r['jf']:.2f} | {r['j']:.2f} | {r['f']:.2f} |" if jf else ""))
        return "\n".join(lines)

    def write(self, out_dir: Path, stem: str) -> dict[str, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"json": out_dir / f"{stem}.json", "table": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
        with atomic_path(paths["json"]) as tmp:
            tmp.write_text(self.to_json())
        with atomic_path(paths["table"]) as tmp:
            tmp.write_text("\n\n".join(t for t in (self.table(), self.tracking_table(), self.tradeoff_table()) if t) + "\n")
        plot_fps(self, paths["plot"])
        if self.tracked_configurations():
            paths["tracking_plot"] = out_dir / f"{stem}-tracking.png"
            plot_tracking(self, paths["tracking_plot"])
        if self.extra.get("coco_miou") or self.extra.get("vos_jf"):
            paths["accuracy_plot"] = out_dir / f"{stem}-accuracy.png"
            plot_accuracy(self, paths["accuracy_plot"])
        return paths


def save_figure(fig: Any, path: Path) -> None:
    """A finished matplotlib figure as a PNG, published whole (atomic), then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


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
    save_figure(fig, path)


def plot_tracking(report: Report, path: Path) -> None:
    """Stacked bars: per-frame time of each tracking stage, one bar per configuration and object count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.tracked_configurations()
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4.5))
    bottom = [0.0] * len(rows)
    for stage in TRACK_STAGES:
        values = [(m.median_ms or 0.0) if (m := report.get(tuple(r[:3]), track_stage(r[3], stage))) else 0.0  # type: ignore[arg-type]
                  for r in rows]
        ax.bar(range(len(rows)), values, bottom=bottom, label=stage.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(list(range(len(rows))), [f"{r[0]}\n{r[1]}\n{r[2]}\n{r[3]} obj" for r in rows], fontsize=7)
    ax.set_ylabel("ms per tracked frame (full memory bank)")
    ax.set_title(f"video tracking on {report.machine.get('cpu', '?')} ({report.machine.get('date', '')[:10]})", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_accuracy(report: Report, path: Path) -> None:
    """Accuracy against speed, one point per configuration with results: COCO mIoU (all) against the
    full predict pipeline's FPS, and video J&F against the tracker's FPS (one object), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, stage, xlabel, ylabel) for key, stage, xlabel, ylabel in (
        ("coco_miou", "pipeline", "full predict pipeline FPS (batch 1)", "COCO val2017 box-prompt mIoU (all)"),
        ("vos_jf", track_stage(1, TRACK_FRAME), "tracking FPS (one object)", "video J&F (%)"))
        if report.extra.get(key)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (key, stage, xlabel, ylabel) in zip(axes[0], panels):
        for config, value in report.extra[key].items():
            measured = report.get(tuple(config.split("/")), stage)  # type: ignore[arg-type]
            if measured is None or not measured.fps:
                continue
            ax.scatter(measured.fps, value)
            ax.annotate(config, (measured.fps, value), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title("accuracy vs speed", fontsize=9)
    save_figure(fig, path)
