#!/usr/bin/env bash
# Builds the lab (release) and runs it: `scripts/lab.sh up`, `scripts/lab.sh up --mode async`,
# `scripts/lab.sh up --mode both` (sync on 80xx and async on 81xx side by side, separate
# databases, and the race page on http://localhost:3000), `scripts/lab.sh up --without email`, `scripts/lab.sh up --only payment`,
# `scripts/lab.sh status [--mode async]`.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=sync
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) mode=$2; shift 2 ;;
        --mode=*) mode=${1#--mode=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ "${args[0]:-}" = "up" ]; then
    scripts/ensure-services.sh
fi
build() {
    if [ "$1" = async ]; then
        cargo build --release --bins --quiet --workspace --features lab-tests/async --target-dir target/async
    else
        cargo build --release --bins --quiet
    fi
}
bin() { if [ "$1" = async ]; then echo target/async/release/lab; else echo target/release/lab; fi; }
case "$mode" in
    sync | async)
        build "$mode"
        exec "$(bin "$mode")" "${args[@]}"
        ;;
    both)
        build sync
        build async
        # Two stacks share one PostgreSQL: 20 services x 4 fit its default
        # max_connections (100); `lab up` refuses to start when they would not.
        if [ -z "${DB_MAX_CONNECTIONS:-}" ]; then
            export DB_MAX_CONNECTIONS=4
            echo "lab.sh: both stacks share PostgreSQL: DB_MAX_CONNECTIONS=4 per service (set it to override)"
        fi
        "$(bin sync)" "${args[@]}" &
        sync_pid=$!
        "$(bin async)" "${args[@]}" &
        async_pid=$!
        pids="$sync_pid $async_pid"
        trap 'kill -INT $pids 2>/dev/null || true' INT TERM
        if [ "${args[0]:-}" = "up" ]; then
            # The race page, once both launchers answer (their banners are out).
            for _ in $(seq 1 240); do
                curl -sf -o /dev/null 127.0.0.1:8000/services && curl -sf -o /dev/null 127.0.0.1:8100/services && break
                sleep 0.5
            done
            target/release/showdown &
            pids="$pids $!"
        fi
        # shellcheck disable=SC2086 # the pids are words
        wait $pids
        ;;
    *)
        echo "lab.sh: --mode is sync, async or both" >&2
        exit 2
        ;;
esac
