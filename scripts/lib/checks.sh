# shellcheck shell=bash
# Sourced by the static checks (check-compose.sh, check-k8s.sh); the caller
# defines `say` and `fail`.

# Runs a check that must fail, and fails unless it does, for the reason named
# by `pattern` (a crash or a missing tool is not a rejection).
expect_rejection() { # what pattern command...
    local what="$1" pattern="$2" output
    shift 2
    if output="$("$@" 2>&1)"; then
        fail "$what: the check accepted a broken input"
    fi
    grep -qiE -- "$pattern" <<<"$output" ||
        fail "$what: rejected, but not for the expected reason (/$pattern/): $output"
    say "ok: rejects $what"
}
