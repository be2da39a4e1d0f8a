"""Encodes a short moving test clip with PyAV's FFmpeg: encode_pyav.py CODEC FRAMES OUT.

Used where GStreamer's own encoder for a codec is unusable (avenc_mpeg2video in 1.22).
Deterministic: a textured pattern that pans 3 px per frame, GOP 12, no B-frames.
"""

import sys
from fractions import Fraction

import av
import numpy as np


def frame_at(t: int, width: int = 320, height: int = 240) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    x = x + 3 * t
    r = (128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)).astype(np.uint8)
    g = ((x * 5 + y * 3) % 256).astype(np.uint8)
    b = ((x // 16 + y // 16) % 2 * 200).astype(np.uint8)
    return np.stack([r, g, b], axis=-1)


def main(codec: str, frames: int, out: str) -> None:
    with av.open(out, "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 25)
        stream.codec_context.gop_size = 12
        stream.codec_context.max_b_frames = 0
        stream.bit_rate = 800_000
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_at(t), format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
