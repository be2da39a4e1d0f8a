"""Reference outputs of a bundle through Python's TorchScript path, as raw files for tests/model.rs.

    bundle_reference.py BUNDLE IMAGE OUTDIR [HxW]

BUNDLE is a bundle folder, manifest.json or shipped name; IMAGE a PNG/JPEG; HxW the model input
size (default: the bundle's native size). Writes to OUTDIR:

    image.rgb    the image's RGB bytes, row-major H x W x 3 (what the Rust test feeds as a frame)
    input.rgb    the model input, h x w x 3: the image resized with PIL bilinear if needed
    classes.u8   argmax of the logits for input.rgb, one byte per pixel (h/s x w/s)
    logits.f32   the logits, float32 little-endian, [K, h/s, w/s]
    input_torch.rgb, classes_torch.u8   only when resizing: the same with torch's resize
                 (F.interpolate bilinear, align_corners=False, antialias when shrinking, then
                 round and clamp), the definition the Rust pre-processing follows
    info.json    {"height", "width", "model_height", "model_width", "classes", "logits_height",
                  "logits_width"}
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))

from vss_models import bundle as bundles  # noqa: E402


def main(spec: str, image_path: str, out_dir: str, size: str = "") -> None:
    torch.set_num_threads(2)
    b = bundles.read(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = Image.open(image_path).convert("RGB")
    (out / "image.rgb").write_bytes(np.asarray(image, dtype=np.uint8).tobytes())
    h, w = (int(v) for v in size.split("x")) if size else b.native_size
    resized = image if image.size == (w, h) else image.resize((w, h), Image.BILINEAR)
    pixels = np.array(resized, dtype=np.uint8)  # a writable copy for torch.from_numpy
    (out / "input.rgb").write_bytes(pixels.tobytes())
    module = b.load_module()
    with torch.no_grad():
        img = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
        logits, _features = module(img)
    classes = logits.argmax(dim=1)[0].to(torch.uint8).numpy()
    (out / "classes.u8").write_bytes(classes.tobytes())
    (out / "logits.f32").write_bytes(logits[0].numpy().astype("<f4").tobytes())
    if resized is not image:
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)
        shrink = h < image.size[1] or w < image.size[0]
        x = torch.nn.functional.interpolate(
            x.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=shrink
        )
        x = x.round().clamp(0, 255).to(torch.uint8)
        (out / "input_torch.rgb").write_bytes(x[0].permute(1, 2, 0).contiguous().numpy().tobytes())
        with torch.no_grad():
            logits_t, _ = module(x)
        classes_t = logits_t.argmax(dim=1)[0].to(torch.uint8).numpy()
        (out / "classes_torch.u8").write_bytes(classes_t.tobytes())
    info = {
        "height": image.size[1],
        "width": image.size[0],
        "model_height": h,
        "model_width": w,
        "classes": int(logits.shape[1]),
        "logits_height": int(logits.shape[2]),
        "logits_width": int(logits.shape[3]),
    }
    (out / "info.json").write_text(json.dumps(info) + "\n")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
