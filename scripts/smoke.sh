#!/usr/bin/env bash
# Smoke test of the one-command path: builds the mode's binaries (debug) and
# runs `lab-load smoke`, which starts `lab up` for real on the contract's
# ports against a throwaway database and broker prefix and checks it (see
# crates/loadgen/src/smoke.rs). `scripts/smoke.sh async` for the async build.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-sync}
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
lab_build "$mode" debug
bin=$(lab_bin "$mode" debug)
exec "$bin/lab-load" smoke --mode "$mode" --bin "$bin"
