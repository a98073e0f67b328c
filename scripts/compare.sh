#!/usr/bin/env bash
# The lab's question answered in one command: builds both modes and runs
# `lab-load compare`, which loads every scenario in both modes on fresh
# stacks and writes a report (index.html, report.md, data.json, SVG plots).
#
#   scripts/compare.sh --quick --out report-quick    # under 3 minutes: a first look
#   scripts/compare.sh --out report                  # the full profile (3 repetitions)
#   scripts/compare.sh --out report-new --against report/data.json   # before/after a change
#
# COMPARE_PROFILE=debug uses debug builds (what CI has built already); the
# report then says its figures are not representative. Stop any running
# stack first: the report starts its own on the usual ports.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/lab-stack.sh
. scripts/lib/lab-stack.sh
build=${COMPARE_PROFILE:-release}
scripts/ensure-services.sh >/dev/null
lab_build sync "$build"
lab_build async "$build"
exec "$(lab_bin sync "$build")/lab-load" compare \
    --sync-bin "$(lab_bin sync "$build")" --async-bin "$(lab_bin async "$build")" "$@"
