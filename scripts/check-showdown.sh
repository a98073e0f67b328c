#!/usr/bin/env bash
# The race page in a real browser: `lab up --mode both` (debug builds, small
# delays, throwaway databases, their own broker prefix, each stack with its
# launcher's control endpoint, the showdown on a free port), and
# crates/showdown/browser/showdown.test.mjs drives Debian's chromium through
# playwright-core. Screenshots land in target/showdown-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
say() { echo "check-showdown: $*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

scripts/ensure-services.sh >/dev/null
if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd crates/showdown/browser && npm ci --no-audit --no-fund --loglevel=error)


export EMAIL_DELAY_MS=150 PAYMENT_DELAY_MS=300 SEARCH_DELAY_MS=20 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=10000 RUST_LOG=warn DB_MAX_CONNECTIONS=4 BROKER_PREFIX="showdown-$$"
SHOWDOWN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SHOWDOWN_PORT
tmp=$(mktemp -d)
cleanup() {
    both_stacks_down
    rm -rf "$tmp"
}
trap cleanup EXIT
both_stacks_up "$tmp" showdown || { say "the stacks did not come up"; exit 1; }
port=$SHOWDOWN_PORT
say "both stacks and the showdown (127.0.0.1:$port) are up, as lab up --mode both runs them"

shots=target/showdown-screenshots
if ! (cd crates/showdown/browser && SHOWDOWN_URL="http://127.0.0.1:$port" SCREENSHOTS="../../../$shots" node --test showdown.test.mjs); then
    say "showdown log:"
    cat "$tmp/both.log"
    exit 1
fi
say "screenshots in $shots/"
