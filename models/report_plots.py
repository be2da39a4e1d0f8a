#!/usr/bin/env python3
"""The report's plots, drawn from report.json (cargo run --release --example report).

    .venv/bin/python models/report_plots.py report/report.json report/
    .venv/bin/python models/report_plots.py --matplotlib-version

Writes miou_vs_ms.png (accuracy against cost per frame, camvid-motion), miou_vs_distance.png
(mIoU by frames since the codec's I-frame), speed.png (frames per second per configuration and
clip) and decoders.png (decode throughput). Needs matplotlib (models/requirements-report.txt;
the report installs it into the venv when it is missing).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List

MODE_COLOURS = {
    "full": "#1f77b4",
    "lowres": "#ff7f0e",
    "fusion": "#2ca02c",
    "warp": "#d62728",
    "distributed": "#9467bd",
}
BUNDLE_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
DPI = 120


def colour(mode: str) -> str:
    return MODE_COLOURS.get(mode, "#7f7f7f")


def pct(v):
    return None if v is None else 100.0 * v


def subtitle(report: Dict) -> str:
    env = report["environment"]
    return f"profile {report['profile']}, {env['cpu']}, {env['cores']} cores, commit {env['commit']}"


def miou_vs_ms(report: Dict, out: Path, plt) -> None:
    from matplotlib import ticker

    motion = report["motion"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    bundles = sorted({r["bundle"] for r in motion["runs"]})
    markers = {b: BUNDLE_MARKERS[i % len(BUNDLE_MARKERS)] for i, b in enumerate(bundles)}
    labelled = []  # (x, y, text) already written: identical points get one label
    for r in motion["runs"]:
        if r["miou"] is None or r["compute_ms"] is None:
            continue
        x, y = r["compute_ms"]["mean"], pct(r["miou"])
        filled = r["encode"] == "p"
        ax.scatter(
            x,
            y,
            s=70,
            marker=markers[r["bundle"]],
            facecolors=colour(r["mode"]) if filled else "none",
            edgecolors=colour(r["mode"]),
            linewidths=1.5,
            zorder=3,
        )
        # One label per cluster of the same mode: fill and marker already tell encode and bundle.
        text = r["mode"]
        near = [
            (lx, ly)
            for lx, ly, t in labelled
            if t == text and abs(math.log10(lx / x)) < 0.12 and abs(ly - y) < 0.4
        ]
        if near:
            continue
        labelled.append((x, y, text))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for p in motion["peers"]:
        if p["miou"] is None:
            continue
        x, y = p["compute_ms_mean"], pct(p["miou"])
        ax.scatter(x, y, s=140, marker="*", color="black", zorder=4)
        ax.annotate("Python per-frame", (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
    handles = [
        plt.Line2D([], [], linestyle="", marker="o", color=colour(m), label=m, markersize=8)
        for m in dict.fromkeys(r["mode"] for r in motion["runs"])
    ]
    handles += [
        plt.Line2D([], [], linestyle="", marker=markers[b], color="grey", label=b, markersize=8)
        for b in bundles
    ]
    handles.append(plt.Line2D([], [], linestyle="", marker="o", color="grey", label="P encode (filled)"))
    handles.append(
        plt.Line2D(
            [], [], linestyle="", marker="o", markerfacecolor="none", color="grey", label="B encode (hollow)"
        )
    )
    if motion["peers"]:
        handles.append(
            plt.Line2D(
                [], [], linestyle="", marker="*", color="black", markersize=11, label="Python per-frame (P)"
            )
        )
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("segmentation ms per frame (mean compute time, log scale)")
    ax.set_ylabel("mIoU % on camvid-motion")
    seqs = motion["sequences"]
    ax.set_title(f"Accuracy vs cost per frame, camvid-motion ({seqs} sequence{'s' if seqs != 1 else ''})")
    fig.text(0.01, 0.01, subtitle(report), fontsize=7, color="grey")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "miou_vs_ms.png", dpi=DPI)
    plt.close(fig)


def miou_vs_distance(report: Dict, out: Path, plt) -> None:
    motion = report["motion"]
    encodes = list(dict.fromkeys(r["encode"] for r in motion["runs"]))
    fig, axes = plt.subplots(
        1, len(encodes), figsize=(5.5 * len(encodes) + 2.5, 4.5), squeeze=False, sharey=True
    )
    bundles = sorted({r["bundle"] for r in motion["runs"]})
    styles = ["-", "--", ":", "-."]
    for ax, encode in zip(axes[0], encodes):
        for r in motion["runs"]:
            if r["encode"] != encode:
                continue
            points = [(p["d"], pct(p["miou"])) for p in r["per_distance"] if p["miou"] is not None]
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                styles[bundles.index(r["bundle"]) % len(styles)],
                marker="o",
                markersize=3,
                color=colour(r["mode"]),
                label=f"{r['bundle']} {r['mode']}",
            )
        ax.set_title(f"encode {encode.upper()} ({'P-only, ref=1' if encode == 'p' else 'B-frames, ref=3'})")
        ax.set_xlabel("frames since the codec's I-frame (d)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mIoU % on camvid-motion")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.suptitle("mIoU vs distance from the keyframe")
    fig.text(0.01, 0.01, subtitle(report), fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1 - 2.4 / fig.get_figwidth(), 1))
    fig.savefig(out / "miou_vs_distance.png", dpi=DPI)
    plt.close(fig)


def row_label(row: Dict) -> str:
    if row["kind"] == "vss":
        label = f"{row['bundle']} {row['mode']}"
        return label + (f" ({row['variant']})" if row.get("variant") else "")
    if row["kind"] in ("bare", "python"):
        return f"{row['name']} [{row['bundle']}]"
    return row["name"]


def row_colour(row: Dict) -> str:
    if row["kind"] == "vss":
        return colour(row["mode"])
    return {"decode": "#bcbd22", "bare": "#8c564b", "python": "#000000"}.get(row["kind"], "#7f7f7f")


def speed(report: Dict, out: Path, plt) -> None:
    clips = report["speed"]
    rows = max(len(c["rows"]) for c in clips)
    fig, axes = plt.subplots(1, len(clips), figsize=(7 * len(clips), 1.2 + 0.42 * rows), squeeze=False)
    for ax, clip in zip(axes[0], clips):
        labels: List[str] = [row_label(r) for r in clip["rows"]]
        fps = [r["fps"] for r in clip["rows"]]
        y = range(len(fps))
        ax.barh(list(y), fps, color=[row_colour(r) for r in clip["rows"]])
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("frames per second (log scale)")
        ax.set_title(f"{clip['width']}x{clip['height']} ({Path(clip['clip']).name})", fontsize=10)
        full = {
            r["bundle"]: r["fps"]
            for r in clip["rows"]
            if r["kind"] == "vss" and r["mode"] == "full" and not r.get("variant")
        }
        for i, r in enumerate(clip["rows"]):
            base = full.get(r["bundle"]) or full.get("camvid-espnet")
            text = f" {r['fps']:.1f}" + (f"  ({r['fps'] / base:.2f}x full)" if base else "")
            ax.text(r["fps"], i, text, va="center", fontsize=7)
        ax.set_xlim(right=max(fps) * 20)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle("Speed per configuration, one run")
    fig.text(0.01, 0.01, subtitle(report), fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "speed.png", dpi=DPI)
    plt.close(fig)


def decoders(report: Dict, out: Path, plt) -> None:
    clips = report["decoders"]
    fig, axes = plt.subplots(1, len(clips), figsize=(6.5 * len(clips), 3.9), squeeze=False)
    for ax, clip in zip(axes[0], clips):
        names = [r["name"] for r in clip["rows"]]
        fps = [r["fps"] for r in clip["rows"]]
        colours = ["#1f77b4" if r["kind"] == "gstreamer" else "#ff7f0e" for r in clip["rows"]]
        y = list(range(len(fps)))
        ax.barh(y, fps, color=colours)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        base = next((r["fps"] for r in clip["rows"] if r["name"] == "avdec_h264"), None)
        for i, v in enumerate(fps):
            ax.text(v, i, f" {v:.0f}" + (f" ({v / base:.2f}x)" if base else ""), va="center", fontsize=7)
        ax.set_xlim(right=max(fps) * 1.9)
        ax.set_xlabel("frames per second (median of the rounds)")
        ax.set_title(f"{clip['width']}x{clip['height']}, {clip['frames']} frames", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color="#1f77b4", label="GStreamer (system FFmpeg)"),
        plt.Rectangle((0, 0), 1, 1, color="#ff7f0e", label="PyAV (its own FFmpeg)"),
    ]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="center right")
    fig.suptitle("Decode throughput, motion vectors exported or not")
    fig.text(0.01, 0.01, subtitle(report), fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out / "decoders.png", dpi=DPI)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, nargs="?", help="report.json")
    parser.add_argument("out", type=Path, nargs="?", help="folder for the PNGs")
    parser.add_argument("--matplotlib-version", action="store_true", help="print it and exit")
    args = parser.parse_args(argv)

    import matplotlib

    if args.matplotlib_version:
        print(matplotlib.__version__)
        return 0
    if args.report is None or args.out is None:
        parser.error("report.json and the output folder are required")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        report = json.loads(args.report.read_text())
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"{args.report}: {e}")
    args.out.mkdir(parents=True, exist_ok=True)
    for draw in (miou_vs_ms, miou_vs_distance, speed, decoders):
        draw(report, args.out, plt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
