#!/usr/bin/env python3
"""Prints the figures two report.json files share, side by side (before, after, difference).

    python3 models/tools/compare_reports.py BEFORE/report.json AFTER/report.json

For checking that a change left the report's numbers as they were: accuracy figures
(camvid-motion per bundle, encode and mode; CamVid test stills) are deterministic on one
machine, so any difference there is a change in behaviour; speed figures (frames per second
per clip and row) differ by run-to-run noise, and the ratio after/before says by how much.
Figures that only one report has are listed by name, not compared.
"""

from __future__ import annotations

import json
import sys
from typing import Dict, Tuple


def accuracy(report: Dict) -> Dict[Tuple, float]:
    out = {}
    for section in ("motion", "real_motion"):
        block = report.get(section) or {}
        for run in block.get("runs", []):
            out[(section, run["bundle"], run["encode"], run["mode"])] = 100.0 * run["miou"]
    for row in (report.get("stills") or {}).get("rows", []):
        out[("stills", row["bundle"], row["branch"], f"{row['images']} images")] = 100.0 * row["miou"]
    return out


def speed(report: Dict) -> Dict[Tuple, float]:
    out = {}
    for clip in report.get("speed", []):
        size = f"{clip['width']}x{clip['height']}"
        for row in clip["rows"]:
            out[("speed", size, row["name"], row.get("bundle") or "", row.get("mode") or "")] = row["fps"]
    for clip in report.get("decoders", []):
        size = f"{clip['width']}x{clip['height']}"
        for row in clip["rows"]:
            out[("decoders", size, row["name"])] = row["fps"]
    return out


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (json.load(open(p)) for p in argv[1:])
    for name, r in (("before", before), ("after", after)):
        env = r["environment"]
        print(f"{name}: {argv[1 if name == 'before' else 2]}, profile {r['profile']}, vss {env['vss']}, {env['cpu']}")
    a, b = accuracy(before), accuracy(after)
    print("\naccuracy (mIoU): before | after | after - before")
    for key in sorted(a.keys() & b.keys()):
        print(f"  {' '.join(key):60s} {a[key]:7.2f} | {b[key]:7.2f} | {b[key] - a[key]:+.2f}")
    s, t = speed(before), speed(after)
    print("\nspeed (fps): before | after | after / before")
    ratios = []
    for key in sorted(s.keys() & t.keys()):
        ratio = t[key] / s[key] if s[key] else float("nan")
        ratios.append(ratio)
        print(f"  {' '.join(key):60s} {s[key]:7.1f} | {t[key]:7.1f} | {ratio:.2f}x")
    if ratios:
        ratios.sort()
        print(f"  median ratio {ratios[len(ratios) // 2]:.2f}x over {len(ratios)} rows")
    only = sorted((a.keys() | s.keys()) ^ (b.keys() | t.keys()))
    if only:
        print("\nin one report only:")
        for key in only:
            side = "before" if key in a or key in s else "after"
            print(f"  {side}: {' '.join(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
