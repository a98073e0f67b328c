#!/usr/bin/env bash
# Smoke test of the one-command path: `lab up` starts the ten service
# binaries as processes on the contract's ports (against a throwaway
# database, delays set small), each scenario answers as the contract says,
# and Ctrl-C (SIGINT) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

if curl -s -o /dev/null --max-time 1 localhost:8001/health; then
    echo "smoke: a stack already answers on port 8001; stop it to run the smoke test (skipped)"
    exit 0
fi
cargo build --bins --quiet --locked

db="lab_smoke_$$"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export EMAIL_DELAY_MS=20 PAYMENT_DELAY_MS=20 SEARCH_DELAY_MS=10 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=10000 RUST_LOG=warn
log=$(mktemp)
target/debug/lab up >"$log" 2>&1 &
lab=$!
cleanup() {
    kill -INT "$lab" 2>/dev/null || true
    wait "$lab" 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
    grep -q "10 of 10 services up" "$log" && break
    kill -0 "$lab" 2>/dev/null || break
    sleep 0.5
done
if ! grep -q "10 of 10 services up" "$log"; then
    cat "$log"
    echo "smoke: the stack did not come up"
    exit 1
fi

passed=0
J='Content-Type: application/json'
check() {
    local expected=$1
    shift
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@")
    if [ "$got" != "$expected" ]; then
        echo "smoke: $* answered $got, expected $expected"
        cat "$log"
        exit 1
    fi
    passed=$((passed + 1))
}
check 201 -X POST localhost:8001/register -H "$J" -d '{"email": "smoke@example.com"}'
check 200 -X POST localhost:8002/process_payment -H "$J" -d '{"order_id": 123, "amount": 100.0}'
check 200 -X PUT localhost:8003/products/1 -H "$J" -d '{"name": "Updated Laptop", "stock": 75}'
check 200 -X POST localhost:8004/generate_report -H "$J" -d '{"report_type": "monthly"}'
check 400 -X POST localhost:8005/create_order -H "$J" -d '{"product_id": 1, "quantity": 1}'
check 200 -X POST localhost:8006/track_click -H "$J" -d '{"user_id": 123, "page": "homepage"}'
for port in $(seq 8001 8010); do
    check 200 "localhost:$port/ready"
done

kill -INT "$lab"
if ! timeout 30 tail --pid="$lab" -f /dev/null; then
    echo "smoke: the stack did not stop on SIGINT"
    exit 1
fi
passed=$((passed + 1))
echo "smoke: $passed passed, 0 failed"
