#!/usr/bin/env bash
# The web console (console/): `build` (npm ci && npm run build, which regenerates the API client from
# schemas/openapi.json and type-checks it) and `test` (build, then the Vitest unit tests).
# Without Node 20.19+ (Vite 7 and playwright-core need it) it says so and exits 0: the API runs without it.
set -euo pipefail
LOG_TAG=console
# shellcheck source=infra/bin/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT/console"

node_ok() {
    command -v node >/dev/null && command -v npm >/dev/null || return 1
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}

if ! node_ok; then
    say "SKIPPED: the console needs Node.js 20.19+ and npm (found: $(node -v 2>/dev/null || echo none)); the API works without it"
    exit 0
fi

# npm ci: exactly the committed package-lock.json. Skipped when node_modules already matches it, so
# `make dev` stays quick on a second run (npm ci would delete and reinstall everything).
if ! cmp -s package-lock.json node_modules/.zapstream-lock 2>/dev/null; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.zapstream-lock
fi
say "npm run build"
npm run --silent build
case "${1:-build}" in
    build) ;;
    test) say "vitest"; npm test --silent ;;
    *) die "usage: console.sh build|test" ;;
esac
