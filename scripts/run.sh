#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on the shipped dashcam clip.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

CLIP="${1:-$ROOT/examples/data/highway_dashcam_960x540.mp4}"
OUT="$ROOT/out"
mkdir -p "$OUT"
unset GST_PLUGIN_PATH
target/release/examples/dump_mvs "$CLIP" "$OUT/motion_vectors.csv"
echo "Motion vectors of $CLIP: $OUT/motion_vectors.csv (picture types: $OUT/motion_vectors.types.csv)"
