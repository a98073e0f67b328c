#!/usr/bin/env bash
# Builds the lab (release) and runs it: `scripts/lab.sh up`, `scripts/lab.sh up --without email`,
# `scripts/lab.sh up --only payment`, `scripts/lab.sh status`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "up" ]; then
    scripts/ensure-services.sh
fi
cargo build --release --bins --quiet
exec target/release/lab "$@"
