#!/usr/bin/env bash
# Static checks of the k6 scripts (scripts/run-k6.sh runs them with a real k6):
#
# 1. Every file under k6/ parses as an ES module (`node --check`, fed on stdin
#    with --input-type=module so that neither the nearest package.json nor
#    Node's module-syntax detection decides the mode). The check proves it has
#    teeth first: a syntax error must fail, import/export must pass, and
#    sloppy-mode-only code (valid CommonJS) must fail, which shows the parse
#    really is in module mode.
# 2. A type check against the k6 API (`tsc --checkJs` with @types/k6, both
#    pinned in k6/package.json and k6/package-lock.json, installed with
#    `npm ci` into k6/node_modules): unknown imports, wrong arguments, bad
#    option names. Its teeth: a file misusing the API must fail.
#    K6_CHECK_SKIP_TYPES=1 skips this part (no npm registry at hand).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check-k6: $*"; }
fail() { say "$*"; exit 1; }

command -v node >/dev/null 2>&1 || fail "node is required (any version >= 18)"

parses() { node --input-type=module --check <"$1" >/dev/null 2>&1; }

scratch=$(mktemp -d)
teeth=()
cleanup() {
    rm -rf "$scratch"
    if [ "${#teeth[@]}" -gt 0 ]; then rm -f "${teeth[@]}"; fi
}
trap cleanup EXIT

# Teeth of the parse check.
printf 'export const broken = ;\n' >"$scratch/syntax-error.js"
printf "import http from 'k6/http';\nexport default function () { http.get('http://x'); }\n" >"$scratch/esm.js"
printf 'var legacy = 010;\nmodule.exports = legacy;\n' >"$scratch/sloppy.js"
parses "$scratch/syntax-error.js" && fail "the parse check let a syntax error through"
parses "$scratch/esm.js" || fail "the parse check rejected import/export"
parses "$scratch/sloppy.js" && fail "the parse check accepted sloppy-mode code: it is not parsing ES modules"
say "parse check has teeth (syntax error fails, ESM passes, sloppy-mode code fails)"

files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(find k6 -name node_modules -prune -o -name '*.js' -type f -print0 | sort -z)
[ "${#files[@]}" -gt 0 ] || fail "no k6 scripts found"
for f in "${files[@]}"; do
    node --input-type=module --check <"$f" 2>"$scratch/err" || { cat "$scratch/err"; fail "$f does not parse as an ES module"; }
done
say "${#files[@]} files parse as ES modules"

if [ "${K6_CHECK_SKIP_TYPES:-0}" = 1 ]; then
    say "type check skipped (K6_CHECK_SKIP_TYPES=1)"
    exit 0
fi
command -v npm >/dev/null 2>&1 || fail "npm is required for the type check (or set K6_CHECK_SKIP_TYPES=1)"
(cd k6 && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in k6/ failed"
tsc=k6/node_modules/.bin/tsc

# Teeth of the type check: a temporary file in k6/ (so it resolves the same
# node_modules) checked with the same settings must fail.
bad=$(mktemp k6/.check-k6-XXXXXX.js)
config=$(mktemp k6/.check-k6-XXXXXX.json)
teeth+=("$bad" "$config")
cat >"$bad" <<'EOF'
import http from 'k6/http';
import { Trend } from 'k6/metrics';
const t = new Trend();
export default function () {
  http.get(42);
  t.add('fast');
}
EOF
printf '{"extends": "./jsconfig.json", "include": [], "files": ["%s"]}\n' "$(basename "$bad")" >"$config"
if "$tsc" -p "$config" >"$scratch/teeth.log" 2>&1; then
    fail "the type check let a misuse of the k6 API through"
fi
grep -q "TS2345" "$scratch/teeth.log" || { cat "$scratch/teeth.log"; fail "the type check failed for another reason than the planted misuse"; }
say "type check has teeth (a misuse of the k6 API fails)"

"$tsc" -p k6/jsconfig.json || fail "the k6 scripts do not type-check against @types/k6"
say "the k6 scripts type-check against @types/k6"
