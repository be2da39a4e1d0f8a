#!/usr/bin/env python3
"""Trains the AR-Seg branch of an `arseg` bundle (FST) on camvid-motion train sequences.

    .venv/bin/python models/camvid_motion.py --split train          # the labelled videos, once
    .venv/bin/python models/train_arseg.py prepare                  # decode + cache (~5 min)
    nice -n 10 .venv/bin/python models/train_arseg.py train --minutes 90   # resumes by itself
    .venv/bin/python models/train_arseg.py status                   # last checkpoints, val mIoU
    .venv/bin/python models/train_arseg.py prepare --scale 0.35 --reuse 0.5   # low-res frames only
    .venv/bin/python models/train_arseg.py prepare --keyframe camvid-bisenet  # on BiSeNet

`--keyframe` names the image bundle whose network runs on keyframes (frozen) and is copied for
the low-res branch: camvid-espnet (default; bundles camvid-espnet-arseg[NN]) or camvid-bisenet
(its checkpoint from models/train_image.py; bundles camvid-bisenet-arseg[NN]).

`prepare` decodes every train sequence's p.mp4 with PyAV (`flags2=+export_mvs`, the vectors
vssdec exports), converts frames to RGB exactly as the element does (YUV planes resized
bilinearly, antialiased when shrinking, then the BT.601 limited matrix), accumulates the
vectors back to each GOP's I-frame with `motion.py` (the twin of the Rust field) and writes the
grid `to_grid` makes at the feature map's size. The frozen keyframe network's features of every
frame are cached too (fp16): the keyframe's are warped, the frame's own are the FST target.
Everything lands in models/.cache/arseg/<keyframe bundle>/scale-<scale>/ as .npy memory maps.

`train` runs FST: keyframe network and shared classifier frozen; the low-res branch (BN
statistics frozen) and CReFF learn from cross-entropy (void ignored) + MSE(fused map, full-res
map of the same frame). Pairs are (GOP's I-frame, frame at distance 1..11). Checkpoints
(ckpt-<step>.pt, all kept, and best.pt by validation mIoU on held-out train sequences) go to
the same folder; a new run resumes from the newest. export.py turns best.pt into the bundle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import arseg, motion, paths, torchscript, zoo  # noqa: E402
from vss_models.metrics import confusion, scores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".cache" / "camvid-motion" / "train"
CACHE = Path(__file__).resolve().parent / ".cache" / "arseg"
VOID = 11
VAL_SEQUENCES = 6  # the last ones: held out for choosing the checkpoint
# The image bundles whose network can be the keyframe network (`--keyframe`).
KEYFRAMES = {
    "camvid-espnet": lambda: zoo.SPECS["camvid-espnet"],
    "camvid-bisenet": lambda: zoo.trained_spec("bisenet"),
}


def keyframe_spec(args) -> zoo.BundleSpec:
    return KEYFRAMES[args.keyframe]()


def feature_shape(net: torch.nn.Module, native: Tuple[int, int]) -> Tuple[int, int]:
    """(channels, stride) of the keyframe network's `features` map at the native size."""
    with torch.no_grad():
        f = net.features(torch.zeros(1, 3, *native))
    return f.shape[1], native[0] // f.shape[2]


# --- the element's frame conversion (src/model/preprocess.rs), in torch --------------------


