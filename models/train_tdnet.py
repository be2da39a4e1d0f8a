"""Trains the TDNet-style `distributed` bundle (vss_models/tdnet.py) on camvid-motion, on CPU.

    .venv/bin/python models/train_tdnet.py prepare             # frames, labels, teacher logits
    nice -n 19 .venv/bin/python models/train_tdnet.py train --threads 1 --minutes 40
    .venv/bin/python models/train_tdnet.py status
    .venv/bin/python models/train_tdnet.py export              # best.pt -> bundles/camvid-tdnet

prepare: decodes every camvid-motion train sequence's P encode (PyAV, converted to RGB exactly
as train_arseg.py does, i.e. as the element does) into models/.cache/tdnet/ with its labels, the
teacher's (camvid-cgnet) logits average-pooled to stride 4 and its 256-channel stride-8 feature
map (both float16).

train: windows of two consecutive frames of one sequence, the sub-networks in round-robin order
from a random slot, unrolled through `TDNet.step_parts` (the body of the `step` the element
calls; the first frame with an empty memory, the second with the first's). Loss per frame:
cross entropy on the labels (void ignored) + distillation KL(teacher || student) at
temperature 2 on stride-4 logits, weight 1 + grouped feature distillation (TDNet's), weight
`--gkd-weight`: the teacher's stride-8 map split into one channel group per sub-network, the
frame's sub-network's own map (before the attention) regressed onto its group and the fused map
onto the whole, each through a 1x1 adapter (training only), mean squared error. BatchNorm
statistics stay frozen (batch of 4 windows). Adam, lr 1e-4 for the pretrained ESPNet parts and
1e-3 for the APM and the adapters. Resumable: `latest.pt` every 50 steps and at the end,
`best.pt` = best mIoU on the held-out last 6 sequences, scored at the end of each run.
`--minutes` counts the training thread's CPU time, so pauses do not eat it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_arseg import decode, yuv420_to_rgb  # noqa: E402
from vss_models import paths, tdnet, zoo  # noqa: E402
from vss_models.metrics import confusion, scores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".cache" / "camvid-motion" / "train"
CACHE = Path(__file__).resolve().parent / ".cache" / "tdnet"
BASE = "camvid-espnet"
TEACHER = "camvid-cgnet"
NAME = "camvid-tdnet"
VOID = 11
VAL_SEQUENCES = 6
TEACHER_STRIDE = 4
TEMPERATURE = 2.0
FEATURE_CHANNELS = 256  # TDNet's stride-8 map and the teacher's (CGNet) alike


def log(msg: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
    print(line, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "train.log", "a") as f:
        f.write(line + "\n")


def prepare(args) -> None:
    from PIL import Image

    torch.set_num_threads(args.threads)
    native = tuple(zoo.SPECS[BASE].native_size)
    seqs = sorted(p for p in DATA.iterdir() if (p / "p.mp4").is_file())
    if not seqs:
        raise SystemExit(f"no sequences in {DATA}: run models/camvid_motion.py --split train")
    frames = json.loads((seqs[0] / "meta.json").read_text())["frames"]
    n = len(seqs) * frames
    CACHE.mkdir(parents=True, exist_ok=True)
    teacher = torch.jit.load(str(paths.BUNDLES_DIR / TEACHER / "model.pt")).eval()
    t_size = (native[0] // TEACHER_STRIDE, native[1] // TEACHER_STRIDE)
    k = len(zoo.SPECS[BASE].classes)

    def mm(name, shape, dtype):
        return np.lib.format.open_memmap(CACHE / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

    images = mm("images", (n, 3, *native), np.uint8)
    labels = mm("labels", (n, *native), np.uint8)
    soft = mm("teacher", (n, k, *t_size), np.float16)
    f_size = (native[0] // 8, native[1] // 8)
    feats = mm("teacher_features", (n, FEATURE_CHANNELS, *f_size), np.float16)
    start = time.time()
    for s, seq in enumerate(seqs):
        for f, (planes, _kind, _vectors) in enumerate(decode(seq / "p.mp4")):
            if f >= frames:
                break
            row = s * frames + f
            rgb = yuv420_to_rgb(planes, native[1], native[0], native)
            images[row] = rgb[0].numpy()
            labels[row] = np.asarray(Image.open(seq / "labels" / f"{f:06d}.png"))
            with torch.no_grad():
                logits, features = teacher(rgb)
            soft[row] = F.avg_pool2d(logits, TEACHER_STRIDE)[0].numpy().astype(np.float16)
            feats[row] = features[0].numpy().astype(np.float16)
        log(f"prepare {s + 1}/{len(seqs)} {seq.name} {time.time() - start:.0f} s")
    for m in (images, labels, soft, feats):
        m.flush()
    (CACHE / "info.json").write_text(
        json.dumps({"sequences": len(seqs), "frames": frames, "teacher": TEACHER})
    )


class Windows:
    def __init__(self):
        if not (CACHE / "info.json").is_file():
            raise SystemExit(f"{CACHE}: no prepared data; run `train_tdnet.py prepare` first")
        info = json.loads((CACHE / "info.json").read_text())
        self.frames = info["frames"]
        self.sequences = info["sequences"]
        self.images = np.load(CACHE / "images.npy", mmap_mode="r")
        self.labels = np.load(CACHE / "labels.npy", mmap_mode="r")
        self.teacher = np.load(CACHE / "teacher.npy", mmap_mode="r")
        if not (CACHE / "teacher_features.npy").is_file():
            raise SystemExit(f"{CACHE}: no teacher features; run `train_tdnet.py prepare` again")
        self.features = np.load(CACHE / "teacher_features.npy", mmap_mode="r")
        train_seqs = self.sequences - VAL_SEQUENCES
        # Window starts: every frame but a sequence's last.
        self.train = [s * self.frames + f for s in range(train_seqs) for f in range(self.frames - 1)]
        self.val = [
            s * self.frames + f for s in range(train_seqs, self.sequences) for f in range(self.frames - 1)
        ]

    def batch(self, rows: List[int]):
        pick = lambda a, offset: torch.from_numpy(np.stack([a[r + offset] for r in rows]))  # noqa: E731
        return [
            (
                pick(self.images, o),
                pick(self.labels, o).long(),
                pick(self.teacher, o).float(),
                pick(self.features, o).float(),
            )
            for o in (0, 1)
        ]


class Adapters(torch.nn.Module):
    """Grouped distillation's 1x1 adapters (training only): sub-network i's stride-8 map to the
    teacher's channel group i, the fused map to the teacher's whole map."""

    def __init__(self, channels: int = FEATURE_CHANNELS, groups: int = tdnet.SUBNETWORKS):
        super().__init__()
        self.per = FEATURE_CHANNELS // groups
        self.groups = torch.nn.ModuleList([torch.nn.Conv2d(channels, self.per, 1) for _ in range(groups)])
        self.whole = torch.nn.Conv2d(channels, FEATURE_CHANNELS, 1)

    def loss(self, sub: torch.Tensor, fused: torch.Tensor, teacher: torch.Tensor, slot: int) -> torch.Tensor:
        group = teacher[:, slot * self.per : (slot + 1) * self.per]
        return F.mse_loss(self.groups[slot](sub), group) + F.mse_loss(self.whole(fused), teacher)


def build(checkpoint: Path | None = None) -> tdnet.TDNetSegmenter:
    spec = zoo.SPECS[BASE]
    base = zoo.load_network(spec)
    net = tdnet.TDNet(base)
    net.keep_classes(spec.keep_channels)
    p = spec.preprocessing
    model = tdnet.TDNetSegmenter(net, p.channel_order, p.mean, p.std)
    if checkpoint is not None:
        model.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["net"])
    return model


def losses(model: tdnet.TDNetSegmenter, window, slot: int, adapters: Adapters) -> Dict[str, torch.Tensor]:
    memory: List[torch.Tensor] = []
    ce = kd = gkd = torch.zeros(())
    for i, (img, label, soft, features) in enumerate(window):
        logits, fused, memory, sub = model.net.step_parts(model.normalize(img), slot + i, memory)
        gkd = gkd + adapters.loss(sub, fused, features, (slot + i) % tdnet.SUBNETWORKS)
        ce = ce + F.cross_entropy(logits, label, ignore_index=VOID)
        student = F.avg_pool2d(logits, TEACHER_STRIDE)
        kd = kd + F.kl_div(
            F.log_softmax(student / TEMPERATURE, 1),
            F.log_softmax(soft / TEMPERATURE, 1),
            log_target=True,
            reduction="batchmean",
        ) * (TEMPERATURE**2) / (student.shape[2] * student.shape[3])
    return {"ce": ce / len(window), "kd": kd / len(window), "gkd": gkd / len(window)}


def freeze_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def evaluate(model: tdnet.TDNetSegmenter, data: Windows, rows: List[int]) -> float:
    """mIoU over both frames of the windows `rows` (the second frame with the first's memory)."""
    model.eval()
    k = len(zoo.SPECS[BASE].classes)
    conf = np.zeros((k, k), np.int64)
    with torch.no_grad():
        for r in rows:
            memory: List[torch.Tensor] = []
            for i, (img, label, _soft, _features) in enumerate(data.batch([r])):
                logits, _, memory = model.step(img, i, memory)
                conf += confusion(label[0].numpy(), logits.argmax(1)[0].numpy(), k)
    return scores(conf).miou


def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = Windows()
    latest = CACHE / "latest.pt"
    model = build()
    adapters = Adapters()
    apm = list(model.net.apm.parameters())
    apm_ids = {id(p) for p in apm}
    rest = [p for p in model.net.parameters() if id(p) not in apm_ids]
    fast = apm + list(adapters.parameters())
    opt = torch.optim.Adam([{"params": rest, "lr": args.lr}, {"params": fast, "lr": args.lr * 10}])
    state = {"step": 0, "train_seconds": 0.0, "best_miou": -1.0}
    if latest.is_file():
        ckpt = torch.load(latest, map_location="cpu", weights_only=False)
        model.net.load_state_dict(ckpt["net"])
        state = ckpt["state"]
        if "adapters" in ckpt:
            adapters.load_state_dict(ckpt["adapters"])
            opt.load_state_dict(ckpt["opt"])
        else:
            # A run from before grouped distillation: its network goes on, the adapters and the
            # optimizer start afresh.
            log("checkpoint without distillation adapters: adding them, optimizer restarts")
        state.setdefault("gkd_from_step", state["step"])
        log(f"resumed {latest} at step {state['step']}, {state['train_seconds'] / 60:.1f} min trained")
    else:
        state["gkd_from_step"] = 0
    rng = np.random.default_rng(1234)
    rng.bit_generator.advance(state["step"] * 16)

    def save(path: Path, extra: Dict | None = None) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "net": model.net.state_dict(),
                "adapters": adapters.state_dict(),
                "opt": opt.state_dict(),
                "state": dict(state),
                **(extra or {}),
            },
            tmp,
        )
        tmp.replace(path)

    start = time.thread_time()
    session = state["train_seconds"]
    deadline = start + args.minutes * 60.0
    tick, running = time.time(), {"ce": 0.0, "kd": 0.0, "gkd": 0.0}
    model.train()
    freeze_bn(model)
    while time.thread_time() < deadline:
        rows = [data.train[i] for i in rng.integers(0, len(data.train), args.batch)]
        slot = int(rng.integers(0, tdnet.SUBNETWORKS))
        out = losses(model, data.batch(rows), slot, adapters)
        loss = out["ce"] + args.kd_weight * out["kd"] + args.gkd_weight * out["gkd"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        state["train_seconds"] = session + time.thread_time() - start
        for key in running:
            running[key] += float(out[key].detach())
        if state["step"] % 10 == 0:
            log(
                f"step {state['step']} ce {running['ce'] / 10:.4f} kd {running['kd'] / 10:.4f} "
                f"gkd {running['gkd'] / 10:.4f} "
                f"gamma {float(model.net.apm.gamma):.3f} {(time.time() - tick) / 10:.2f} s/step"
            )
            tick, running = time.time(), {"ce": 0.0, "kd": 0.0, "gkd": 0.0}
        if state["step"] % 50 == 0:
            save(latest)
    val = evaluate(model, data, data.val[:: args.val_every])
    log(
        f"stop (minutes) step {state['step']} val mIoU {100 * val:.2f} "
        f"({len(data.val[:: args.val_every])} windows)"
    )
    if val > state["best_miou"]:
        state["best_miou"] = val
        save(CACHE / "best.pt", {"val_miou": val})
    save(latest)
    log(
        f"saved {latest} at step {state['step']} ({state['train_seconds'] / 60:.1f} min in all, "
        f"best val {100 * state['best_miou']:.2f})"
    )


def status(_args) -> None:
    for name in ("latest.pt", "best.pt"):
        path = CACHE / name
        if path.is_file():
            st = torch.load(path, map_location="cpu", weights_only=False)["state"]
            print(
                f"{path}: step {st['step']}, {st['train_seconds'] / 60:.1f} min, "
                f"best val mIoU {100 * st['best_miou']:.2f}"
            )
        else:
            print(f"{path}: none")


def export(args) -> None:
    from vss_models import bundle

    ckpt_path = args.checkpoint or CACHE / "best.pt"
    if not ckpt_path.is_file():
        raise SystemExit(
            f"{ckpt_path}: no trained checkpoint (train first); untrained weights are never exported"
        )
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = build(ckpt_path).eval()
    scripted = torch.jit.script(model)
    frozen = torch.jit.freeze(scripted, preserved_attrs=["step"])
    spec = zoo.SPECS[BASE]
    folder = (args.out or paths.BUNDLES_DIR) / NAME
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(frozen, str(folder / "model.pt"))
    k = len(spec.classes)
    st = ckpt["state"]
    manifest = {
        **bundle.manifest_head(
            spec,
            NAME,
            (
                f"TDNet-style distributed segmentation on ESPNet pieces: {tdnet.SUBNETWORKS} sub-networks "
                "round robin "
                "(half of ESPNet's stride-8 blocks each) + attention propagation from the previous frame; "
                f"distilled from {TEACHER}"
            ),
            "tdnet",
        ),
        "methods": {
            "forward": {
                "inputs": ["image uint8 [1,3,H,W] RGB"],
                "outputs": [f"logits float32 [1,{k},H,W]", "features float32 [1,256,H/8,W/8]"],
            },
            "step": {
                "inputs": [
                    "image uint8 [1,3,H,W] RGB",
                    "slot int: frames since the last reset modulo subnetworks",
                    "memory List[Tensor]: [] after a reset, else the previous step's",
                ],
                "outputs": [
                    f"logits float32 [1,{k},H,W]",
                    "features float32 [1,256,H/8,W/8] (after attention propagation)",
                    "memory List[Tensor]: [keys [1,64,h,w], values [1,256,h,w]] pooled stride 4",
                ],
            },
        },
        "logits_stride": 1,
        "features": {"channels": 256, "stride": 8},
        "subnetworks": tdnet.SUBNETWORKS,
        "training": {
            "command": "models/train_tdnet.py prepare && models/train_tdnet.py train",
            "data": "camvid-motion train split, p.mp4, windows of 2 consecutive frames",
            "teacher": TEACHER,
            "distillation": (
                "cross entropy + KL to the teacher's logits (T=2)"
                + (
                    f"; grouped feature distillation from step {st['gkd_from_step']}: the teacher's"
                    f" stride-8 map in {tdnet.SUBNETWORKS} channel groups, one per sub-network, the fused"
                    " map to the whole (1x1 adapters, training only)"
                    if "gkd_from_step" in st
                    else ""
                )
            ),
            "steps": st["step"],
            "train_minutes": round(st["train_seconds"] / 60, 1),
            # None when the checkpoint was saved mid-run, before any held-out scoring.
            "val_miou": round(100 * v, 2) if (v := ckpt.get("val_miou", st["best_miou"])) >= 0 else None,
        },
        "files": {"module": "model.pt"},
        "source": f"{spec.source}; sub-networks, APM and fine-tuning by models/train_tdnet.py",
        "license": "MIT",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {folder}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--minutes", type=float, default=40.0, help="CPU minutes of the training thread")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--kd-weight", type=float, default=1.0)
    t.add_argument("--gkd-weight", type=float, default=1.0, help="grouped feature distillation")
    t.add_argument("--val-every", type=int, default=5, help="score every n-th held-out window")
    sub.add_parser("status")
    e = sub.add_parser("export")
    e.add_argument("--checkpoint", type=Path)
    e.add_argument("--out", type=Path)
    args = ap.parse_args()
    {"prepare": prepare, "train": train, "status": status, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
