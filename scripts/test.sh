#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test: Rust (unit, element, pipeline) and
# Python (models/). Needs ../shared/data beside the checkout.
set -euo pipefail
# The build below is the tests' own (profile `testing`); setup's release build is not needed.
VSS_SETUP_NO_BUILD=1 source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

# Tests link the plugin into the test binary; a second copy from GST_PLUGIN_PATH would clash.
unset GST_PLUGIN_PATH

echo "== cargo test =="
# The `testing` profile (Cargo.toml): release code, no cross-crate LTO, in target/testing/. The
# tests load the plugins (.so) and run the examples from there; `cargo test` itself builds
# neither (only the test harnesses and the library it links), hence the build first.
cargo build --profile testing --workspace --lib --examples --quiet
# Every test binary runs, so one failure does not hide the others.
cargo test --profile testing --workspace --all-targets --no-fail-fast
echo "== analytics-v1_26: compile check only (GStreamer >= 1.26 API, not run here) =="
bash scripts/check-analytics.sh
echo "== pytest models/tests =="
.venv/bin/python -m pytest models/tests -q
