#!/usr/bin/env bash
# Reproduces the fault table of docs/faults.md: builds the mode (release) and runs
# `lab-load fault` (crates/loadgen/src/fault.rs), which restarts each
# component for real in the middle of a load of the scenario that crosses it,
# each on a fresh stack, and prints what the clients saw and what became of
# the accepted work, then the table.
#
#   scripts/faults.sh sync                     # all six: payment, email, inventory, order, broker, postgres
#   scripts/faults.sh async payment broker     # some of them
#   scripts/faults.sh async all --down 10      # longer away (lab-load fault --help for the rest)
#
# It restarts the machine's RabbitMQ and PostgreSQL (as root, or through
# `sudo -n`): run it where nothing else uses them. Its databases and queues
# are its own (lab_fault_<mode>), but it needs the mode's ports: stop
# `scripts/lab.sh up` first. The delays you export reach the stacks it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
mode=${1:?usage: scripts/faults.sh sync|async [payment|email|inventory|order|broker|postgres|all ...] [lab-load fault options]}
shift
[ $# -gt 0 ] || set -- all
lab_load_release "$mode" fault "$@"
