#!/usr/bin/env bash
# Checks monitoring/ without Docker:
#   1. promtool: the compose Prometheus config (as is, and a copy whose
#      container paths point at the repository's files so the target and rule
#      files are validated too), every rule file, the rules' unit tests;
#   2. the Grafana dashboards' structure (scripts/check_dashboards.py);
#   3. live: both stacks run natively (debug builds, as scripts/smoke.sh),
#      a real Prometheus scrapes them with the same config, jobs and rules
#      (hosts rewritten to 127.0.0.1), every scenario is loaded briefly in
#      each mode, a poison message makes a retry and a dead letter, then every
#      panel's expression and every recording rule must return data (cAdvisor's
#      container_* panels excepted: they are only checked to evaluate);
#   4. the checker itself must fail on a dashboard with a misspelled metric.
# `scripts/check-monitoring.sh --static` runs steps 1 and 2 only.
# Installs Debian's prometheus package (prometheus, promtool) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
say() { echo "check-monitoring: $*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
static_only=false
[ "${1:-}" = --static ] && static_only=true

# --- prometheus and promtool -------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    say "installing Debian's prometheus package"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package may start its own daemon on :9090 (where systemd runs);
    # we run our own instance on a free port, so stop and disable that one.
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    else
        as_root service prometheus stop >/dev/null 2>&1 || true
    fi
fi

tmp=$(mktemp -d)
pids=()
prefix=""
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null; done
    both_stacks_down
    if [ -n "$prefix" ] && command -v rabbitmqctl >/dev/null 2>&1; then
        for x in $(rabbitmqctl list_exchanges -q name 2>/dev/null | grep "^$prefix\\."); do
            curl -s -o /dev/null -u guest:guest -X DELETE "http://127.0.0.1:15672/api/exchanges/%2f/$x"
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- 1. promtool -------------------------------------------------------------
config=monitoring/prometheus/prometheus.yml
say "promtool check config $config"
promtool check config "$config"

# The same file with the container's paths pointing at the repository (so the
# file_sd target files and the rule files are checked too) and the compose
# host names at 127.0.0.1 (the native config of the live check).
native_config() { # $1: prometheus's own port
    mkdir -p "$tmp/targets"
    for f in monitoring/prometheus/targets/*.yml; do
        sed -E 's#\[[a-z]+-(sync|async):#[127.0.0.1:#' "$f" >"$tmp/targets/$(basename "$f")"
    done
    sed -e "s#/etc/prometheus/targets/#$tmp/targets/#" \
        -e "s#/etc/prometheus/rules/#$repo/monitoring/prometheus/rules/#" \
        -e 's#rabbitmq:15692#127.0.0.1:15692#' \
        -e "s#localhost:9090#127.0.0.1:$1#" \
        "$config" >"$tmp/prometheus.yml"
    if ! grep -q "$tmp/targets/" "$tmp/prometheus.yml" || ! grep -q "$repo/monitoring/prometheus/rules/" "$tmp/prometheus.yml"; then
        say "could not rewrite the paths of $config"
        exit 1
    fi
}
native_config 9090
say "promtool check config (copy with the repository's targets and rules)"
promtool check config "$tmp/prometheus.yml" | sed "s#$tmp/#<tmp>/#g"
for f in monitoring/prometheus/rules/*.yml; do
    promtool check rules "$f"
done
say "promtool test rules"
promtool test rules monitoring/prometheus/tests/*.yml

# --- 2. dashboards' structure ------------------------------------------------
say "dashboards' structure"
python3 scripts/check_dashboards.py monitoring/grafana/dashboards/*.json
bad=$tmp/bad-datasource.json
sed 's/"uid": "prometheus"/"uid": "other"/' monitoring/grafana/dashboards/broker.json >"$bad"
if python3 scripts/check_dashboards.py "$bad" >"$tmp/neg.log" 2>&1; then
    cat "$tmp/neg.log"
    say "the structure check accepted a dashboard with another datasource uid"
    exit 1
fi
say "the structure check rejects a dashboard with another datasource uid (as it should)"

if $static_only; then
    say "static checks passed (--static: no live check)"
    exit 0
fi

# --- 3. live -----------------------------------------------------------------
scripts/ensure-services.sh
export EMAIL_DELAY_MS=20 PAYMENT_DELAY_MS=20 SEARCH_DELAY_MS=10 CACHE_DELAY_MS=10 ANALYTICS_DELAY_MS=10
export REPORT_ITERATIONS=10000 RUST_LOG=warn CONSUMER_RETRY_BASE_MS=50
prefix="moncheck-$$"
export BROKER_PREFIX=$prefix
say "building both modes (debug) and starting them with lab up --mode both"
both_stacks_up "$tmp" moncheck || { say "the stacks did not come up"; exit 1; }
say "both stacks are up"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
native_config "$port"
prom="http://127.0.0.1:$port"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 60); do
    curl -sf -o /dev/null "$prom/-/ready" && break
    sleep 0.5
done
curl -sf -o /dev/null "$prom/-/ready" || { cat "$tmp/prometheus.log"; say "prometheus did not start"; exit 1; }
up_services() {
    curl -s "$prom/api/v1/query" --data-urlencode 'query=sum(up{job="services"})' \
        | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'
}
for _ in $(seq 1 60); do
    [ "$(up_services)" = 20 ] && break
    sleep 1
done
[ "$(up_services)" = 20 ] || { say "prometheus does not see the 20 services up"; exit 1; }
say "prometheus on 127.0.0.1:$port scrapes both stacks"
since=$(date +%s)

# One request per scenario first, so that every series the load will move
# exists before it: rate() sees no increase in a series' first sample, and a
# 3 s burst can fall between two scrapes.
J='Content-Type: application/json'
for base in 80 81; do
    curl -s -o /dev/null --max-time 60 -X POST "127.0.0.1:${base}01/register" -H "$J" -d "{\"email\": \"prime-$base-$$@example.com\"}"
    curl -s -o /dev/null --max-time 60 -X POST "127.0.0.1:${base}02/process_payment" -H "$J" -d '{"order_id": 1, "amount": 10.0}'
    curl -s -o /dev/null --max-time 60 -X PUT "127.0.0.1:${base}03/products/1" -H "$J" -d '{"name": "Laptop", "stock": 75}'
    curl -s -o /dev/null --max-time 60 -X POST "127.0.0.1:${base}04/generate_report" -H "$J" -d '{"report_type": "monthly"}'
    curl -s -o /dev/null --max-time 60 -X POST "127.0.0.1:${base}05/create_order" -H "$J" -d '{"product_id": 1, "quantity": 1}'
    curl -s -o /dev/null --max-time 60 -X POST "127.0.0.1:${base}06/track_click" -H "$J" -d '{"user_id": 1, "page": "home"}'
done
sleep 12

for mode in sync async; do
    bin=$(lab_bin "$mode" debug)
    say "load: every scenario, $mode mode"
    if ! "$bin/lab-load" run 1 2 3 4 5 6 --mode "$mode" --clients 4 --duration 3 --warmup 0 \
        --database-url "postgres://postgres@127.0.0.1:5432/${BOTH_DB}_$mode" >"$tmp/load-$mode.log" 2>&1; then
        cat "$tmp/load-$mode.log"
        say "the load driver failed ($mode)"
        exit 1
    fi
    grep -v '^$' "$tmp/load-$mode.log"
done

# A poison message (a well-formed envelope whose body is not the payload):
# the email consumer retries it and dead-letters it, so the retry and
# dead-letter panels have something to show.
say "publishing one poison message to $prefix.events (user.registered)"
poison='{"properties": {"message_id": "00000000-0000-4000-8000-000000000001", "type": "user.registered", "delivery_mode": 2},
         "routing_key": "user.registered", "payload": "not the payload", "payload_encoding": "string"}'
published=$(curl -s -u guest:guest -H 'content-type: application/json' -d "$poison" \
    "http://127.0.0.1:15672/api/exchanges/%2f/$prefix.events/publish" || true)
case $published in
    *'"routed":true'*) ;;
    *) say "cannot publish through RabbitMQ's management API on 127.0.0.1:15672: $published"; exit 1 ;;
esac
for _ in $(seq 1 60); do
    case $(curl -s 127.0.0.1:8107/metrics) in *messages_dead_lettered_total*) break ;; esac
    sleep 0.5
done

# Four more scrapes and rule evaluations after the last traffic.
sleep 20
say "evaluating every panel and recording rule through $prom"
python3 scripts/check_dashboards.py --prometheus "$prom" --since "$since" \
    --rules-dir monitoring/prometheus/rules --require-up services,rabbitmq,rabbitmq-queues,prometheus \
    monitoring/grafana/dashboards/*.json

# --- 4. the live check can fail ------------------------------------------------
bad=$tmp/misspelled.json
sed 's/mode_scenario:async_completions:rate1m{mode=\\"async\\", scenario=\\"registration\\"}/mode_scenario:async_completion:rate1m{mode=\\"async\\", scenario=\\"registration\\"}/' \
    monitoring/grafana/dashboards/overview.json >"$bad"
cmp -s "$bad" monitoring/grafana/dashboards/overview.json && { say "could not misspell a metric in the copy"; exit 1; }
if python3 scripts/check_dashboards.py --prometheus "$prom" --since "$since" "$bad" >"$tmp/neg.log" 2>&1; then
    cat "$tmp/neg.log"
    say "the live check passed a dashboard with a misspelled metric"
    exit 1
fi
grep 'FAIL' "$tmp/neg.log"
say "the live check rejects a dashboard with a misspelled metric (as it should)"
say "all passed"
