#!/usr/bin/env bash
# Installs the vss GStreamer plugins and the shipped model bundles for this user, so that
# gst-launch-1.0 and applications find them from any folder, without GST_PLUGIN_PATH and
# without the checkout:
#   plugins (target/release/libgstvss*.so) -> $XDG_DATA_HOME/gstreamer-1.0/plugins
#   bundles (models/bundles/*)             -> $XDG_DATA_HOME/vss/models
# ($XDG_DATA_HOME defaults to ~/.local/share; GStreamer scans the first folder, the plugin
# searches the second after $VSS_MODEL_PATH.) Sets everything up first (scripts/setup.sh: apt
# packages, the venv, the release build); idempotent. The plugin loads libtorch from the
# per-user venv cache (~/.cache/vss/venv-<hash>), which must stay.
#
#   scripts/install.sh               install, or update what an earlier run installed
#   scripts/install.sh --uninstall   remove what it installs
#
# VSS_BUILD_DIR names the folder with the built plugins (default target/release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLES="$ROOT/models/bundles"

say() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mode=install
case "${1:-}" in
  "") ;;
  --uninstall) mode=uninstall ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) die "unknown argument '$1' (usage: scripts/install.sh [--uninstall])" ;;
esac

DATA="${XDG_DATA_HOME:-}"
[ -n "$DATA" ] || DATA="${HOME:?neither XDG_DATA_HOME nor HOME is set}/.local/share"
# The XDG specification ignores a relative XDG_DATA_HOME, and so does the plugin's search.
case "$DATA" in /*) ;; *) die "XDG_DATA_HOME must be an absolute path, not '$DATA'" ;; esac
PLUGIN_DIR="$DATA/gstreamer-1.0/plugins"
MODEL_DIR="$DATA/vss/models"

shopt -s nullglob
shipped=()
for dir in "$BUNDLES"/*/; do
  [ -f "$dir/manifest.json" ] && shipped+=("$(basename "$dir")")
done
[ ${#shipped[@]} -gt 0 ] || die "no bundles in $BUNDLES"

if [ "$mode" = uninstall ]; then
  for so in "$PLUGIN_DIR"/libgstvss*.so; do
    rm -f "$so" && say "removed $so"
  done
  for name in "${shipped[@]}"; do
    if [ -d "$MODEL_DIR/$name" ]; then
      rm -rf "${MODEL_DIR:?}/$name" && say "removed $MODEL_DIR/$name"
    fi
  done
  # Bundles of the user's own stay, and with them the folder.
  rmdir "$MODEL_DIR" "$DATA/vss" 2>/dev/null || true
  exit 0
fi

source "$ROOT/scripts/setup.sh"
BUILD="${VSS_BUILD_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
plugins=("$BUILD"/libgstvss*.so)
[ ${#plugins[@]} -gt 0 ] || die "no libgstvss*.so in $BUILD (cargo build --release builds them)"

# The plugins must load without the checkout: libtorch comes through their rpath.
for so in "${plugins[@]}"; do
  if missing=$(ldd "$so" | grep 'not found'); then
    die "$so cannot load: $missing"
  fi
done

# Copy, then rename over the old file: a process that has the old one mapped keeps it intact.
mkdir -p "$PLUGIN_DIR" "$MODEL_DIR"
installed=()
for so in "${plugins[@]}"; do
  dest="$PLUGIN_DIR/$(basename "$so")"
  cp "$so" "$dest.part" && mv -f "$dest.part" "$dest"
  installed+=("$dest")
  say "plugin  $dest"
done
# A vss plugin installed earlier but no longer built would shadow or clash with the new ones.
for so in "$PLUGIN_DIR"/libgstvss*.so; do
  case " ${installed[*]} " in *" $so "*) ;; *) rm -f "$so" && say "removed stale $so" ;; esac
done
for name in "${shipped[@]}"; do
  rm -rf "${MODEL_DIR:?}/.$name.part"
  cp -r "$BUNDLES/$name" "$MODEL_DIR/.$name.part"
  rm -rf "${MODEL_DIR:?}/$name"
  mv "$MODEL_DIR/.$name.part" "$MODEL_DIR/$name"
done
say "bundles $MODEL_DIR: ${shipped[*]}"

torch=$(readelf -d "${plugins[@]}" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p' | sort -u)
say "libtorch from ${torch:-?} (the venv cache: keep it)"
say "check:     gst-inspect-1.0 vsssegment"
say "uninstall: $ROOT/scripts/install.sh --uninstall"
