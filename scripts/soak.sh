#!/usr/bin/env bash
# Soak test (not part of CI): segments a live camera for a long time and reports resident memory
# after warm-up and at the end, frames processed and frames dropped. The camera is a loopback
# RTSP server (videotestsrc is-live, x264) started by the rtsp_segment example, read back over
# TCP through rtspsrc ! rtph264depay ! h264parse ! vssdec ! vsssegment.
#
#   scripts/soak.sh [DURATION] [WIDTHxHEIGHT@FPS]
#
# DURATION: seconds, or with a suffix s/m/h (default 30m). The camera defaults to 640x360@25.
# VSS_SOAK_WARMUP (seconds, default 30) is when the starting RSS is taken: after the model, the
# allocator and the thread pools have settled.
set -euo pipefail

duration_arg="${1:-30m}"
camera="${2:-640x360@25}"
warmup="${VSS_SOAK_WARMUP:-30}"
every=10

case "$duration_arg" in
  *h) duration=$(( ${duration_arg%h} * 3600 )) ;;
  *m) duration=$(( ${duration_arg%m} * 60 )) ;;
  *s) duration=${duration_arg%s} ;;
  *) duration=$duration_arg ;;
esac
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -le "$warmup" ]; then
  echo "soak: duration must be more than the ${warmup} s warm-up (got '$duration_arg')" >&2
  exit 2
fi
fps="${camera##*@}"

# Set up and build as the other scripts do (idempotent, quick when everything is there).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
# The example registers the plugin itself; a second copy from GST_PLUGIN_PATH would clash.
unset GST_PLUGIN_PATH
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/rtsp_segment"
[ -x "$bin" ] || cargo build --release --example rtsp_segment --quiet

log="$(mktemp -t vss-soak.XXXXXX)"
echo "soak: ${duration} s of a ${camera} camera over loopback RTSP; log in $log" >&2
"$bin" --serve-pattern "$camera" --transport tcp --duration "$duration" --quiet \
  --status-every "$every" | tee "$log"

# Status lines: "# status t=60s frames=1500 dropped=0 rss_mib=812.3 latency_p50_ms=41.2".
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
start_line=$(grep '^# status' "$log" | awk -v w="$warmup" '{ t=$3; sub("t=", "", t); sub("s", "", t); if (t + 0 >= w) { print; exit } }')
end_line=$(grep '^# status' "$log" | tail -n 1)
summary=$(grep -v '^# status' "$log" | grep '^# ' | tail -n 1)
if [ -z "$start_line" ] || [ -z "$end_line" ] || [ -z "$summary" ]; then
  echo "soak: the run ended early; see $log" >&2
  exit 1
fi
rss_start=$(echo "$start_line" | field rss_mib)
rss_end=$(echo "$end_line" | field rss_mib)
t_start=$(echo "$start_line" | field t | tr -d s)
t_end=$(echo "$end_line" | field t | tr -d s)
frames=$(echo "$summary" | sed -n 's/^# \([0-9]*\) frames.*/\1/p')
dropped=$(echo "$summary" | sed -n 's/.*, \([0-9]*\) dropped.*/\1/p')

echo
echo "== soak: ${duration} s, camera ${camera} =="
echo "RSS after warm-up (t=${t_start}s): ${rss_start} MiB"
echo "RSS at the end    (t=${t_end}s): ${rss_end} MiB"
awk -v a="$rss_start" -v b="$rss_end" -v t0="$t_start" -v t1="$t_end" 'BEGIN {
  d = b - a; h = (t1 - t0) / 3600;
  printf "RSS growth: %+.1f MiB (%+.1f MiB/hour)\n", d, (h > 0 ? d / h : 0) }'
echo "frames processed: ${frames} (${fps} fps for ${duration} s would be $(( fps * duration )))"
echo "frames dropped (timestamp gaps): ${dropped}"
echo "summary: ${summary#\# }"
