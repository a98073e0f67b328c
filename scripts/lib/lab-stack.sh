# shellcheck shell=bash
# Sourced by the scripts that build the lab and run whole stacks with `lab up`
# against a throwaway database and broker prefix (check-monitoring.sh,
# check-showdown.sh, run-k6.sh, measure.sh, faults.sh): building it, starting
# it, waiting for it, and leaving nothing behind.

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

# `lab_load_release <mode> <subcommand> [args...]`: builds the mode (release)
# and runs `lab-load <subcommand> --mode <mode> --bin <its build> args...`,
# which starts the fresh stacks itself (scripts/measure.sh, scripts/faults.sh).
lab_load_release() {
    local mode=$1 subcommand=$2
    shift 2
    case "$mode" in
        sync | async) ;;
        *) echo "the mode is sync or async" >&2; exit 2 ;;
    esac
    scripts/ensure-services.sh >/dev/null
    lab_build "$mode" release
    local bin
    bin=$(lab_bin "$mode" release)
    exec "$bin/lab-load" "$subcommand" --mode "$mode" --bin "$bin" "$@"
}

# `lab_wait <bin dir> <log> <pid>` asks the services (`lab status --wait`:
# every `/ready` 200, up to 120 s); fails at once if that `lab up` exits.
lab_wait() {
    "$1/lab" status --wait 120 --pid "$3" >/dev/null && return 0
    cat "$2"
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

# `both_stacks_up <dir> <tag>`: builds both modes (debug) and runs
# `lab up --mode both` (the environment as exported; database
# lab_<tag>_<pid>, which each stack suffixes with its mode; the race page on
# $SHOWDOWN_PORT, default 3000), logging to <dir>/both.log; waits until both
# stacks and the page answer. `both_stacks_down` stops it all, drops the
# databases and deletes the queues of $BROKER_PREFIX.
both_stacks_up() {
    lab_build sync debug
    lab_build async debug
    BOTH_DB="lab_${2}_$$"
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BOTH_DB" "$(lab_bin sync debug)/lab" up --mode both >"$1/both.log" 2>&1 &
    BOTH_PID=$!
    lab_wait "$(lab_bin sync debug)" "$1/both.log" "$BOTH_PID" &&
        lab_wait "$(lab_bin async debug)" "$1/both.log" "$BOTH_PID" || return 1
    for _ in $(seq 1 40); do
        curl -sf -o /dev/null "127.0.0.1:${SHOWDOWN_PORT:-3000}/health" && return 0
        sleep 0.25
    done
    cat "$1/both.log"
    echo "the race page did not come up (log above)" >&2
    return 1
}
both_stacks_down() {
    [ -n "$BOTH_PID" ] && lab_stop "$BOTH_PID"
    if [ -n "$BOTH_DB" ]; then
        drop_database "${BOTH_DB}_sync"
        drop_database "${BOTH_DB}_async"
    fi
    delete_queues "$BROKER_PREFIX"
}
BOTH_PID=
BOTH_DB=
