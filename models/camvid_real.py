#!/usr/bin/env python3
"""Generates camvid-real: CamVid's val sequence 0016E5 (101 labelled frames at 15 Hz) encoded
four ways (P-only and B-frames, I-frame every 12 and every 6 frames), the real-motion benchmark.

    .venv/bin/python models/camvid_real.py                 # -> .cache/camvid-real/0016E5
    .venv/bin/python models/camvid_real.py --out /tmp/cr

Output: <out>/0016E5/{p12,b12,p6,b6}.mp4, labels/000000.png ..., meta.json. A complete folder of
the same version is left as it is. See vss_models/camvid_real.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import camvid_real  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=camvid_real.DEFAULT_OUT)
    parser.add_argument("--camvid", type=Path, help="CamVid folder (default: $VSS_DATA/camvid)")
    args = parser.parse_args()
    start = time.perf_counter()
    seq_dir, made = camvid_real.generate(args.out, args.camvid)
    print(f"{seq_dir}: {'generated' if made else 'already complete'}, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