def _resize(t: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """preprocess.rs `resize`: bilinear, align_corners=False, antialiased when a side shrinks."""
    h, w = t.shape[2], t.shape[3]
    if (h, w) == tuple(size):
        return t
    shrink = size[0] < h or size[1] < w
    return F.interpolate(t, size=list(size), mode="bilinear", align_corners=False, antialias=shrink)


def _bt601_limited() -> Tuple[torch.Tensor, torch.Tensor]:
    """YuvColorimetry::rgb_matrix for BT.601 limited range, in f32 as the Rust code builds it."""
    kr, kb = 0.299, 0.114
    kg = 1.0 - kr - kb
    ys, cs = 255.0 / 219.0, 255.0 / 224.0
    m = [
        [ys, 0.0, cs * 2.0 * (1.0 - kr)],
        [ys, -cs * 2.0 * kb * (1.0 - kb) / kg, -cs * 2.0 * kr * (1.0 - kr) / kg],
        [ys, cs * 2.0 * (1.0 - kb), 0.0],
    ]
    m32 = np.array(m, dtype=np.float64).astype(np.float32)
    offset = np.array([16.0, 128.0, 128.0], np.float32)
    bias = np.array([-sum(np.float32(a) * b for a, b in zip(row, offset)) for row in m32], np.float32)
    return torch.from_numpy(m32), torch.from_numpy(bias).view(3, 1)


MATRIX, BIAS = _bt601_limited()


def yuv420_to_rgb(planes: np.ndarray, width: int, height: int, size: Tuple[int, int]) -> torch.Tensor:
    """frame_to_rgb for an I420 frame (PyAV's [H*3/2, W] array): uint8 [1, 3, size]."""
    y = torch.from_numpy(planes[:height].astype(np.float32))[None, None]
    cw, ch = (width + 1) // 2, (height + 1) // 2
    flat = planes[height:].reshape(-1)
    u = flat[: cw * ch].reshape(ch, cw).astype(np.float32)
    v = flat[cw * ch : 2 * cw * ch].reshape(ch, cw).astype(np.float32)
    chroma = torch.from_numpy(np.stack([u, v]))[None]
    yuv = torch.cat([_resize(y, size), _resize(chroma, size)], 1)
    rgb = MATRIX @ yuv.reshape(1, 3, -1) + BIAS
    return rgb.view(1, 3, size[0], size[1]).round().clamp(0, 255).to(torch.uint8)


# --- prepare -------------------------------------------------------------------------------


def decode(video: Path):
    """(I420 planes, picture type letter, vectors or None) per frame, presentation order."""
    import av

    types = {1: "I", 2: "P", 3: "B"}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            vectors = side.to_ndarray() if side is not None else []
            yield frame.to_ndarray(format="yuv420p"), types.get(int(frame.pict_type), "?"), vectors


def lowres_size(scale: float, native: Tuple[int, int], multiple: int) -> Tuple[int, int]:
    """Manifest::scaled_size: each side rounded to the nearest multiple (half away from 0)."""

    def side(s: int) -> int:
        return max(int(math.floor(s * scale / multiple + 0.5)), 1) * multiple

    return side(native[0]), side(native[1])


def cache_dir(args, scale: float = None) -> Path:
    return CACHE / args.keyframe / f"scale-{args.scale if scale is None else scale:g}"


def run_dir(args) -> Path:
    """Checkpoints of a training run: the prepared folder, or its subfolder `--run NAME`."""
    folder = cache_dir(args)
    return folder / args.run if args.run else folder


def prepare(args) -> None:
    torch.set_num_threads(args.threads)
    spec = keyframe_spec(args)
    native = tuple(spec.native_size)
    lr_size = lowres_size(args.scale, native, spec.size_multiple)
    seqs = sorted(p for p in DATA.iterdir() if (p / "p.mp4").is_file())
    if not seqs:
        raise SystemExit(f"no sequences in {DATA}: run models/camvid_motion.py --split train")
    frames = json.loads((seqs[0] / "meta.json").read_text())["frames"]
    n = len(seqs) * frames
    out = cache_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    if args.reuse is not None:
        return prepare_lowres_only(args, seqs, frames, lr_size, out)
    keynet = torchscript.image_module(spec, channels_last=True)
    channels, stride = feature_shape(keynet.net, native)
    feat_size = (native[0] // stride, native[1] // stride)

    def mm(name, shape, dtype):
        return np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

    lowres = mm("lowres", (n, 3, *lr_size), np.uint8)
    grids = mm("grids", (n, *feat_size, 2), np.float32)
    feats = mm("features", (n, channels, *feat_size), np.float16)
    labels = mm("labels", (n, *native), np.uint8)
    index = np.zeros((n, 4), np.int64)  # sequence, frame, keyframe row, distance
    start = time.time()
    for s, seq in enumerate(seqs):
        key_row, distance = -1, 0
        field = None
        anchor = None
        for f, (planes, kind, vectors) in enumerate(decode(seq / "p.mp4")):
            if f >= frames:
                break
            row = s * frames + f
            if kind == "I" or key_row < 0:
                key_row, distance = row, 0
                field = anchor = motion.zero_field(native[1], native[0], 4)
            else:
                distance += 1
                base = anchor if kind == "P" else field
                field = motion.accumulate(base, motion.paint(vectors, native[1], native[0], 4))
                if kind != "B":
                    anchor = field
            full = yuv420_to_rgb(planes, native[1], native[0], native)
            lowres[row] = yuv420_to_rgb(planes, native[1], native[0], lr_size)[0].numpy()
            grids[row] = motion.to_grid(field, *feat_size)
            with torch.no_grad():
                feats[row] = keynet(full)[1][0].numpy().astype(np.float16)
            labels[row] = np.asarray(_png(seq / "labels" / f"{f:06d}.png"))
            index[row] = (s, f, key_row, distance)
        print(f"prepare {s + 1}/{len(seqs)} {seq.name} {time.time() - start:.0f} s", flush=True)
    np.save(out / "index.npy", index)
    write_info(out, args, lr_size, len(seqs), frames, stride)
    for m in (lowres, grids, feats, labels):
        m.flush()


def write_info(out: Path, args, lr_size, sequences: int, frames: int, stride: int, **extra) -> None:
    """The prepared folder's info.json (what `Pairs` and `prepare --reuse` read)."""
    info = {
        "keyframe": args.keyframe,
        "scale": args.scale,
        "lowres_size": lr_size,
        "sequences": sequences,
        "frames": frames,
        "feature_stride": stride,
        **extra,
    }
    (out / "info.json").write_text(json.dumps(info))


SCALE_FREE = ("grids", "features", "labels", "index")


def prepare_lowres_only(args, seqs, frames: int, lr_size: Tuple[int, int], out: Path) -> None:
    """`prepare --reuse S`: the grids, keyframe features, labels and index do not depend on the
    low-res scale, so link them from scale S's prepared folder and only decode + resize the
    frames for this scale (seconds instead of ~20 minutes)."""
    source = cache_dir(args, args.reuse)
    info = json.loads((source / "info.json").read_text()) if (source / "info.json").is_file() else None
    if info is None or info["sequences"] != len(seqs) or info["frames"] != frames:
        raise SystemExit(
            f"{source}: no prepared data for these {len(seqs)} sequences;"
            f" run `prepare --scale {args.reuse:g}`"
        )
    for name in SCALE_FREE:
        link = out / f"{name}.npy"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / source.name / f"{name}.npy")
    lowres = np.lib.format.open_memmap(
        out / "lowres.npy", mode="w+", dtype=np.uint8, shape=(len(seqs) * frames, 3, *lr_size)
    )
    native = tuple(keyframe_spec(args).native_size)
    start = time.time()
    for s, seq in enumerate(seqs):
        for f, (planes, _kind, _vectors) in enumerate(decode(seq / "p.mp4")):
            if f >= frames:
                break
            lowres[s * frames + f] = yuv420_to_rgb(planes, native[1], native[0], lr_size)[0].numpy()
        print(
            f"prepare {s + 1}/{len(seqs)} {seq.name} {time.time() - start:.0f} s (low-res frames only)",
            flush=True,
        )
    lowres.flush()
    write_info(out, args, lr_size, len(seqs), frames, info["feature_stride"], reuses=args.reuse)


def _png(path: Path):
    from PIL import Image

    return Image.open(path)


# --- train ---------------------------------------------------------------------------------


class Pairs:
    """The cached data as training pairs: rows at distance >= 1 and their keyframe rows."""

    def __init__(self, folder: Path):
        if not (folder / "info.json").is_file():
            raise SystemExit(f"{folder}: no prepared data; run `train_arseg.py prepare` first")
        self.info = json.loads((folder / "info.json").read_text())
        self.stride = int(self.info["feature_stride"])
        self.lowres = np.load(folder / "lowres.npy", mmap_mode="r")
        self.grids = np.load(folder / "grids.npy", mmap_mode="r")
        self.features = np.load(folder / "features.npy", mmap_mode="r")
        self.labels = np.load(folder / "labels.npy", mmap_mode="r")
        self.index = np.load(folder / "index.npy")
        val_from = self.info["sequences"] - VAL_SEQUENCES
        pairs = self.index[:, 3] >= 1
        self.train_rows = np.nonzero(pairs & (self.index[:, 0] < val_from))[0]
        self.val_rows = np.nonzero(pairs & (self.index[:, 0] >= val_from))[0]

    def batch(self, rows) -> Dict[str, torch.Tensor]:
        rows = np.sort(np.asarray(rows))
        keys = self.index[rows, 2]
        return {
            "lowres": torch.from_numpy(np.stack([self.lowres[r] for r in rows])),
            "grid": torch.from_numpy(np.stack([self.grids[r] for r in rows])),
            "key": torch.from_numpy(np.stack([self.features[k] for k in keys]).astype(np.float32)),
            "target": torch.from_numpy(np.stack([self.features[r] for r in rows]).astype(np.float32)),
            "label": torch.from_numpy(np.stack([self.labels[r] for r in rows]).astype(np.int64)),
            "distance": torch.from_numpy(self.index[rows, 3]),
        }


def build_model(args) -> arseg.ArsegSegmenter:
    """The eager bundle module: frozen keyframe network, trainable low-res branch and CReFF."""
    spec = keyframe_spec(args)
    keynet = torchscript.image_module(spec, channels_last=False).net
    channels, _ = feature_shape(keynet, tuple(spec.native_size))
    lowres, creff, low_scale = arseg.build(keynet, channels, args.window, args.gate)
    p = spec.preprocessing
    model = arseg.ArsegSegmenter(
        keynet, lowres, creff, p.channel_order, p.mean, p.std, low_scale=low_scale
    )
    model.eval()  # BN statistics stay the pretrained ones; no dropout in either network
    for param in model.keyframe_net.parameters():
        param.requires_grad_(False)
    return model


def trainable(model: arseg.ArsegSegmenter):
    return [
        p for p in list(model.lowres_net.parameters()) + list(model.creff.parameters()) if p.requires_grad
    ]


def forward_pair(model: arseg.ArsegSegmenter, b: Dict[str, torch.Tensor], crop=None):
    """(logits, fused map) of the non-keyframe branch, on the feature-map window `crop` =
    (top, left, height, width) when given (the low-res branch always sees the whole frame)."""
    warped = model.warp(b["key"], b["grid"])
    low = model.lowres_features(b["lowres"], warped.shape[2], warped.shape[3])
    if crop is None:
        fused = model.creff(low, warped)
    else:
        fused = model.creff.forward_crop(low, warped, *crop)
    logits = model.keyframe_net.classify(fused)
    return logits, fused


def jitter_grids(rng, grid: torch.Tensor, distance: torch.Tensor, cells: float) -> torch.Tensor:
    """`grid` [N, h, w, 2] displaced by a smooth random field of up to `cells` x distance
    feature-map cells (a 3x4 lattice of uniform draws, bilinearly upsampled): camvid-motion's
    codec motion is almost exact, real video's is not (objects that move on their own, B-frame
    approximations), and CReFF is there to find the right neighbour within its window."""
    n, h, w, _ = grid.shape
    coarse = torch.from_numpy(rng.uniform(-1.0, 1.0, (n, 2, 3, 4)).astype(np.float32))
    field = F.interpolate(coarse, size=[h, w], mode="bilinear", align_corners=True)
    amplitude = cells * distance.to(torch.float32).view(n, 1, 1, 1)
    # One cell is 2/w (x) or 2/h (y) in grid_sample's [-1, 1] coordinates.
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    return grid + (field * amplitude * scale).permute(0, 2, 3, 1)


def random_crop(rng, size: Tuple[int, int], crop: Tuple[int, int]):
    h, w = min(crop[0], size[0]), min(crop[1], size[1])
    return int(rng.integers(0, size[0] - h + 1)), int(rng.integers(0, size[1] - w + 1)), h, w


def losses(model, b, mse_weight: float, stride: int, crop=None):
    logits, fused = forward_pair(model, b, crop)
    label, target = b["label"], b["target"]
    if crop is not None:
        top, left, h, w = crop
        s = stride
        label = label[:, s * top : s * (top + h), s * left : s * (left + w)]
        target = target[:, :, top : top + h, left : left + w]
    ce = F.cross_entropy(logits, label, ignore_index=VOID)
    mse = F.mse_loss(fused, target)
    return ce + mse_weight * mse, ce, mse, logits


def validate(model, data: Pairs, limit: int, batch: int) -> Dict:
    rows = data.val_rows[:: max(len(data.val_rows) // limit, 1)][:limit]
    cm = np.zeros((11, 11), np.int64)
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            b = data.batch(rows[i : i + batch])
            logits, _ = forward_pair(model, b)
            pred = logits.argmax(1)
            for p, t in zip(pred.numpy(), b["label"].numpy()):
                cm += confusion(t, p, 11)
    return {"miou": scores(cm).miou * 100.0, "pairs": int(len(rows))}


def checkpoints(folder: Path) -> List[Path]:
    return sorted(folder.glob("ckpt-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = Pairs(cache_dir(args))
    folder = run_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(args)
    if args.train_lowres == "decoder":
        # ESPNet's encoder, BiSeNet's context-path trunk stay pretrained.
        trunk = model.lowres_net.encoder if hasattr(model.lowres_net, "encoder") else model.lowres_net.backbone
        for param in trunk.parameters():
            param.requires_grad_(False)
    params = [
        {"params": [p for p in model.lowres_net.parameters() if p.requires_grad], "lr": args.lr},
        {"params": list(model.creff.parameters()), "lr": args.lr * args.creff_lr_mult},
    ]
    opt = torch.optim.Adam(params)
    step, best = 0, -1.0
    rng = np.random.default_rng(args.seed)
    existing = checkpoints(folder)
    if existing:
        ckpt = torch.load(existing[-1], map_location="cpu", weights_only=False)
        model.lowres_net.load_state_dict(ckpt["lowres_net"])
        model.creff.load_state_dict(ckpt["creff"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best = ckpt["step"], ckpt["best"]
        rng = np.random.default_rng(args.seed + step)
        print(f"resumed from {existing[-1].name} (step {step}, best val mIoU {best:.2f})", flush=True)
    else:
        v = validate(model, data, args.val_pairs, args.batch)
        print(f"step 0 val mIoU {v['miou']:.2f} on {v['pairs']} pairs (initial fusion)", flush=True)
    deadline = time.time() + args.minutes * 60
    t0, run = time.time(), {"loss": 0.0, "ce": 0.0, "mse": 0.0, "n": 0}
    while time.time() < deadline and step < args.steps:
        rows = rng.choice(data.train_rows, args.batch, replace=False)
        b = data.batch(rows)
        if args.grid_jitter > 0:
            b["grid"] = jitter_grids(rng, b["grid"], b["distance"], args.grid_jitter)
        crop = random_crop(rng, tuple(b["key"].shape[2:]), args.crop)
        loss, ce, mse, _ = losses(model, b, args.mse_weight, data.stride, crop)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        for k, v in (("loss", loss), ("ce", ce), ("mse", mse)):
            run[k] += v.item()
        run["n"] += 1
        if step % args.log_every == 0:
            n = run["n"]
            print(
                f"step {step} loss {run['loss'] / n:.4f} ce {run['ce'] / n:.4f} mse {run['mse'] / n:.4f}"
                f" {(time.time() - t0) / n:.2f} s/step",
                flush=True,
            )
            t0, run = time.time(), {"loss": 0.0, "ce": 0.0, "mse": 0.0, "n": 0}
        if step % args.ckpt_every == 0 or time.time() >= deadline or step >= args.steps:
            v = validate(model, data, args.val_pairs, args.batch)
            state = {
                "step": step,
                "scale": args.scale,
                "lowres_net": model.lowres_net.state_dict(),
                "creff": model.creff.state_dict(),
                "optimizer": opt.state_dict(),
                "val_miou": v["miou"],
                "best": max(best, v["miou"]),
                "args": vars(args),
            }
            torch.save(state, folder / f"ckpt-{step}.pt")
            if v["miou"] > best:
                best = v["miou"]
                torch.save(state, folder / "best.pt")
            print(f"step {step} val mIoU {v['miou']:.2f} (best {best:.2f}) saved ckpt-{step}.pt", flush=True)
            t0 = time.time()


def status(args) -> None:
    """Checkpoints with their validation mIoU, and on the same validation pairs the two
    references: the full-resolution network on each frame and its keyframe features warped."""
    torch.set_num_threads(args.threads)
    folder = run_dir(args)
    for path in checkpoints(folder) + [folder / "best.pt"]:
        if path.is_file():
            c = torch.load(path, map_location="cpu", weights_only=False)
            print(f"{path.name}: step {c['step']} val mIoU {c['val_miou']:.2f}")
    data = Pairs(cache_dir(args))
    model = build_model(args)
    rows = data.val_rows[:: max(len(data.val_rows) // args.val_pairs, 1)][: args.val_pairs]
    cms = {"full": np.zeros((11, 11), np.int64), "warped keyframe features": np.zeros((11, 11), np.int64)}
    with torch.no_grad():
        for i in range(0, len(rows), args.batch):
            b = data.batch(rows[i : i + args.batch])
            classify = model.keyframe_net.classify
            preds = {
                "full": classify(b["target"]).argmax(1),
                "warped keyframe features": classify(model.warp(b["key"], b["grid"])).argmax(1),
            }
            for name, pred in preds.items():
                for p, t in zip(pred.numpy(), b["label"].numpy()):
                    cms[name] += confusion(t, p, 11)
    for name, cm in cms.items():
        print(f"same {len(rows)} val pairs, {name}: mIoU {scores(cm).miou * 100:.2f}")


def load_trained(args, checkpoint: Path = None) -> arseg.ArsegSegmenter:
    """The eager module with the trained branch from `checkpoint` (default best.pt)."""
    path = checkpoint or run_dir(args) / "best.pt"
    if not path.is_file():
        raise SystemExit(f"{path}: no trained checkpoint; run `train_arseg.py train` first")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    # The CReFF the checkpoint was trained with (7x7, not gated, before --window and --gate).
    trained = ckpt.get("args", {})
    args = argparse.Namespace(
        **{**vars(args), "window": trained.get("window", arseg.WINDOW), "gate": trained.get("gate", False)}
    )
    model = build_model(args)
    model.lowres_net.load_state_dict(ckpt["lowres_net"])
    model.creff.load_state_dict(ckpt["creff"])
    return model.eval()


def bundle_name(keyframe: str, scale: float) -> str:
    return f"{keyframe}-arseg" if scale == 0.5 else f"{keyframe}-arseg{round(scale * 100)}"


def export(args) -> None:
    """The trained checkpoint as an `arseg` bundle in models/bundles/ (or --out)."""
    from vss_models import bundle

    spec = keyframe_spec(args)
    ckpt_path = args.checkpoint or run_dir(args) / "best.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    eager = load_trained(args, ckpt_path)
    native = list(spec.native_size)
    c, stride = feature_shape(eager.keyframe_net, tuple(native))
    fmap = f"[1,{c},H/{stride},W/{stride}]"
    eager.channels_last = True
    eager = eager.to(memory_format=torch.channels_last)
    scripted = torch.jit.script(eager)
    frozen = torch.jit.freeze(scripted, preserved_attrs=["keyframe", "nonkeyframe", "warp"])
    name = args.name or bundle_name(args.keyframe, args.scale)
    folder = (args.out or paths.BUNDLES_DIR) / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(frozen, str(folder / "model.pt"))
    lr = list(lowres_size(args.scale, tuple(native), spec.size_multiple))
    k = len(spec.classes)
    arch = "ESPNet p=2 q=8" if args.keyframe == "camvid-espnet" else "BiSeNet (EfficientNet-Lite0 context path)"
    keyframe_flag = "" if args.keyframe == "camvid-espnet" else f" --keyframe {args.keyframe}"
    trained = ckpt.get("args", {})
    recipe = "".join(
        [
            f" --window {trained['window']}" if trained.get("window", arseg.WINDOW) != arseg.WINDOW else "",
            " --gate" if trained.get("gate") else "",
            f" --grid-jitter {trained['grid_jitter']:g}" if trained.get("grid_jitter") else "",
        ]
    )
    manifest = {
        **bundle.manifest_head(
            spec,
            name,
            (
                f"AR-Seg on {arch}: keyframes full resolution ({args.keyframe}, frozen), other "
                f"frames at {args.scale:g}x + CReFF fusing the keyframe features warped by codec motion"
            ),
            "arseg",
        ),
        "methods": {
            "forward": {
                "inputs": ["image uint8 [1,3,H,W] RGB"],
                "outputs": [f"logits float32 [1,{k},H,W]", f"features float32 {fmap}"],
            },
            "keyframe": {
                "inputs": ["image uint8 [1,3,H,W] RGB (the same as forward)"],
                "outputs": [f"logits float32 [1,{k},H,W]", f"features float32 {fmap}"],
            },
            "nonkeyframe": {
                "inputs": [
                    "image_lr uint8 [1,3,h,w] RGB, the frame at lowres_scale (Manifest scaled_size)",
                    f"warped float32 {fmap}: keyframe features through warp",
                ],
                "outputs": [f"logits float32 [1,{k},H,W]", f"fused features float32 {fmap}"],
            },
            "warp": {
                "inputs": [
                    f"features float32 [1,{c},h,w]",
                    "grid float32 [1,h,w,2] from MotionField::to_grid(h, w) (x, y in [-1, 1])",
                ],
                "outputs": [f"features float32 [1,{c},h,w]: grid_sample bilinear, border, align_corners=False"],
            },
        },
        "logits_stride": 1,
        "features": {"channels": c, "stride": stride},
        "lowres_scale": args.scale,
        "lowres_size": lr,
        "fusion": (
            f"{'gated ' if eager.creff.gated else ''}CReFF, {eager.creff.window}x{eager.creff.window}"
            f" local attention on the stride-{stride} map before the shared classifier"
        ),
        "training": {
            "command": (
                f"models/train_arseg.py prepare{keyframe_flag} && models/train_arseg.py train{keyframe_flag}{recipe}"
                if args.scale == 0.5
                else f"models/train_arseg.py prepare{keyframe_flag} --scale {args.scale:g} --reuse 0.5"
                f" && models/train_arseg.py train{keyframe_flag} --scale {args.scale:g}{recipe}"
            ),
            "data": "camvid-motion train split, p.mp4, pairs (I-frame, frame at d=1..11)",
            "checkpoint_step": int(ckpt["step"]),
            "val_miou": round(float(ckpt["val_miou"]), 2),
        },
        "files": {"module": "model.pt"},
        "source": spec.source + "; low-res branch and CReFF trained by models/train_arseg.py (FST)",
        "license": spec.license,
    }
    bundle.write_manifest(folder, manifest)
    loaded = bundle.read(folder).load_module()
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (1, 3, *native), dtype=torch.uint8, generator=gen)
    img_lr = torch.randint(0, 256, (1, 3, *lr), dtype=torch.uint8, generator=gen)
    grid = torch.rand(1, native[0] // stride, native[1] // stride, 2, generator=gen) * 2 - 1
    with torch.inference_mode():
        ref = eager.nonkeyframe(img_lr, eager.warp(eager.keyframe(img)[1], grid))
        got = loaded.nonkeyframe(img_lr, loaded.warp(loaded.keyframe(img)[1], grid))
    diff = max((a - b).abs().max().item() for a, b in zip(ref, got))
    if diff > 1e-3:
        raise SystemExit(f"{folder}: saved module differs from eager by {diff}")
    size_mb = (folder / "model.pt").stat().st_size / 1e6
    print(f"wrote {folder} (model.pt {size_mb:.1f} MB, step {ckpt['step']}, max |diff| {diff:.1e})")


def cost(args) -> None:
    """Multiply-accumulates per frame of each branch (convolutions counted by torch's
    FlopCounterMode, CReFF's similarity and weighted sums added from `attention_macs`)."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = keyframe_spec(args)
    model = build_model(args)
    native = tuple(spec.native_size)
    c, stride = feature_shape(model.keyframe_net, native)
    fh, fw = native[0] // stride, native[1] // stride
    img = torch.zeros(1, 3, *native, dtype=torch.uint8)

    def gmacs(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return counter.get_total_flops() / 2e9

    full = gmacs(lambda: model.keyframe(img))
    rows = [("full (keyframe branch)", native, full)]
    for scale in sorted({args.scale, 0.5, 0.35}, reverse=True):
        size = lowres_size(scale, native, spec.size_multiple)
        lr = torch.zeros(1, 3, *size, dtype=torch.uint8)
        warped = torch.zeros(1, c, fh, fw)
        low = gmacs(lambda: model.keyframe(lr))
        fusion = gmacs(lambda: model.nonkeyframe(lr, warped)) + model.creff.attention_macs(c, fh, fw) / 1e9
        rows.append((f"lowres {scale:g}", size, low))
        rows.append((f"fusion {scale:g} (non-keyframe)", size, fusion))
    print("| branch | input | GMAC/frame | of full |")
    print("| --- | --- | --- | --- |")
    for name, size, g in rows:
        print(f"| {name} | {size[0]}x{size[1]} | {g:.3f} | {100 * g / full:.1f}% |")
    gop = 12
    for name, size, g in rows[1:]:
        if name.startswith("fusion"):
            mean = (full + (gop - 1) * g) / gop
            print(
                f"{name}, GOP {gop} (1 keyframe + 11 fused): {mean:.3f} GMAC/frame"
                f" = {100 * mean / full:.1f}% of full"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["prepare", "train", "status", "export", "cost"])
    ap.add_argument("--checkpoint", type=Path, help="export: this checkpoint instead of best.pt")
    ap.add_argument("--name", help="export: bundle name (default <keyframe>-arseg[NN])")
    ap.add_argument(
        "--keyframe",
        choices=list(KEYFRAMES),
        default="camvid-espnet",
        help="the image bundle whose network runs on keyframes and seeds the low-res branch",
    )
    ap.add_argument("--out", type=Path, help="export: folder for the bundle (default models/bundles)")
    ap.add_argument("--scale", type=float, default=0.5, help="low-res branch side scale")
    ap.add_argument(
        "--reuse",
        type=float,
        default=None,
        help="prepare: link the scale-independent arrays from this scale's prepared folder",
    )
    ap.add_argument(
        "--window",
        type=int,
        default=arseg.WINDOW,
        help="train: CReFF's window side in feature-map positions (7 = the paper's 7x7)",
    )
    ap.add_argument(
        "--gate",
        action="store_true",
        help="train: CReFF mixes the attended keyframe map and the low-res map with a learnt"
        " per-position trust instead of adding them",
    )
    ap.add_argument(
        "--grid-jitter",
        type=float,
        default=0.0,
        help="train: displace the warp grid by a smooth random field of up to this many feature"
        " cells per frame of distance (0 = the codec motion as decoded)",
    )
    ap.add_argument(
        "--run",
        default="",
        help="train/status/export: the run's checkpoints in this subfolder of the prepared data",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--creff-lr-mult", type=float, default=5.0)
    ap.add_argument("--mse-weight", type=float, default=1.0)
    ap.add_argument("--minutes", type=float, default=90.0, help="stop (and checkpoint) after this")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-every", type=int, default=150)
    ap.add_argument("--val-pairs", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--crop",
        type=lambda t: tuple(int(v) for v in t.split("x")),
        default=(64, 96),
        help="HxW window of the feature map that CReFF and the losses train on",
    )
    ap.add_argument(
        "--train-lowres",
        choices=["all", "decoder"],
        default="all",
        help="which part of the low-res branch learns (decoder: its encoder stays pretrained)",
    )
    args = ap.parse_args()
    paths.weights_dir()  # fail early without the published weights
    {"prepare": prepare, "train": train, "status": status, "export": export, "cost": cost}[args.command](args)


if __name__ == "__main__":
    main()
