#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then segments the shipped dashcam clip with the default
# bundle and writes an overlay video (and one class-id PNG per frame).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

CLIP="${1:-$ROOT/examples/data/highway_dashcam_960x540.mp4}"
OUT="$ROOT/out"
mkdir -p "$OUT"
# The example links the plugin itself; a second copy from GST_PLUGIN_PATH would clash.
unset GST_PLUGIN_PATH
target/release/examples/segment "$CLIP" --out "$OUT/overlay.mp4" --masks "$OUT/masks"
echo
echo "Overlay video: $OUT/overlay.mp4"
echo "Class-id masks (one PNG per frame): $OUT/masks/"
