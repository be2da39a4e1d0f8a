#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test: Rust (unit, element, pipeline) and
# Python (models/). Needs ../shared/data beside the checkout.
set -euo pipefail
# cargo test builds what the tests need (plugins, examples, test binaries) in one pass.
VSS_SETUP_NO_BUILD=1 source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

# Tests link the plugin into the test binary; a second copy from GST_PLUGIN_PATH would clash.
unset GST_PLUGIN_PATH

echo "== cargo test =="
# Every test binary runs, so one failure does not hide the others.
# The `testing` profile (Cargo.toml): release code, no cross-crate LTO, target/testing/.
cargo test --profile testing --workspace --all-targets --no-fail-fast
echo "== analytics-v1_26: compile check only (GStreamer >= 1.26 API, not run here) =="
bash scripts/check-analytics.sh
echo "== pytest models/tests =="
.venv/bin/python -m pytest models/tests -q
