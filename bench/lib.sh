# Shared by the benchmarks in bench/: build with the perf profile, a scratch directory cleaned
# on exit, a fresh database (SQLite files, or a PostgreSQL schema of its own), and the portal
# started on demo data with a verified visitor's session cookie ($COOKIE) for wrk.
# Sourced, not run: the caller sets ROOT and PG_URL.

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/perf/patriotpay"
FLOOR="$TARGET/perf/examples/floor"

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is needed: apt-get install wrk" >&2
    exit 2
  fi
fi

echo "building (cargo build --profile perf) ..." >&2
(cd "$ROOT" && cargo build --quiet --profile perf -p patriotpay --bin patriotpay --example floor)

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh PostgreSQL schema for each run, so nothing from the last run is measured.
if [ -n "$PG_URL" ]; then
  SCHEMA="bench_$(date +%s)_$$"
  psql -q "$PG_URL" -c "CREATE SCHEMA $SCHEMA" >/dev/null
  trap 'cleanup; psql -q "$PG_URL" -c "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1 || true' EXIT
  sep='?'; case "$PG_URL" in *\?*) sep='&';; esac
  PORTAL_DB="${PG_URL}${sep}options=-csearch_path%3D${SCHEMA}"
  FLOOR_DB="$PORTAL_DB"
  BACKEND=postgresql
else
  PORTAL_DB="sqlite://$WORK/portal.db"
  FLOOR_DB="sqlite://$WORK/floor.db"
  BACKEND=sqlite
fi

wait_for() { # url
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing answered at $1" >&2
  exit 1
}


# Starts the portal (`serve --demo`) on $PORTAL_DB and makes $COOKIE: a verified visitor of
# demo patient 1, as a browser gets one (open the link, the date of birth, then the ZIP code).
start_portal() {
  export DATABASE_URL="$PORTAL_DB" PATRIOTPAY_DATA_DIR="$WORK/data" PATRIOTPAY_ADDR=127.0.0.1:3910 \
    PATRIOTPAY_SANDBOX_ADDR=127.0.0.1:3911 PATRIOTPAY_METRICS_ADDR=127.0.0.1:3912 PATRIOTPAY_LOG=warn
  local t0
  t0=$(date +%s%N)
  "$BIN" serve --demo >"$WORK/portal.log" 2>&1 &
  PORTAL_PID=$!
  PIDS+=($PORTAL_PID)
  # Ready: the first answer from /healthz, polled every 10 ms.
  for _ in $(seq 1 1000); do
    curl -fsS -o /dev/null http://127.0.0.1:3910/healthz 2>/dev/null && break
    sleep 0.01
  done
  READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  IDLE_RSS_MB="$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PORTAL_PID/status")"
  for _ in $(seq 1 100); do grep -q '/p/' "$WORK/portal.log" && break; sleep 0.1; done
  LINK="$(grep -o 'http://[^ ]*/p/[^ ]*' "$WORK/portal.log" | head -1)"
  [ -n "$LINK" ] || { echo "no demo link printed" >&2; cat "$WORK/portal.log" >&2; exit 1; }

  # A verified visitor of demo patient 1, as a browser gets one: open the link, give the date of
  # birth, then the ZIP code. The session cookie is what wrk sends.
  JAR="$WORK/jar"
  csrf() { grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
  curl -fsS -c "$JAR" -b "$JAR" -L -o /dev/null "$LINK"
  TOKEN="$(curl -fsS -c "$JAR" -b "$JAR" http://127.0.0.1:3910/verify | csrf)"
  curl -fsS -c "$JAR" -b "$JAR" -o /dev/null \
    --data-urlencode "csrf=$TOKEN" -d dob_month=03 -d dob_day=14 -d dob_year=1984 http://127.0.0.1:3910/verify
  TOKEN="$(curl -fsS -c "$JAR" -b "$JAR" http://127.0.0.1:3910/verify/zip | csrf)"
  curl -fsS -c "$JAR" -b "$JAR" -o /dev/null --data-urlencode "csrf=$TOKEN" -d zip=60614 http://127.0.0.1:3910/verify/zip
  COOKIE="$(awk '$6 == "pp_session" { print "pp_session=" $7 }' "$JAR")"
  curl -fsS -b "$COOKIE" http://127.0.0.1:3910/statement | grep -q 'Office visit' \
    || { echo "the session does not show the itemised statement" >&2; exit 1; }
}
