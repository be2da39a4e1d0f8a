"""Dynamic routing at inference: how many gates close and how many MACs actually run.

    .venv/bin/python models/dynroute_gates.py                     # best.pt, CamVid test, 360x480
    .venv/bin/python models/dynroute_gates.py --checkpoint models/.cache/train/dynroute/latest.pt

One frame at a time (batch 1, as the element runs it), eval mode. Per frame: the fraction of
gates that are exactly 0 (closed) among the paths of the cells that ran, the cells skipped
because no open path reached them, and the multiply-accumulates of every convolution and
linear layer that actually executed (forward hooks fire only for modules that ran), against
the same network with every path computed (2.10 GMAC at 360x480, the trunk's included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_image import build_segmenter, executed_macs, load_split  # noqa: E402
from vss_models import paths  # noqa: E402


def run_counted(net, x: torch.Tensor):
    """(MACs of the convolutions and linear layers that ran, the per-layer gates)."""
    (_, _, gates), macs = executed_macs(net, lambda: net.run(x, True))
    return macs, gates


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the dynroute best.pt")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt_path = args.checkpoint or paths.CACHE_DIR / "train" / "dynroute" / "best.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = build_segmenter("dynroute")
    model.net.load_state_dict(ckpt["model"])
    model.eval()
    net = model.net
    data = load_split(args.split, args.limit)

    # Which (cell, path) slots exist at all: every layer has 4 cells; up/down only where a
    # neighbouring scale exists.
    mask = torch.stack([torch.stack([c.path_mask for c in layer.cells]) for layer in net.layers])  # [L,4,3]
    with torch.no_grad():
        # Reference: all paths computed = every gate forced open (bias large, weight 0).
        x0 = model.normalize(torch.from_numpy(np.ascontiguousarray(data.images[0].transpose(2, 0, 1)))[None])
        saved = [
            (c.gate_fc.weight.clone(), c.gate_fc.bias.clone()) for layer in net.layers for c in layer.cells
        ]
        for layer in net.layers:
            for c in layer.cells:
                c.gate_fc.weight.zero_()
                c.gate_fc.bias.fill_(10.0)
        full_macs, _ = run_counted(net, x0)
        k = 0
        for layer in net.layers:
            for c in layer.cells:
                c.gate_fc.weight.copy_(saved[k][0])
                c.gate_fc.bias.copy_(saved[k][1])
                k += 1

        closed, skipped, macs, gate_mean = [], [], [], []
        for image in data.images:
            x = model.normalize(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None])
            m, gates = run_counted(net, x)
            g = torch.stack(gates, 1)[0]  # [L, 4, 3]
            ran = torch.zeros(g.shape[0], g.shape[1], dtype=torch.bool)
            ran[0] = True  # the trunk feeds every node of the first layer
            for li in range(1, g.shape[0]):
                prev = g[li - 1] > 0
                reach = prev[:, 1].clone()
                reach[:-1] |= prev[1:, 0]
                reach[1:] |= prev[:-1, 2]
                ran[li] = reach
            # Every cell can be reached with every gate open.
            possible = torch.ones_like(ran)
            slots = (mask > 0) & ran[:, :, None]
            closed.append(float(((g == 0) & slots).sum()) / max(1, int(slots.sum())))
            skipped.append(1.0 - float(ran.sum()) / float(possible.sum()))
            gate_mean.append(float(g[slots].mean()))
            macs.append(m)
    macs_a = np.array(macs, dtype=np.float64)
    result = {
        "checkpoint": str(ckpt_path),
        "step": ckpt["state"]["step"],
        "split": args.split,
        "images": len(data),
        "size": list(data.images[0].shape[:2]),
        "gates_closed_mean": float(np.mean(closed)),
        "gates_closed_min": float(np.min(closed)),
        "gates_closed_max": float(np.max(closed)),
        "gate_value_mean_of_ran": float(np.mean(gate_mean)),
        "cells_skipped_mean": float(np.mean(skipped)),
        "gmac_all_open": full_macs / 1e9,
        "gmac_run_mean": float(macs_a.mean() / 1e9),
        "gmac_run_min": float(macs_a.min() / 1e9),
        "gmac_run_max": float(macs_a.max() / 1e9),
        "macs_fraction_mean": float(macs_a.mean() / full_macs),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
