#!/usr/bin/env bash
# Start-up cost of the plugins: wall time and max RSS of `gst-inspect-1.0 vssdec` against
# `gst-inspect-1.0 avdec_h264` (goal: within 1.5x of both) and `gst-inspect-1.0 vsssegment`, and
# of a decode-only pipeline on the shipped clip with vssdec against avdec_h264.
#
#   scripts/bench_inspect.sh                          # this checkout's target/release
#   BEFORE=/path/to/other/target/release scripts/bench_inspect.sh   # ... beside another build
#
# Cases run alternating, RUNS times each (default 7); medians. Each build gets its own warm
# registry (one untimed run first), so two builds that both hold vssdec never meet.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-7}"
AFTER="${AFTER:-$ROOT/target/release}"
BEFORE="${BEFORE:-}"
CLIP="$ROOT/examples/data/highway_dashcam_960x540.mp4"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

for so in libgstvsscodec.so libgstvss.so; do
  [ -f "$AFTER/$so" ] || { echo "$AFTER/$so is missing: cargo build --release --workspace" >&2; exit 1; }
done

DECODE="filesrc location=$CLIP ! qtdemux ! h264parse ! %s ! fakesink"
# label|program and arguments (%s in DECODE is the decoder)
CASES=(
  "inspect vssdec|gst-inspect-1.0 vssdec"
  "inspect avdec_h264|gst-inspect-1.0 avdec_h264"
  "inspect vsssegment|gst-inspect-1.0 vsssegment"
  "decode vssdec|gst-launch-1.0 -q $(printf "$DECODE" vssdec)"
  "decode avdec_h264|gst-launch-1.0 -q $(printf "$DECODE" avdec_h264)"
)
# Each case's reference for the ratio.
declare -A REF=(["inspect vssdec"]="inspect avdec_h264" ["inspect vsssegment"]="inspect avdec_h264"
  ["decode vssdec"]="decode avdec_h264")

BUILDS=(after)
declare -A DIR=([after]="$AFTER")
if [ -n "$BEFORE" ]; then
  BUILDS=(before after)
  DIR[before]="$BEFORE"
fi

# Runs one case of one build; appends "wall_s rss_kb" to its sample file.
measure() {
  local build="$1" label="$2" cmd="$3"
  local out="$SCRATCH/$build.$label"
  # shellcheck disable=SC2086 # the command is split into words on purpose
  GST_PLUGIN_PATH="${DIR[$build]}" GST_REGISTRY="$SCRATCH/registry-$build.bin" \
    /usr/bin/time -f '%e %M' -o "$out.one" $cmd >/dev/null 2>"$out.err" \
    || { echo "failed: $cmd (build $build)" >&2; cat "$out.err" >&2; exit 1; }
  cat "$out.one" >>"$out"
}

median() { # column number, file
  awk -v c="$1" '{print $c}' "$2" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for build in "${BUILDS[@]}"; do echo "build $build: GST_PLUGIN_PATH=${DIR[$build]}"; done
echo "each: GST_PLUGIN_PATH=<build> GST_REGISTRY=<per build> /usr/bin/time -f '%e %M' <command>"
for c in "${CASES[@]}"; do echo "  ${c%%|*}: ${c#*|}"; done
echo "runs: $RUNS per case and build, alternating; medians"

# Warm each build's registry.
for build in "${BUILDS[@]}"; do
  GST_PLUGIN_PATH="${DIR[$build]}" GST_REGISTRY="$SCRATCH/registry-$build.bin" \
    gst-inspect-1.0 vssdec >/dev/null
done

for _ in $(seq "$RUNS"); do
  for c in "${CASES[@]}"; do
    for build in "${BUILDS[@]}"; do measure "$build" "${c%%|*}" "${c#*|}"; done
  done
done

printf '\n%-20s %-7s %8s %8s %11s %11s\n' case build wall_s rss_MB "wall/ref" "rss/ref"
for c in "${CASES[@]}"; do
  label="${c%%|*}"
  for build in "${BUILDS[@]}"; do
    f="$SCRATCH/$build.$label"
    wall=$(median 1 "$f")
    rss=$(median 2 "$f")
    ratio_wall="" ratio_rss=""
    if [ -n "${REF[$label]:-}" ]; then
      ref="$SCRATCH/$build.${REF[$label]}"
      ratio_wall=$(awk -v a="$wall" -v b="$(median 1 "$ref")" 'BEGIN {printf "%.2fx", a / b}')
      ratio_rss=$(awk -v a="$rss" -v b="$(median 2 "$ref")" 'BEGIN {printf "%.2fx", a / b}')
    fi
    printf '%-20s %-7s %8.2f %8.1f %11s %11s\n' "$label" "$build" "$wall" \
      "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$ratio_wall" "$ratio_rss"
  done
done
echo "ref: inspect -> inspect avdec_h264, decode vssdec -> decode avdec_h264 (same build)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
