#!/usr/bin/env bash
# Checks the dependency tree with cargo-deny against deny.toml:
#   licenses  every crate's licence is one deny.toml allows (the workspace's
#             own crates, publish = false, are not checked);
#   bans      no openssl, openssl-sys or native-tls; no `*` requirement on a
#             registry crate; crates in more than one version are listed
#             (a warning, not a failure);
#   sources   every crate comes from crates.io: no other registry, no git.
# Advisories (RustSec) are NOT checked: cargo-deny fetches the advisory
# database from GitHub, which this machine and CI cannot reach.
# The graph is the one of --all-features (lab-tests/async included), a
# superset of every feature set the workspace builds.
# The check first proves it can fail: a copy of deny.toml that bans tokio,
# and one without a licence the tree needs, must both be rejected.
# Installs cargo-deny, pinned, with `cargo install` from crates.io if the
# installed one is another version (a build of several minutes).
#
# Usage: scripts/check-deny.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The newest cargo-deny that builds with the machine's Rust (1.95; it needs
# 1.88 or later).
CARGO_DENY_VERSION=0.20.2
CHECKS=(licenses bans sources)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { echo "check-deny: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

installed_version() { cargo deny --version 2>/dev/null || true; }

ensure_cargo_deny() {
    if [ "$(installed_version)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
        say "installing cargo-deny $CARGO_DENY_VERSION with cargo install (several minutes)"
        cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --quiet
    fi
    [ "$(installed_version)" = "cargo-deny $CARGO_DENY_VERSION" ] ||
        fail "cargo-deny $CARGO_DENY_VERSION did not install (found: $(installed_version))"
}

deny() { # config.toml
    cargo deny --all-features --locked --color never --config "$1" \
        check --hide-inclusion-graph --show-stats "${CHECKS[@]}"
}

# shellcheck source=scripts/lib/checks.sh
. "$root/scripts/lib/checks.sh"

ensure_cargo_deny
say "$(installed_version); checks: ${CHECKS[*]} (--all-features)"
say "advisories not checked: the advisory database is fetched from GitHub, out of reach here and in CI"

# Proof that the check can fail: a crate the tree really uses, banned...
sed 's/^deny = \[$/&\n    { crate = "tokio", reason = "negative check" },/' deny.toml >"$work/ban-tokio.toml"
grep -q '"tokio", reason = "negative check"' "$work/ban-tokio.toml" ||
    fail "could not plant the ban of tokio"
expect_rejection "a banned crate (tokio)" "error\[banned\].*tokio" deny "$work/ban-tokio.toml"
# ...and a licence the tree needs (amq-protocol's, through lapin), removed.
grep -v '^ *"BSD-2-Clause",' deny.toml >"$work/no-bsd-2.toml"
! grep -q '"BSD-2-Clause"' "$work/no-bsd-2.toml" ||
    fail "could not remove BSD-2-Clause from the copy"
expect_rejection "a licence deny.toml does not allow (BSD-2-Clause)" \
    "rejected: license is not explicitly allowed" deny "$work/no-bsd-2.toml"

if ! deny deny.toml >"$work/deny.log" 2>&1; then
    cat "$work/deny.log" >&2
    fail "cargo deny check ${CHECKS[*]} found a problem (above)"
fi
# Warnings other than duplicates (an allowed licence no crate uses any more,
# say) are shown in full; duplicates in one line.
awk '/^warning\[/ && !/^warning\[duplicate\]/ { show = 1 } /^$/ { show = 0 } show' \
    "$work/deny.log"
duplicates="$(sed -n "s/^warning\[duplicate\]: found \([0-9]*\) duplicate entries for crate '\(.*\)'$/\2 (\1)/p" \
    "$work/deny.log" | paste -sd, - | sed 's/,/, /g')"
if [ -n "$duplicates" ]; then
    say "warning: crates in more than one version (not a failure): $duplicates"
fi
grep -E '^ *(licenses|bans|sources) ok' "$work/deny.log" | sed 's/^ */check-deny: /'
say "all checks passed (${CHECKS[*]}; advisories not checked: no internet)"
