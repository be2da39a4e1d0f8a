#!/usr/bin/env bash
# Installs everything vss needs (apt packages, the torch venv, the plugin build); idempotent.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run on its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(
  pkg-config clang libclang-dev python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  libgstrtspserver-1.0-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  python3-gi gir1.2-gstreamer-1.0
)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing apt packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The venv is 4.7 GB (torch with its CUDA wheels): keep one per requirements hash in a per-user
# cache and symlink .venv to it, so fresh clones (CI) reuse it.
install_venv() {
  local req="$ROOT/models/requirements.txt"
  local key
  key=$(sha256sum "$req" | cut -c1-16)
  local cache="${VSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vss}"
  local venv="$cache/venv-$key"
  if [ ! -f "$venv/.complete" ]; then
    log "creating Python venv at $venv (torch is large: this takes a while once)"
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$req"
    touch "$venv/.complete"
  fi
  local dev="$ROOT/models/requirements-dev.txt"
  local dev_mark="$venv/.dev-$(sha256sum "$dev" | cut -c1-16)"
  if [ ! -f "$dev_mark" ]; then
    "$venv/bin/pip" install -q -r "$dev"
    touch "$dev_mark"
  fi
  if [ -d .venv ] && [ ! -L .venv ]; then
    log ".venv is a real directory; leaving it as it is"
  elif [ "$(readlink .venv 2>/dev/null)" != "$venv" ]; then
    ln -sfn "$venv" .venv
  fi
}

# The plugins and the main job's example only: scripts/test.sh builds what the tests need in its
# own profile (a `cargo build --all-targets` here built every test binary a second time, since
# `cargo test` does not reuse them), and scripts/soak.sh builds its example on demand.
build() {
  export LIBTORCH_USE_PYTORCH=1
  export PATH="$ROOT/.venv/bin:$PATH"
  log "building the plugins (cargo build --release --workspace --lib --example segment)"
  cargo build --release --workspace --lib --example segment --quiet
}

install_apt
install_venv
if [ "${VSS_SETUP_NO_BUILD:-0}" != 1 ]; then build; fi
# Let GStreamer find the freshly built plugins (libgstvss.so, libgstvsscodec.so), and the plugin
# the checkout's bundles by name (scripts/install.sh installs both for use without the checkout).
export GST_PLUGIN_PATH="$ROOT/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export VSS_MODEL_PATH="$ROOT/models/bundles${VSS_MODEL_PATH:+:$VSS_MODEL_PATH}"
export LIBTORCH_USE_PYTORCH=1
export PATH="$ROOT/.venv/bin:$PATH"
