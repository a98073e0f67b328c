#!/usr/bin/env bash
# Schema-driven fuzzing: schemathesis (PyPI, version pinned, in a venv of its
# own) against every service of both native stacks (`lab up --mode both`,
# debug builds, small delays, throwaway databases), each service's own
# /openapi.json, all phases (examples, coverage, fuzzing, stateful through the
# links it infers), with the checks for server errors and for status code,
# content type and response schema conformance. A fixed seed keeps a run
# reproducible (`st run ... --seed 1` replays it). Then `lab-load audit`
# checks what the fuzzer's requests left in each stack's records, once the
# work drained: every order, payment and report final, no stock held by a
# closed order, reserved stock equal to what reservations hold, clicks stored
# equal to clicks answered 200 less those a repeated Idempotency-Key made a
# no-op (clicks_deduplicated_total). (The fan-out is not audited here: the
# fuzzer calls analytics' own /log_update, so updates logged outnumber the
# product updates answered.)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
say() { echo "check-schemathesis: $*"; }

SCHEMATHESIS_VERSION=4.32.5
SEED=1
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sync-vs-async-lab"
venv="$cache/schemathesis-$SCHEMATHESIS_VERSION"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION$"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
say "$("$venv/bin/st" --version)"

scripts/ensure-services.sh >/dev/null
export EMAIL_DELAY_MS=20 PAYMENT_DELAY_MS=20 SEARCH_DELAY_MS=10 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=10000 RUST_LOG=warn BROKER_PREFIX="st-$$"
tmp=$(mktemp -d)
cleanup() {
    both_stacks_down
    rm -rf "$tmp"
}
trap cleanup EXIT
both_stacks_up "$tmp" schemathesis || { say "the stacks did not come up"; exit 1; }

failed=0
for mode in sync async; do
    base=80
    [ "$mode" = async ] && base=81
    for n in 01 02 03 04 05 06 07 08 09 10; do
        url="http://127.0.0.1:$base$n"
        if (cd "$tmp" && "$venv/bin/st" run "$url/openapi.json" --url "$url" --seed "$SEED" \
            --max-examples "$MAX_EXAMPLES" --no-color \
            --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
            >"$tmp/st-$mode-$n.log" 2>&1); then
            say "ok: $mode $url: $(grep -E '[0-9]+ generated' "$tmp/st-$mode-$n.log" | sed 's/^ *//')"
        else
            sed -n '/FAILURES/,/SUMMARY/p' "$tmp/st-$mode-$n.log" | head -60
            say "FAILED: $mode $url: $(grep -E '[0-9]+ generated' "$tmp/st-$mode-$n.log" | sed 's/^ *//')"
            failed=$((failed + 1))
        fi
    done
done
for mode in sync async; do
    "$(lab_bin "$mode" debug)/lab-load" audit --mode "$mode" \
        --database-url "postgres://postgres@127.0.0.1:5432/${BOTH_DB}_$mode" || failed=$((failed + 1))
done
[ "$failed" -eq 0 ] || { say "$failed failed"; exit 1; }
say "all passed: 20 services fuzzed, both stacks' records audited"
