#!/usr/bin/env bash
# The test command: unit and end-to-end tests against the real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
start=$(date +%s)
cargo test --workspace --locked
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
