#!/usr/bin/env bash
# Seed corpora for the H.264 targets: small valid x264 streams (byte-stream), each prefixed
# with the targets' setup byte, so that libFuzzer mutates real bitstreams instead of noise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
encode() { # name width height x264-options
  gst-launch-1.0 -q videotestsrc num-buffers=14 pattern=pinwheel horizontal-speed=3 \
    ! "video/x-raw,format=I420,width=$2,height=$3,framerate=25/1" \
    ! x264enc speed-preset=ultrafast $4 ! h264parse \
    ! video/x-h264,stream-format=byte-stream ! filesink location="$tmp/$1.h264"
}
encode p-only 64 48 "bframes=0 cabac=false key-int-max=6"
encode b-frames 96 64 "bframes=2 b-adapt=false key-int-max=8"
encode other-size 48 80 "bframes=0 key-int-max=5 ref=2"
for target in h264_decoder vssdec_element; do
  mkdir -p "corpus/$target"
  for f in "$tmp"/*.h264; do
    for setup in 0 5 10; do
      { printf "\\x$(printf %02x "$setup")"; cat "$f"; } > "corpus/$target/$(basename "$f" .h264)-$setup"
    done
  done
done
echo "seeded corpus/h264_decoder and corpus/vssdec_element" >&2
