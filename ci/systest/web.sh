#!/usr/bin/env bash
# System test of the web UI (web/): unit tests (Vitest), svelte-check, the production
# build and its size budgets, then Playwright in Debian's Chromium against the real
# hearthd (fresh data dir, --web-dir web/dist) through setup, services, logout/login and
# the reconnecting banner. Screenshots land in web/screenshots/ (git-ignored).
# Needs root (hearthd applies its firewall tables), so it holds the systest lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
if [ -z "${HEARTH_SYSTEST_LOCKED:-}" ]; then
  exec env HEARTH_SYSTEST_LOCKED=1 flock /var/lock/hearth-systest.lock "$0" "$@"
fi
. ci/systest/lib.sh
systest_setup web "hearthd applies nftables rules" node npm nft /usr/bin/chromium
cleanup() { stop_containers; rm -rf "$WORK"; }
trap cleanup EXIT

cd web
[ -d node_modules ] || fail "web/node_modules missing; run ci/deps.sh"
npx vitest run || fail "vitest"
npx svelte-check --fail-on-warnings || fail "svelte-check"
npm run build >/dev/null || fail "npm run build"
node scripts/budget.mjs dist || fail "size budget"
cd ..

# The test starts (and restarts) hearthd itself: e2e/hearthd.ts.
rm -rf web/screenshots && mkdir -p web/screenshots
(cd web && HEARTHD="$BIN/hearthd" HEARTH_DATA="$DATA" HEARTHD_ERR="$WORK/hearthd.err" \
  npx playwright test) || fail "playwright"
echo "web: ok ($(ls web/screenshots | wc -l) screenshots in web/screenshots/)"
