#!/usr/bin/env bash
# Issue 15's page benchmark, one command: the portal's pages beside the floor page (the
# "fortunes" shape on the same crates and pool, `server/examples/floor.rs`), in one run, with
# wrk (-t1 -c64), on SQLite or PostgreSQL. Prints requests/s and p99 per page and each page's
# share of the floor. Not a test: figures for the README and the issue notes.
#
#   bench/pages.sh                                    # SQLite, 15 s per page
#   bench/pages.sh postgres://postgres@127.0.0.1:5432/test
#   DURATION=30 CONNECTIONS=64 bench/pages.sh
#
# Builds with `--profile perf` (optimised; see Cargo.toml). wrk comes from Debian (installed if
# missing and this runs as root).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_URL="${1:-}"
DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

"$FLOOR" "$FLOOR_DB" 127.0.0.1:3900 >"$WORK/floor.log" 2>&1 &
PIDS+=($!)
wait_for http://127.0.0.1:3900/fortunes
# (On PostgreSQL the second floor shares the schema; it starts after the first has filled it.)
FLOOR_AUDIT=1 "$FLOOR" "${FLOOR_DB/floor.db/floor-audit.db}" 127.0.0.1:3901 >"$WORK/floor-audit.log" 2>&1 &
PIDS+=($!)
wait_for http://127.0.0.1:3901/fortunes

start_portal

# One wrk run: "requests/s p99_ms non2xx".
measure() { # url [cookie]
  local out
  if [ -n "${2:-}" ]; then
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Cookie: $2" "$1")"
  else
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1")"
  fi
  local rps p99 bad
  rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")"
  p99="$(awk '$1 == "99%" { v=$2; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 } printf "%.1f", v }' <<<"$out")"
  bad="$(awk '/Non-2xx or 3xx responses:/ { print $5 }' <<<"$out")"
  echo "$rps $p99 ${bad:-0}"
}

echo "PatriotPay page benchmark: $BACKEND, wrk -t1 -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, $(date -u +%F)"
read -r FLOOR_RPS FLOOR_P99 _ <<<"$(measure http://127.0.0.1:3900/fortunes)"
printf '| %-44s | %10s | %8s | %9s | %7s |\n' page requests/s p99\ ms of\ floor non-2xx
printf '| %-44s | %10s | %8s | %9s | %7s |\n' --- --- --- --- ---
printf '| %-44s | %10s | %8s | %9s | %7s |\n' "fortunes floor (one read)" "$FLOOR_RPS" "$FLOOR_P99" "100%" 0
row() { # label url [cookie]
  local rps p99 bad
  read -r rps p99 bad <<<"$(measure "$2" "${3:-}")"
  printf '| %-44s | %10s | %8s | %8s%% | %7s |\n' "$1" "$rps" "$p99" "$((100 * rps / FLOOR_RPS))" "$bad"
}
row "floor + one audit INSERT committed alone" http://127.0.0.1:3901/fortunes
row "/statement (itemised, audited)" http://127.0.0.1:3910/statement "$COOKIE"
row "/summary (audited)" http://127.0.0.1:3910/summary "$COOKIE"
row "/p/{token} landing (a new session each)" "$LINK"
row "/verify (no PHI)" http://127.0.0.1:3910/verify
row "/healthz" http://127.0.0.1:3910/healthz

VIEWS="$(curl -fsS http://127.0.0.1:3912/metrics | awk '/^patriotpay_audit_batch_events_count/ { c=$2 } /^patriotpay_audit_batch_events_sum/ { s=$2 } END { if (c > 0) printf "%d audit events in %d group commits (%.1f per commit)", s, c, s / c }')"
echo "${VIEWS:-no audit batch metrics}"
echo "portal ready in ${READY_MS} ms (process start to the first /healthz answer, demo data made on first start); resident memory idle ${IDLE_RSS_MB} MB"
echo "portal resident memory after the run: $(awk '/VmRSS/ { print $2 / 1024 " MB" }' "/proc/$PORTAL_PID/status")"
