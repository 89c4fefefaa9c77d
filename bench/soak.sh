#!/usr/bin/env bash
# Issue 15's soak run, one command: the portal (perf build, demo data) under steady load for a
# bounded time — wrk on the itemised statement (every view audited) and the summary, 16
# connections each — with its resident memory sampled every 30 s. Passes when memory in the
# last third of the run is no higher than 10% above the first third's peak (after a minute's
# warm-up). Not a test: figures for the issue notes.
#
#   bench/soak.sh                      # SQLite, 10 minutes
#   SOAK_SECS=120 bench/soak.sh        # shorter
#   bench/soak.sh postgres://postgres@127.0.0.1:5432/test
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_URL="${1:-}"
SOAK_SECS="${SOAK_SECS:-600}"
EVERY=30
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

start_portal
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PORTAL_PID/status"; }
echo "PatriotPay soak: $BACKEND, ${SOAK_SECS}s, wrk -t1 -c16 on /statement and on /summary, RSS every ${EVERY}s"
echo "idle after start: $(rss) MB"
wrk -t1 -c16 -d"${SOAK_SECS}s" -H "Cookie: $COOKIE" http://127.0.0.1:3910/statement >"$WORK/wrk-statement.txt" &
W1=$!
wrk -t1 -c16 -d"${SOAK_SECS}s" -H "Cookie: $COOKIE" http://127.0.0.1:3910/summary >"$WORK/wrk-summary.txt" &
W2=$!
SAMPLES=()
for ((t = EVERY; t <= SOAK_SECS; t += EVERY)); do
  sleep "$EVERY"
  SAMPLES+=("$(rss)")
  echo "t=${t}s rss=${SAMPLES[-1]} MB"
done
wait "$W1" "$W2"
echo "/statement: $(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-statement.txt") requests/s; /summary: $(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-summary.txt") requests/s"
grep -h 'Non-2xx' "$WORK"/wrk-*.txt || echo "every response 2xx"
N=${#SAMPLES[@]}
THIRD=$(( N / 3 ))
if [ "$THIRD" -lt 1 ]; then
  echo "too short to judge (need at least 3 samples)"
  exit 0
fi
FIRST_PEAK="$(printf '%s\n' "${SAMPLES[@]:1:$THIRD}" | sort -n | tail -1)"
LAST_PEAK="$(printf '%s\n' "${SAMPLES[@]: -$THIRD}" | sort -n | tail -1)"
echo "peak in the first third (after warm-up): ${FIRST_PEAK} MB; in the last third: ${LAST_PEAK} MB"
if awk -v a="$FIRST_PEAK" -v b="$LAST_PEAK" 'BEGIN { exit !(b <= a * 1.10) }'; then
  echo "memory did not grow"
else
  echo "memory grew" >&2
  exit 1
fi
