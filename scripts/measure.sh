#!/usr/bin/env bash
# Reproduces the README's "Measured" tables: builds the mode (release) and runs
# `lab-load measure` (crates/loadgen/src/main.rs), which gives each run a fresh
# stack (a new database and new queues, so no run inherits another's backlog
# or its held stock) on a settled machine, then `lab-load run <args>`, then
# stops the stack.
#
#   scripts/measure.sh async                       # the README's async table
#   scripts/measure.sh sync                        # the loads of the sync table
#   scripts/measure.sh async "1 --rate 15 --duration 10"   # one run of your own
#
# Its databases and queues are its own (lab_measure_<mode>), so your lab's data
# is left alone, but it needs the mode's ports (80xx or 81xx): stop
# `scripts/lab.sh up` first. Run it on an otherwise idle machine. The delays
# and other settings you export reach the stacks it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
mode=${1:?usage: scripts/measure.sh sync|async [\"lab-load run arguments\" ...]}
shift
lab_load_release "$mode" measure "$@"
