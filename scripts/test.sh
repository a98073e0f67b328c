#!/usr/bin/env bash
# The test command: unit and end-to-end tests against the real PostgreSQL,
# then a smoke test of `lab up` with the service binaries as processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
start=$(date +%s)
cargo test --workspace --locked
scripts/smoke.sh
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
