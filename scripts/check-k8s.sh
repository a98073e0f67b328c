#!/usr/bin/env bash
# Checks the Kubernetes manifests (deploy/k8s/) without a cluster:
#   1. every overlay renders with `kubectl kustomize` (kubectl's built-in
#      kustomize, the one `kubectl apply -k` uses);
#   2. every core object of every rendering is valid against the Kubernetes
#      OpenAPI schemas (kubernetes-validate --strict: unknown fields are
#      errors), for the oldest and the newest Kubernetes version the pinned
#      kubernetes-validate knows of that we target; the custom resources
#      (KEDA's ScaledObject/TriggerAuthentication, the operator's
#      RabbitmqCluster) are left to step 3, any other unknown kind fails;
#   3. crates/lab-tests/tests/k8s.rs: the renderings agree with the code
#      (services, ports, images, probes, variables, queues, callers).
# The schema check first proves it can fail (a misspelt field is rejected).
# Installs kubernetes-validate, pinned, from PyPI into a virtualenv under
# ~/.cache; kubectl must be installed.
#
# Usage: scripts/check-k8s.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes versions validated against: a still common older release
# and the newest this kubernetes-validate release ships schemas for.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
OVERLAYS=(sync async combined async-rabbitmq-operator)
# API groups of the custom resources the overlays use.
CUSTOM_GROUPS=(keda.sh rabbitmq.com)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/sync-vs-async-lab"
# A virtualenv of its own: kubernetes-validate pins jsonschema, as does
# check-jsonschema in scripts/check-compose.sh's.
venv="$cache/kubernetes-validate-venv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { echo "check-k8s: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v kubectl >/dev/null 2>&1 ||
    fail "kubectl is required (its built-in kustomize renders the overlays)"

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

installed_version() { "$venv/bin/kubernetes-validate" --version 2>/dev/null || true; }

ensure_kubernetes_validate() {
    if [ "$(installed_version)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
        ensure_venv
        say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
    [ "$(installed_version)" = "$KUBERNETES_VALIDATE_VERSION" ] ||
        fail "kubernetes-validate $KUBERNETES_VALIDATE_VERSION did not install"
}

# Writes the core objects of a rendering to $2 and says how many objects of
# each kind there were; fails on a kind of an API group nobody expects.
core_objects() { # rendered.yaml core.yaml
    "$venv/bin/python" - "$1" "$2" "${CUSTOM_GROUPS[@]}" <<'EOF'
import collections
import sys

import yaml

source, target, *custom = sys.argv[1:]
with open(source) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
core, kinds = [], collections.Counter()
for doc in docs:
    group = doc["apiVersion"].rpartition("/")[0]
    kinds[doc["kind"]] += 1
    if group in custom:
        continue
    if "." in group and not group.endswith(".k8s.io"):
        sys.exit(f"{source}: {doc['kind']} of unexpected API group {group}")
    core.append(doc)
with open(target, "w") as f:
    yaml.safe_dump_all(core, f)
summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
print(f"{len(docs)} objects ({len(core)} core): {summary}")
EOF
}

validate() { # files...
    local version
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" || return 1
    done
}

# shellcheck source=scripts/lib/checks.sh
. "$root/scripts/lib/checks.sh"

ensure_kubernetes_validate
say "$(kubectl version --client 2>/dev/null | tr '\n' ' ')," \
    "kubernetes-validate $(installed_version)"

core_files=()
for overlay in "${OVERLAYS[@]}"; do
    dir="deploy/k8s/overlays/$overlay"
    kubectl kustomize "$dir" >"$work/$overlay.yaml" || fail "$dir: kustomize could not render it"
    summary="$(core_objects "$work/$overlay.yaml" "$work/$overlay.core.yaml")" ||
        fail "$dir: $summary"
    say "rendered $overlay: $summary"
    core_files+=("$work/$overlay.core.yaml")
done

# Proof that the schema check can fail: a misspelt field in a copy.
sed '0,/^  selector:$/s//  selectr:/' "$work/sync.core.yaml" >"$work/typo.yaml"
grep -q '^  selectr:' "$work/typo.yaml" || fail "could not plant the misspelt field"
expect_rejection "a misspelt field (kubernetes-validate --strict)" "selectr" \
    validate "$work/typo.yaml"

validate "${core_files[@]}" ||
    fail "a rendered object is not valid against the Kubernetes schemas"
say "ok: every core object of ${OVERLAYS[*]} is valid (--strict) for Kubernetes ${KUBERNETES_VERSIONS[*]}"

cargo test -p lab-tests --test k8s --locked --quiet ||
    fail "crates/lab-tests/tests/k8s.rs: the manifests and the code disagree"
say "all checks passed"
