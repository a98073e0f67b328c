#!/usr/bin/env bash
# Reproduces the README's "Measured" tables: each run gets a fresh stack (a new
# database and new queues, so no run inherits another's backlog or its held
# stock), then `lab-load run <args>`, then the stack is stopped.
#
#   scripts/measure.sh async                       # the README's async table
#   scripts/measure.sh sync                        # the loads of the sync table
#   scripts/measure.sh async "1 --rate 15 --duration 10"   # one run of your own
#
# It uses its own database (lab_measure_<mode>) and broker prefix (measure), so
# your lab's data is left alone, but it needs the mode's ports (80xx or 81xx):
# stop `scripts/lab.sh up` first. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
mode=${1:?usage: scripts/measure.sh sync|async [\"lab-load run arguments\" ...]}
shift
case "$mode" in
    sync | async) bin=$(lab_bin "$mode" release) ;;
    *) echo "measure.sh: the mode is sync or async" >&2; exit 2 ;;
esac
if [ $# -eq 0 ] && [ "$mode" = sync ]; then
    # The loads of the README's sync table (scripts/bench.sh, on a running stack).
    set -- "1 --clients 20 --duration 20" "3 --clients 20 --duration 20" "6 --clients 50 --duration 20" \
        "2 --clients 20 --duration 20" "5 --clients 20 --duration 20" "4 --clients 2 --duration 20"
elif [ $# -eq 0 ]; then
    set -- \
        "6 --clients 50 --duration 10" \
        "1 --rate 15 --duration 10" \
        "1 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5" \
        "1 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5" \
        "1 --clients 50 --duration 10 --drain-timeout 5" \
        "2 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5" \
        "2 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5" \
        "2 --clients 50 --duration 10 --drain-timeout 5" \
        "5 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5" \
        "5 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5" \
        "5 --clients 50 --duration 10 --drain-timeout 5" \
        "4 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5" \
        "4 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5" \
        "4 --clients 50 --duration 10 --drain-timeout 5"
fi

scripts/ensure-services.sh >/dev/null
lab_build "$mode" release
database=lab_measure_$mode
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$database BROKER_PREFIX=measure

if grep -qw up <<<"$("$bin/lab" status 2>/dev/null || true)"; then
    echo "measure.sh: a $mode stack is already running on its ports; stop it first" >&2
    exit 1
fi

lab_pid=
stop() {
    [ -n "$lab_pid" ] && lab_stop "$lab_pid"
    lab_pid=
}
trap stop EXIT

# Waits (up to 60 s) until the CPUs are at least 90% idle over a second: the
# previous run's leftovers (RabbitMQ reclaiming a deleted queue's messages,
# PostgreSQL dropping a database) must not land in the next run's figures.
settle() {
    local i busy total idle prev_busy prev_total
    # Busy and total jiffies of all CPUs (idle and iowait count as not busy).
    cpu_times() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
    read -r prev_busy prev_total < <(cpu_times)
    for i in $(seq 1 60); do
        sleep 1
        read -r busy total < <(cpu_times)
        idle=$(( 100 - 100 * (busy - prev_busy) / (total - prev_total + 1) ))
        [ "$idle" -ge 90 ] && return 0
        prev_busy=$busy prev_total=$total
    done
    echo "measure.sh: the machine is still busy (${idle}% idle after ${i} s); the figures may suffer" >&2
}

for run in "$@"; do
    drop_database "$database"
    delete_queues measure
    settle
    lab_up "$bin" "/tmp/measure-$mode.log"
    lab_pid=$LAB_PID
    lab_wait "$bin" "/tmp/measure-$mode.log" "$lab_pid"
    settle
    echo
    # shellcheck disable=SC2086 # the arguments are words on purpose
    echo "\$ lab-load run $run --mode $mode"
    # shellcheck disable=SC2086
    "$bin/lab-load" run $run --mode "$mode" 2>&1 | sed -n '/^scenario/,$p'
    stop
done
