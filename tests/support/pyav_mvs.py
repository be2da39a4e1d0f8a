"""Independent motion-vector reader (PyAV with flags2=+export_mvs), same CSV layout as dump_mvs.

Usage: pyav_mvs.py INPUT OUT.csv   (writes OUT.csv and OUT.types.csv; frames in presentation order)
"""

import csv
import sys
from pathlib import Path

import av

# AVPictureType -> the letters dump_mvs writes (S stands for the rare switching types).
PICT_TYPES = {0: "?", 1: "I", 2: "P", 3: "B"}
FIELDS = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale"]


def main(src: str, out: str) -> None:
    out_path = Path(out)
    types_path = out_path.with_name(out_path.stem + ".types.csv")
    with av.open(src) as container, open(out_path, "w", newline="") as f, open(types_path, "w", newline="") as t:
        vectors = csv.writer(f)
        types = csv.writer(t)
        vectors.writerow(["frame"] + FIELDS)
        types.writerow(["frame", "pict_type"])
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for index, frame in enumerate(container.decode(stream)):
            types.writerow([index, PICT_TYPES.get(int(frame.pict_type), "S")])
            side = frame.side_data.get("MOTION_VECTORS")
            if side is None:
                continue
            arr = side.to_ndarray()
            for row in arr:
                vectors.writerow([index] + [int(row[name]) for name in FIELDS])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
