#!/usr/bin/env bash
# The test command: unit and end-to-end tests against the real PostgreSQL and
# RabbitMQ in both modes, then a smoke test of `lab up` with the service
# binaries as processes, in both modes, and the quick comparison report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
start=$(date +%s)
echo "== cargo test, sync mode"
cargo test --workspace --locked
echo "== cargo test, async mode"
cargo test --workspace --locked --features lab-tests/async --target-dir target/async
scripts/smoke.sh sync
scripts/smoke.sh async
# Both modes' debug builds now exist (the smoke tests built them): several
# instances of a service in each mode, real restarts under load (RabbitMQ and
# PostgreSQL among them, so nothing else runs beside it) and the quick
# comparison report, against real stacks of both with small delays.
echo "== lab up --replicas, both modes (crates/loadgen/tests/replicas.rs)"
cargo test -p loadgen --test replicas --locked -- --ignored
echo "== restarts under load, both modes (crates/loadgen/tests/faults.rs)"
cargo test -p loadgen --test faults --locked -- --ignored --test-threads=1
echo "== lab-load compare --quick, both modes (crates/loadgen/tests/compare.rs)"
cargo test -p loadgen --test compare --locked -- --ignored
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
