#!/usr/bin/env bash
# Smoke test of the one-command path: `lab up` starts the ten service
# binaries as processes on the contract's ports (against a throwaway
# database, delays set small), each scenario answers as the contract says,
# and Ctrl-C (SIGINT) stops them all. `scripts/smoke.sh async` does the same
# for the async build (ports 81xx, its own broker prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-sync}
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh

lab_build "$mode" debug
bin=$(lab_bin "$mode" debug)
if [ "$mode" = async ]; then
    base=81
    export BROKER_PREFIX="smoke-$$"
else
    base=80
fi
if curl -s -o /dev/null --max-time 1 "localhost:${base}01/health"; then
    echo "smoke: a stack already answers on port ${base}01; stop it to run the smoke test (skipped)"
    exit 0
fi

db="lab_smoke_${mode}_$$"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export EMAIL_DELAY_MS=20 PAYMENT_DELAY_MS=20 SEARCH_DELAY_MS=10 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=10000 RUST_LOG=warn
log=$(mktemp)
# More connections than PostgreSQL takes: `lab up` refuses to start (instead
# of services that answer 503 after DB_ACQUIRE_TIMEOUT_MS under load).
if DB_MAX_CONNECTIONS=100000 "$bin/lab" up >"$log" 2>&1; then
    echo "smoke: lab up started with DB_MAX_CONNECTIONS=100000"
    exit 1
fi
grep -q "raise PostgreSQL's max_connections" "$log" || { cat "$log"; echo "smoke: lab up did not say why it refused"; exit 1; }
if curl -s -o /dev/null --max-time 1 "localhost:${base}01/health"; then
    echo "smoke: a service runs although lab up refused to start"
    exit 1
fi
drop_database "$db"
lab_up "$bin" "$log"
lab=$LAB_PID
cleanup() {
    lab_stop "$lab"
    drop_database "$db"
    [ "$mode" = async ] && delete_queues "$BROKER_PREFIX"
    rm -f "$log"
}
trap cleanup EXIT
lab_wait "$log" "$lab"

passed=1 # the refusal above
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
# The contract's answers: sync waits for the work, async accepts it.
if [ "$mode" = async ]; then codes=(202 202 200 202 202 200); else codes=(201 200 200 200 400 200); fi
for port in $(seq "${base}01" "${base}10"); do
    for _ in $(seq 1 40); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$port/ready")" = 200 ] && break
        sleep 0.25
    done
done
check "${codes[0]}" -X POST "localhost:${base}01/register" -H "$J" -d '{"email": "smoke@example.com"}'
check "${codes[1]}" -X POST "localhost:${base}02/process_payment" -H "$J" -d '{"order_id": 123, "amount": 100.0}'
check "${codes[2]}" -X PUT "localhost:${base}03/products/1" -H "$J" -d '{"name": "Updated Laptop", "stock": 75}'
check "${codes[3]}" -X POST "localhost:${base}04/generate_report" -H "$J" -d '{"report_type": "monthly"}'
check "${codes[4]}" -X POST "localhost:${base}05/create_order" -H "$J" -d '{"product_id": 1, "quantity": 1}'
check "${codes[5]}" -X POST "localhost:${base}06/track_click" -H "$J" -d '{"user_id": 123, "page": "homepage"}'
if [ "$mode" = async ]; then
    # Completion, not only acceptance: the welcome email reaches the user's record.
    for _ in $(seq 1 40); do
        curl -s "localhost:${base}01/users/1" | grep -q '"email_status":"sent"' && break
        sleep 0.25
    done
    check 200 "localhost:${base}01/users/1"
    curl -s "localhost:${base}01/users/1" | grep -q '"email_status":"sent"' || { echo "smoke: the async email never completed"; cat "$log"; exit 1; }
fi
# The launcher's control endpoint stops a service for real (its port then
# refuses connections) and starts it again.
control="127.0.0.1:${base}00"
check 200 -X POST "$control/services/email/stop"
if curl -s -o /dev/null --max-time 2 "localhost:${base}07/health"; then
    echo "smoke: email still answers after the launcher stopped it"
    exit 1
fi
curl -s "$control/services" | grep -q '"name":"email","port":'"${base}07"',"state":"stopped"' || { echo "smoke: the launcher does not list email as stopped"; exit 1; }
check 200 -X POST "$control/services/email/start"
check 200 "localhost:${base}07/health"
check 404 -X POST "$control/services/nope/stop"

# Clients that give up after 5 ms, before most answers: every operation
# they started must still end (the driver reads the stack's records back).
if ! hangups=$("$bin/lab-load" run 1 5 6 --mode "$mode" --clients 4 --duration 2 --warmup 0 \
    --drain-timeout 20 --hangup-after-ms 5 2>&1); then
    echo "$hangups"
    echo "smoke: the load with hang-ups failed"
    exit 1
fi
echo "$hangups" | grep -E 'reconciled|hung up'
if [ "$(echo "$hangups" | grep -c '^ *reconciled: ')" != 3 ] || echo "$hangups" | grep -q 'NOT RECONCILED'; then
    echo "$hangups"
    echo "smoke: work that clients hung up on was left unfinished"
    exit 1
fi
passed=$((passed + 1))
for port in $(seq "${base}01" "${base}10"); do
    check 200 "localhost:$port/ready"
done

kill -INT "$lab"
if ! timeout 30 tail --pid="$lab" -f /dev/null; then
    echo "smoke: the stack did not stop on SIGINT"
    exit 1
fi
passed=$((passed + 1))
echo "smoke ($mode): $passed passed, 0 failed"
