#!/usr/bin/env python3
"""How much context a correction crop needs: on every 10th frame of CamVid's val sequence
0016E5, each 120-pixel tile of the 480x360 frame segmented on its own crop (the tile grown by a
margin, sides rounded to 8 as vsssegment's correction does) against the bundle on the whole
frame, and the whole frame at a low resolution for comparison. Prints, per variant, the share of
tile pixels agreeing with the whole-frame result and the pixel accuracy against the labels.

    .venv/bin/python models/tools/crop_context.py camvid-espnet
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vss_models import camvid_real, paths  # noqa: E402
from vss_models.camvid import read_image, read_label  # noqa: E402

TILE, W, H, VOID = 120, 480, 360, 11


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "camvid-espnet"
    torch.set_num_threads(2)
    module = torch.jit.load(str(paths.BUNDLES_DIR / name / "model.pt"))

    def logits(rgb: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None]
        with torch.no_grad():
            out = module(x)
        return out[0] if isinstance(out, tuple) else out

    def correct(pred: np.ndarray, label: np.ndarray) -> tuple:
        valid = label != VOID
        return int((pred[valid] == label[valid]).sum()), int(valid.sum())

    tally: dict = {}
    for image_path, label_path in camvid_real.frames()[::10]:
        image, label = read_image(image_path), read_label(label_path)
        full = logits(image).argmax(1)[0].numpy()
        tally.setdefault("whole frame", []).append((1.0, *correct(full, label)))
        for scale in (0.5, 0.35):
            h, w = int(round(H * scale / 8) * 8), int(round(W * scale / 8) * 8)
            small = F.interpolate(
                torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(h, w), mode="bilinear", align_corners=False
            )
            small = small.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
            up = F.interpolate(logits(small), size=(H, W), mode="bilinear", align_corners=False)
            pred = up.argmax(1)[0].numpy()
            tally.setdefault(f"whole frame at {scale}", []).append(((pred == full).mean(), *correct(pred, label)))
        for margin in (24, 48, 72):
            agree, good, total = [], 0, 0
            for ty0 in range(0, H, TILE):
                for tx0 in range(0, W, TILE):
                    tx1, ty1 = tx0 + TILE, ty0 + TILE
                    cx0, cy0 = max(0, tx0 - margin), max(0, ty0 - margin)
                    cw = (min(W, tx1 + margin) - cx0 + 7) // 8 * 8
                    ch = (min(H, ty1 + margin) - cy0 + 7) // 8 * 8
                    cx1, cy1 = min(W, cx0 + cw), min(H, cy0 + ch)
                    cx0, cy0 = cx1 - cw, cy1 - ch
                    crop = logits(image[cy0:cy1, cx0:cx1]).argmax(1)[0].numpy()
                    part = crop[ty0 - cy0 : ty1 - cy0, tx0 - cx0 : tx1 - cx0]
                    agree.append((part == full[ty0:ty1, tx0:tx1]).mean())
                    g, t = correct(part, label[ty0:ty1, tx0:tx1])
                    good, total = good + g, total + t
            tally.setdefault(f"tile crops, margin {margin}", []).append((float(np.mean(agree)), good, total))
    for variant, rows in tally.items():
        a = np.array(rows, dtype=float)
        print(f"{name} {variant:24s} agrees with whole frame {a[:, 0].mean():.3f}  pixel accuracy {a[:, 1].sum() / a[:, 2].sum():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
