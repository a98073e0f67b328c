#!/usr/bin/env bash
# Measures a running sync stack (start it with `scripts/lab.sh up`) with the
# load driver: idle memory, then each scenario at the issue's load. A
# Postgres CHECKPOINT before each scenario keeps one scenario's writes from
# being flushed during the next one's measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
load=target/release/lab-load
seconds=${BENCH_SECONDS:-20}
checkpoint() { psql -h 127.0.0.1 -U postgres -d postgres -qc CHECKPOINT >/dev/null 2>&1 || true; }

echo "== idle memory"
$load memory
for args in "1 --clients 20" "3 --clients 20" "6 --clients 50" "2 --clients 20" "5 --clients 20" "4 --clients 2"; do
    checkpoint
    # shellcheck disable=SC2086
    $load run $args --duration "$seconds" | tail -n +2
done
