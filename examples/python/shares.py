#!/usr/bin/env python3
"""Per-frame class shares from vssmask's class-id masks, in Python through PyGObject.

    /usr/bin/python3 examples/python/shares.py INPUT [--frames N]

with the plugin installed (scripts/install.sh), or from the build with
GST_PLUGIN_PATH=target/release VSS_MODEL_PATH=models/bundles.

Pipeline: filesrc ! qtdemux ! h264parse ! vssdec ! vsssegment overlay=none stats=true
          ! vssmask output=class-ids resolution=model ! appsink
Each mask is a GRAY8 frame of class ids at the model's size; the class names come from the
`classes` field of its caps (index = class id), whether the frame was a keyframe and which
branch made it from vsssegment's `vss-segment` message for the same PTS (include/vss/vss.h
lists its fields). One tab-separated line per frame, as the Rust example `shares` prints:
frame index, PTS in seconds, `key` or `-`, the branch, then `Class=share` for every class, and
`none=share` when some pixels had no segmentation (id 255). Shares are of the mask's pixels and
sum to 1. Uses numpy when it is installed, plain bytes.count otherwise.
"""

import argparse
import math
import os
import sys
import warnings

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

try:
    import numpy
except ImportError:
    numpy = None

PIPELINE = (
    "filesrc name=src ! qtdemux ! h264parse ! vssdec "
    "! vsssegment name=seg overlay=none stats=true "
    "! vssmask output=class-ids resolution=model ! appsink name=sink sync=false"
)
CLASS_NONE = 255


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="an MP4 with H.264 video (as qtdemux ! h264parse reads)")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0: all)")
    parser.add_argument("--model", help="vsssegment's model (bundle name or path)")
    args = parser.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("vssmask") is None:
        sys.exit(
            "vssmask not found: install the plugin (scripts/install.sh) or set GST_PLUGIN_PATH "
            "to the folder with libgstvss.so (target/release after cargo build --release)"
        )
    if not os.path.exists(args.input):
        sys.exit(f"{args.input}: no such file")
    pipeline = Gst.parse_launch(PIPELINE)
    pipeline.get_by_name("src").set_property("location", args.input)
    if args.model:
        pipeline.get_by_name("seg").set_property("model", args.model)
    sink = pipeline.get_by_name("sink")
    try:
        run(pipeline, sink, args.frames)
    finally:
        pipeline.set_state(Gst.State.NULL)


def run(pipeline, sink, limit):
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        fail(bus, "cannot start the pipeline")
    pending = {}  # PTS -> (keyframe, branch) from vss-segment messages
    frame = 0
    while limit <= 0 or frame < limit:
        sample = sink.emit("try-pull-sample", 100 * Gst.MSECOND)
        drain_bus(bus, pending)
        if sample is None:
            if sink.get_property("eos"):
                break
            continue
        names, counts, total = class_counts(sample)
        buffer = sample.get_buffer()
        if buffer.pts not in pending:
            sys.exit(f"frame {frame}: no vss-segment message for its PTS")
        keyframe, branch = pending.pop(buffer.pts)
        pts = math.nan if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts / Gst.SECOND
        fields = [str(frame), f"{pts:.3f}", "key" if keyframe else "-", branch]
        fields += [f"{name}={counts[i] / total:.6f}" for i, name in enumerate(names)]
        if counts[CLASS_NONE]:
            fields.append(f"none={counts[CLASS_NONE] / total:.6f}")
        print("\t".join(fields), flush=True)
        frame += 1


def drain_bus(bus, pending):
    """Fails on an error; keeps (keyframe, branch) of each vss-segment message by PTS.
    vsssegment posts the message before pushing the frame, so it is on the bus by the time the
    mask reaches the appsink. Popping discards the message types not asked for."""
    while True:
        msg = bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)
        if msg is None:
            return
        if msg.type == Gst.MessageType.ERROR:
            fail(bus, "pipeline error", msg)
        s = msg.get_structure()
        if s is None or s.get_name() != "vss-segment":
            continue
        ok, pts = s.get_uint64("pts")
        if ok:
            pending[pts] = (s.get_value("keyframe"), s.get_string("branch"))


def class_counts(sample):
    """Class names from the caps, the pixel count of each class id and of CLASS_NONE, and the
    number of pixels."""
    s = sample.get_caps().get_structure(0)
    if s.get_value("format") != "GRAY8":
        sys.exit(f"expected GRAY8 masks, got {s.to_string()}")
    ok, array = s.get_array("classes")
    if not ok:
        sys.exit(f"mask caps without a classes field: {s.to_string()}")
    with warnings.catch_warnings():
        # PyGObject reads GstValueArray through the deprecated GValueArray.
        warnings.simplefilter("ignore", DeprecationWarning)
        names = [array.get_nth(i) for i in range(array.n_values)]
    width, height = s.get_value("width"), s.get_value("height")
    stride = (width + 3) & ~3  # GStreamer's default GRAY8 stride
    buffer = sample.get_buffer()
    ok, info = buffer.map(Gst.MapFlags.READ)
    if not ok:
        sys.exit("cannot map a mask buffer")
    try:
        data = bytes(info.data)
    finally:
        buffer.unmap(info)
    if len(data) < stride * (height - 1) + width:
        sys.exit(f"mask buffer of {len(data)} bytes for {width}x{height}")
    if numpy is not None:
        rows = numpy.frombuffer(data, numpy.uint8, stride * height).reshape(height, stride)
        counts = numpy.bincount(rows[:, :width].ravel(), minlength=256).tolist()
    else:
        if stride != width:
            data = b"".join(data[y * stride : y * stride + width] for y in range(height))
        counts = [0] * 256
        for i in list(range(len(names))) + [CLASS_NONE]:
            counts[i] = data.count(bytes([i]))
    return names, counts, width * height


def fail(bus, what, msg=None):
    msg = msg or bus.pop_filtered(Gst.MessageType.ERROR)
    if msg is not None:
        err, debug = msg.parse_error()
        sys.exit(f"{what}: {err.message} ({debug})")
    sys.exit(what)


if __name__ == "__main__":
    main()
