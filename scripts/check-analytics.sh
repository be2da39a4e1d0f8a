#!/usr/bin/env bash
# Compile-checks the `analytics-v1_26` feature (GstAnalyticsSegmentationMtd, GStreamer >= 1.26)
# on a system with an older GStreamer, such as Debian 12's 1.22 that this project builds on.
#
# Type-checking needs no GStreamer 1.26 library, only the -sys crates' build scripts to accept
# it: system-deps asks pkg-config for gstreamer-1.0 >= 1.26 and gstreamer-analytics-1.0 >= 1.26
# and fails. SYSTEM_DEPS_<NAME>_NO_PKG_CONFIG skips that probe and SYSTEM_DEPS_<NAME>_LIB names
# the library to link, which `cargo check` never does. Nothing here links or runs the feature.
#
# --profile testing shares the build scripts' outputs (libtorch's C++ wrapper) with the test
# build of scripts/test.sh, so after it this only checks the crates again (about a minute).
# `cargo check` only: a compile error fails the test run, a lint elsewhere in the crate does not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LIBTORCH_USE_PYTORCH=1
export PATH="$PWD/.venv/bin:$PATH"
export SYSTEM_DEPS_GSTREAMER_1_0_NO_PKG_CONFIG=1
export SYSTEM_DEPS_GSTREAMER_1_0_LIB=gstreamer-1.0
export SYSTEM_DEPS_GSTREAMER_ANALYTICS_1_0_NO_PKG_CONFIG=1
export SYSTEM_DEPS_GSTREAMER_ANALYTICS_1_0_LIB=gstanalytics-1.0

cargo check --profile testing --lib --features analytics-v1_26
