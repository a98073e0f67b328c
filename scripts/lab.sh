#!/usr/bin/env bash
# Builds the lab (release) and runs it: `scripts/lab.sh up`, `scripts/lab.sh up --mode async`,
# `scripts/lab.sh up --mode both` (sync on 80xx and async on 81xx side by side, separate
# databases, and the race page on http://localhost:3000), `scripts/lab.sh up --without email`,
# `scripts/lab.sh up --only payment`, `scripts/lab.sh status [--mode async]`.
# Everything past the build is `target/release/lab` (crates/lab): it runs the
# other build's `lab` for the other mode, and both for `--mode both`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
mode=sync
prev=
for arg in "$@"; do
    case "$arg" in
        --mode=*) mode=${arg#--mode=} ;;
        *) [ "$prev" = --mode ] && mode=$arg ;;
    esac
    prev=$arg
done
case "$mode" in
    sync | async | both) ;;
    *) echo "lab.sh: --mode is sync, async or both" >&2; exit 2 ;;
esac
if [ "${1:-}" = up ]; then
    scripts/ensure-services.sh
fi
[ "$mode" = async ] || lab_build sync release
[ "$mode" = sync ] || lab_build async release
if [ "$mode" = async ]; then bin=$(lab_bin async release); else bin=$(lab_bin sync release); fi
exec "$bin/lab" "$@"
