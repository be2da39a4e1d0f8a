#!/usr/bin/env python3
"""B-frame chaining experiment behind src/motion/refine.rs (numpy, not the element).

For each frame of camvid-real's encodes (models/camvid_real.py; run it first), the keyframe's
luma is warped along the accumulated field (vss_models/motion.py, the twin of the Rust field)
and compared with the frame: mean absolute luma difference, per distance from the keyframe
(interval 12). Strategies for chaining each frame's codec vectors:

- current: what MotionTrack::advance_picture does (P -> last anchor, B -> previous frame,
  future-only blocks negated);
- sadK: each past vector's reference chosen among the last K frames by its block's pixels;
- future-pastwins: future vectors chained exactly to the next anchor's field (decode order);
- current-refine: the step field refined by +-2 px against the decoded reference
  (the idea of src/motion/refine.rs, here per 4 px cell on an 8x8 window, bilinear).

    .venv/bin/python models/tools/bframe_chaining.py     # ~10 min on 2 cores
"""
import sys
from pathlib import Path

import av
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vss_models import motion as M

CELL = 4
def decode(path):
    c = av.open(path); s = c.streams.video[0]
    s.codec_context.options = {"flags2": "+export_mvs"}
    out = []
    for f in c.decode(s):
        y = f.to_ndarray(format='gray').astype(np.float32)
        sd = f.side_data.get("MOTION_VECTORS")
        vecs = []
        if sd is not None:
            a = sd.to_ndarray()
            for r in a:
                vecs.append(dict(source=int(r['source']), w=int(r['w']), h=int(r['h']), src_x=int(r['src_x']), src_y=int(r['src_y']),
                                 dst_x=int(r['dst_x']), dst_y=int(r['dst_y']), motion_x=int(r['motion_x']), motion_y=int(r['motion_y']),
                                 motion_scale=int(r['motion_scale'])))
        out.append(({1:'I',2:'P',3:'B'}.get(int(f.pict_type),'?'), y, vecs))
    return out

def warp(lum, field):
    h, w = lum.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = M.sample(field, xs + 0.5, ys + 0.5)
    sx = np.clip(xs + dx, 0, w - 1); sy = np.clip(ys + dy, 0, h - 1)
    x0 = np.floor(sx).astype(int); y0 = np.floor(sy).astype(int)
    x1 = np.minimum(x0 + 1, w - 1); y1 = np.minimum(y0 + 1, h - 1)
    fx = sx - x0; fy = sy - y0
    top = lum[y0, x0] * (1 - fx) + lum[y0, x1] * fx
    bot = lum[y1, x0] * (1 - fx) + lum[y1, x1] * fx
    return top * (1 - fy) + bot * fy

def block_sad(cur, ref, v):
    """Mean abs diff of the block of v in cur vs its source in ref (clamped)."""
    h, w = cur.shape
    x0 = v['dst_x'] - v['w'] // 2; y0 = v['dst_y'] - v['h'] // 2
    xs = np.clip(np.arange(x0, x0 + v['w']), 0, w - 1); ys = np.clip(np.arange(y0, y0 + v['h']), 0, h - 1)
    dx = v['motion_x'] / max(v['motion_scale'], 1); dy = v['motion_y'] / max(v['motion_scale'], 1)
    a = cur[np.ix_(ys, xs)]
    sxs = np.clip(np.round(xs + dx).astype(int), 0, w - 1); sys_ = np.clip(np.round(ys + dy).astype(int), 0, h - 1)
    b = ref[np.ix_(sys_, sxs)]
    return float(np.abs(a - b).mean())

def anchors(frames, interval):
    h, w = frames[0][1].shape
    out = {}
    for t, (pt, y, vecs) in enumerate(frames):
        if t % interval == 0:
            anchor = M.zero_field(w, h, CELL)
        elif pt != 'B':
            anchor = M.accumulate(anchor, M.paint(vecs, w, h, CELL))
        out[t] = anchor
    return out

def box(a, k):
    c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), 0), 1)
    h, w = a.shape
    out = np.empty_like(a)
    r = k // 2
    ys = np.arange(h); xs = np.arange(w)
    y0 = np.clip(ys - r, 0, h); y1 = np.clip(ys + r, 0, h); x0 = np.clip(xs - r, 0, w); x1 = np.clip(xs + r, 0, w)
    return (c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]) / ((y1 - y0)[:, None] * (x1 - x0)[None, :])

