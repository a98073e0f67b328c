# shellcheck shell=bash
# Sourced by the scripts that run a whole stack with `lab up` against a
# throwaway database and broker prefix (smoke.sh, check-monitoring.sh,
# measure.sh): building it, starting it, waiting for it, and leaving nothing
# behind.

# The directory of the mode's binaries for a cargo profile (debug, release).
lab_bin() {
    if [ "$1" = async ]; then echo "target/async/$2"; else echo "target/$2"; fi
}

# Builds the mode's binaries for a cargo profile.
lab_build() {
    local profile=()
    [ "$2" = release ] && profile=(--release)
    if [ "$1" = async ]; then
        cargo build "${profile[@]}" --bins --quiet --locked --workspace --features lab-tests/async --target-dir target/async
    else
        cargo build "${profile[@]}" --bins --quiet --locked
    fi
}

# `lab_up <bin dir> <log>`: starts `lab up` in the background (with the
# environment as exported: DATABASE_URL, BROKER_PREFIX, delays) and sets
# LAB_PID. `lab_wait <log> <pid>` waits (up to 120 s) until all ten services
# answer; fails at once if that `lab up` exits.
lab_up() {
    "$1/lab" up >"$2" 2>&1 &
    # shellcheck disable=SC2034 # read by the scripts that source this file
    LAB_PID=$!
}
lab_wait() {
    for _ in $(seq 1 240); do
        grep -q "10 of 10 services up" "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.5
    done
    cat "$1"
    echo "the stack did not come up (log above)" >&2
    return 1
}

# Stops a `lab up` (SIGINT stops its services), killing it and them after 30 s.
lab_stop() {
    kill -INT "$1" 2>/dev/null || true
    if ! timeout 30 tail --pid="$1" -f /dev/null 2>/dev/null; then
        pkill -KILL -P "$1" 2>/dev/null || true
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

drop_database() {
    PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -d postgres -qc \
        "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# Deletes the broker queues whose names start with `<prefix>.`.
delete_queues() {
    command -v rabbitmqctl >/dev/null 2>&1 || return 0
    local queue
    for queue in $(rabbitmqctl list_queues -q name 2>/dev/null | grep "^$1\\." || true); do
        rabbitmqctl delete_queue "$queue" >/dev/null 2>&1 || true
    done
}

# `both_stacks_up <dir> <tag>`: builds both modes (debug) and runs the sync
# and the async stack side by side as `lab up` (the environment as exported),
# after checking that their ports are free, with databases
# lab_<tag>_<mode>_<pid> and logs in <dir>; waits until both are up. Sets
# BOTH_PIDS and BOTH_DBS for `both_stacks_down`, which stops them, drops the
# databases and deletes the queues of $BROKER_PREFIX.
both_stacks_up() {
    local mode db
    ports_free || return 1
    lab_build sync debug
    lab_build async debug
    BOTH_PIDS=()
    BOTH_DBS=()
    for mode in sync async; do
        db="lab_${2}_${mode}_$$"
        BOTH_DBS+=("$db")
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" lab_up "$(lab_bin "$mode" debug)" "$1/$mode.log"
        BOTH_PIDS+=("$LAB_PID")
    done
    lab_wait "$1/sync.log" "${BOTH_PIDS[0]}" && lab_wait "$1/async.log" "${BOTH_PIDS[1]}"
}
both_stacks_down() {
    local pid db
    for pid in "${BOTH_PIDS[@]}"; do lab_stop "$pid"; done
    for db in "${BOTH_DBS[@]}"; do drop_database "$db"; done
    delete_queues "$BROKER_PREFIX"
}

# Fails (exit 1) if a port a stack needs is taken: 8000/8100 (launchers) and
# 8001-8010/8101-8110 (services).
ports_free() {
    local port
    for port in 8000 8100 $(seq 8001 8010) $(seq 8101 8110); do
        if timeout 1 bash -c ": </dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            echo "port $port is taken (a stack is running?); stop it first" >&2
            return 1
        fi
    done
}
BOTH_PIDS=()
BOTH_DBS=()