def refine(step, cur, ref, radius=2, penalty=1.0, win=8):
    """Per cell, the integer offset within radius that best explains cur from ref (SAD over win)."""
    h, w = cur.shape
    best = None; bo = None
    for oy in range(-radius, radius + 1):
        for ox in range(-radius, radius + 1):
            f = M.MotionField(step.width, step.height, step.cell, step.dx + ox, step.dy + oy, step.uncovered)
            e = box(np.abs(warp(ref, f) - cur), win) + penalty * (abs(ox) + abs(oy))
            ec = e[CELL // 2::CELL, CELL // 2::CELL][:step.rows, :step.cols]
            if best is None:
                best = ec; bo = np.zeros(ec.shape + (2,), np.float32)
            m = ec < best
            best = np.where(m, ec, best); bo[m] = (ox, oy)
    return M.MotionField(step.width, step.height, step.cell, (step.dx + bo[..., 0]).astype(np.float32), (step.dy + bo[..., 1]).astype(np.float32), step.uncovered)

def run(frames, strategy, interval=12):
    h, w = frames[0][1].shape
    anchor_acc = anchors(frames, interval)
    errs = {}
    acc_hist = []  # list of (index, type, acc field) since keyframe
    for t, (pt, y, vecs) in enumerate(frames):
        if t % interval == 0:
            key = y; acc = M.zero_field(w, h, CELL); hist = [(t, 'I', acc)]; anchor = acc; anchor_t = t
            continue
        d = t % interval
        if strategy.startswith('current'):
            base = anchor if pt == 'P' else hist[-1][2]
            step = M.paint(vecs, w, h, CELL)
            if 'refine' in strategy and not ('ponly' in strategy and pt == 'B'):
                ref_t = anchor_t if pt == 'P' else t - 1
                step = refine(step, y, frames[ref_t][1], radius=1 if 'r1' in strategy else 2)
            acc = M.accumulate(base, step)
        elif strategy.startswith('future'):
            if pt != 'B':
                base = anchor
                acc = M.accumulate(base, M.paint(vecs, w, h, CELL))
            else:
                # next anchor's accumulated field, computed ahead (decode order)
                nxt = next((j for j in range(t + 1, len(frames)) if frames[j][0] != 'B' or j % interval == 0), None)
                past = [v for v in vecs if v['source'] <= 0]
                fut = [v for v in vecs if v['source'] > 0]
                pbase = anchor if strategy.endswith('anchor') else hist[-1][2]
                acc = M.accumulate(pbase, M.paint(past + fut, w, h, CELL))
                if nxt is not None and nxt % interval != 0 and fut:
                    acc_next = anchor_acc[nxt]
                    f = M.paint([dict(v, source=-1) for v in fut], w, h, CELL)
                    cov = ~f.uncovered
                    if 'pastwins' in strategy:
                        cov &= M.paint(past, w, h, CELL).uncovered
                    a = M.accumulate(acc_next, f)
                    acc.dx = np.where(cov, a.dx, acc.dx); acc.dy = np.where(cov, a.dy, acc.dy)
                    acc.uncovered = np.where(cov, a.uncovered, acc.uncovered)
        elif strategy.startswith('sad'):
            # candidate references: the last K frames of this GOP (display order before t)
            K = int(strategy[3:] or 4)
            cands = hist[-K:]
            past = [v for v in vecs if v['source'] <= 0]
            fut = [v for v in vecs if v['source'] > 0]
            # per vector choose reference by SAD
            groups = {i: [] for i in range(len(cands))}
            for v in past:
                sads = [block_sad(y, frames[c[0]][1], v) for c in cands]
                groups[int(np.argmin(sads))].append(v)
            # future-only blocks: negated, chained to the previous frame (as now)
            # build per-candidate accumulations and select per cell
            prev_idx = len(cands) - 1
            full = M.paint(past + fut, w, h, CELL)  # default field (past wins), chained to previous
            acc = M.accumulate(cands[prev_idx][2], full)
            for i, c in enumerate(cands):
                if i == prev_idx or not groups[i]:
                    continue
                f = M.paint(groups[i], w, h, CELL)
                cov = ~M.paint(groups[i], w, h, CELL).uncovered
                a = M.accumulate(c[2], f)
                acc.dx = np.where(cov, a.dx, acc.dx); acc.dy = np.where(cov, a.dy, acc.dy)
                acc.uncovered = np.where(cov, a.uncovered, acc.uncovered)
        hist.append((t, pt, acc))
        if pt != 'B':
            anchor = acc; anchor_t = t
        e = float(np.abs(warp(key, acc) - y).mean())
        errs.setdefault(d, []).append(e)
    tot = np.mean([e for v in errs.values() for e in v])
    return tot, {d: round(float(np.mean(v)), 2) for d, v in sorted(errs.items())}

if __name__ == '__main__':
    base = str(Path(__file__).resolve().parents[2] / '.cache/camvid-real/0016E5') + '/'
    p = decode(base + 'p12.mp4'); b = decode(base + 'b12.mp4')
    print('types b12', ''.join(t[0][0] for t in b[:30]))
    for name, fr, strat in [
        ('p12 current', p, 'current'), ('b12 current', b, 'current'), ('b12 sad4', b, 'sad4'),
        ('b12 sad6', b, 'sad6'), ('b12 future-pastwins', b, 'future-pastwins'),
        ('p12 current-refine', p, 'current-refine'), ('b12 current-refine', b, 'current-refine'),
    ]:
        tot, per = run(fr, strat)
        print(f'{name}: mean warp MAD {tot:.3f}  per distance {per}', flush=True)
