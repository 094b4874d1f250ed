#!/usr/bin/env bash
# Soak: `station serve` at full pty speed for MINUTES, and how its resources move over time.
# BENCHES benches on linked ptys (default 32), each fed by station-devsim runs one after another until the time is up,
# EC P-256 CA in SoftHSM, the ledger on disk. Among the benches, hostile ones: line corruption, garbage between
# frames, unplugged after the CSR and after the CHAIN, broken CSR signatures, stalls, late chains, oversized
# frames. Every simulator run ends by closing its pty, so the station also sees an unplug and replug per run.
# Every --interval seconds it prints: devices provisioned so far and their rate since the last line, the daemon's RSS,
# the ledger's WAL and WAL-index (-shm) sizes, the daemon's open fds and threads, and how long `station status` takes
# on the growing ledger while the line runs. At the end: SIGTERM, `station status` and `station audit verify` on the
# final ledger (timed), and a summary of the curves (first sample after warm-up, last, maximum).
# Usage: scripts/soak.sh [MINUTES (default 20)] [--benches N] [--interval SECS] [--count PER_RUN] [--keep DIR]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
minutes=20 benches=32 interval=30 count=500 keep=""
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then minutes="$1"; shift; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --benches) benches="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    *) echo "unknown option $1 (usage: scripts/soak.sh [MINUTES] [--benches N] [--interval SECS] [--count N] [--keep DIR])" >&2; exit 2 ;;
  esac
done
[ "$benches" -ge 10 ] || { echo "--benches: at least 10 (the hostile benches take 9)" >&2; exit 2; }
ensure_packages
ensure_build
work="${keep:-$(mktemp -d "${TMPDIR:-/var/tmp}/station-soak.XXXXXX")}"
mkdir -p "$work"
dev_root="$(mktemp -d /dev/shm/station-soak.XXXXXX 2>/dev/null || mktemp -d)"
pids=()
cleanup() {
  touch "$work/stop"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -P $$ 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dev_root"
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

"$BIN/station" init --dir "$work/st" --station-id soak >/dev/null
conf="$work/st/station.toml"
"$BIN/station" -c "$conf" ca create --name soak-ca --key-type ec-p256 >/dev/null
"$BIN/station" -c "$conf" ca show soak-ca --pem >"$work/ca.pem"
db="$work/st/$(sed -n 's/^path = "\(.*\)"/\1/p' "$conf" | head -1)"

# The hostile benches: bench i gets hostile[i-1]; the others are plain devices.
hostile=(
  "--corrupt 0.0005"
  "--misbehave garbage"
  "--misbehave disconnect --disconnect-after csr"
  "--misbehave disconnect --disconnect-after chain"
  "--misbehave bad-csr"
  "--misbehave late-chain"
  "--misbehave oversize"
  "--misbehave stall --stall-for 3s"
  "--corrupt 0.002"
)

# One bench's feeder: station-devsim runs of --count devices, each with its own serials, until the time is up.
feed() { # bench number
  local i="$1" run=0 extra=""
  [ "$i" -le ${#hostile[@]} ] && extra="${hostile[$((i - 1))]}"
  while [ ! -e "$work/stop" ]; do
    run=$((run + 1))
    # shellcheck disable=SC2086
    STATION_LOG=error "$BIN/station-devsim" --port "$work/b$i.station" --pty --ca "$work/ca.pem" \
      --out "$dev_root/$i" --count "$count" --serial-from 1 --serial-prefix "S$i-R$run-" --no-sync --pregenerate \
      --reply-timeout 30s --json $extra >"$work/sim$i.json" 2>>"$work/sim$i.log" || echo "run $run failed" >>"$work/sim$i.fail"
    rm -rf "${dev_root:?}/$i"
  done
}

for i in $(seq 1 "$benches"); do
  feed "$i" &
  pids+=($!)
done
for i in $(seq 1 "$benches"); do
  while [ ! -e "$work/b$i.station" ]; do sleep 0.05; done
done
# Soak timeouts: the stall bench's silence (3 s) must outlast the CSR timeout.
sed -i 's/^csr_timeout_secs = .*/csr_timeout_secs = 2/' "$conf"
bench_args=()
for i in $(seq 1 "$benches"); do bench_args+=(--bench "b$i=$work/b$i.station"); done
STATION_LOG=warn "$BIN/station" -c "$conf" serve "${bench_args[@]}" >"$work/lines.txt" 2>"$work/serve.log" &
serve_pid=$!
pids+=($serve_pid)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
echo "soak: $minutes min, $benches benches (${#hostile[@]} hostile), $count devices per simulator run, sample every $interval s, work $work"
samples="$work/samples.tsv"
printf 't_s\tdevices\tper_s\trss_mib\twal_mib\tshm_mib\tfds\tthreads\tstatus_s\n' | tee "$samples"
start=$(date +%s)
end=$((start + minutes * 60))
last_ok=0 last_t=0
while :; do
  now=$(date +%s)
  [ "$now" -lt "$end" ] || break
  sleep "$(( interval < end - now ? interval : end - now ))"
  kill -0 "$serve_pid" 2>/dev/null || { echo "station serve died:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
  t=$(( $(date +%s) - start ))
  ok=$(grep -c ' OK ' "$work/lines.txt" || true)
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$serve_pid/status")
  thr=$(awk '/Threads/ {print $2}' "/proc/$serve_pid/status")
  fds=$(ls "/proc/$serve_pid/fd" | wc -l)
  wal=$(stat -c %s "$db-wal" 2>/dev/null || echo 0)
  shm=$(stat -c %s "$db-shm" 2>/dev/null || echo 0)
  s0=$(date +%s.%N)
  "$BIN/station" -c "$conf" status >/dev/null 2>&1 || echo "status failed at $t s" >&2
  s1=$(date +%s.%N)
  printf '%d\t%d\t%.0f\t%s\t%.1f\t%.1f\t%d\t%d\t%.2f\n' "$t" "$ok" "$(awk "BEGIN {print ($ok - $last_ok) / ($t - $last_t)}")" \
    "$rss" "$(awk "BEGIN {print $wal / 1048576}")" "$(awk "BEGIN {print $shm / 1048576}")" "$fds" "$thr" \
    "$(awk "BEGIN {print $s1 - $s0}")" | tee -a "$samples"
  last_ok=$ok last_t=$t
done

touch "$work/stop"
kill -TERM "$serve_pid"
serve_rc=0
wait "$serve_pid" || serve_rc=$?
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pkill -P $$ station-devsim 2>/dev/null || true
ok=$(grep -c ' OK ' "$work/lines.txt" || true)
failed_lines=$(grep -vc ' OK ' "$work/lines.txt" || true)
echo "station serve exited $serve_rc; $ok devices provisioned, $failed_lines other operator lines (the hostile benches' refusals)"
echo "ledger: $(du -h "$db" | cut -f1) ($(stat -c %s "$db") bytes); WAL after shutdown: $(stat -c %s "$db-wal" 2>/dev/null || echo 0) bytes"
s0=$(date +%s.%N)
"$BIN/station" -c "$conf" status >/dev/null
s1=$(date +%s.%N)
"$BIN/station" -c "$conf" audit verify >"$work/audit.txt" 2>&1 && verdict=OK || verdict="FAILED ($(tail -1 "$work/audit.txt"))"
s2=$(date +%s.%N)
printf 'station status: %.2f s; station audit verify: %s in %.1f s\n' "$(awk "BEGIN {print $s1 - $s0}")" "$verdict" \
  "$(awk "BEGIN {print $s2 - $s1}")"
python3 - "$samples" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
if len(rows) < 3:
    sys.exit(0)
warm = rows[min(2, len(rows) - 1)]  # after warm-up: the third sample
last = rows[-1]
print(f"curves (sample at {warm['t_s']} s -> last at {last['t_s']} s, max):")
for k, unit in [("rss_mib", "MiB"), ("wal_mib", "MiB"), ("shm_mib", "MiB"), ("fds", ""), ("threads", ""), ("status_s", "s"), ("per_s", "devices/s")]:
    mx = max(float(r[k]) for r in rows[2:])
    print(f"  {k:9} {float(warm[k]):9.1f} -> {float(last[k]):9.1f} {unit:9} max {mx:.1f}")
PY
# Every device's serial names its feeder (S<bench>-…): a line on another bench means a bench opened another
# bench's line (a pty number the kernel handed on while a link still led to it).
crossed=$(awk '$1 ~ /^b[0-9]+$/ { split($2, a, "-"); if (a[1] != "S" substr($1, 2)) n++ } END { print n + 0 }' "$work/lines.txt")
sim_failed=$( (cat "$work"/sim*.fail 2>/dev/null || true) | wc -l)
echo "operator lines on a bench other than their simulator's: $crossed; simulator runs that failed: $sim_failed (those at the end are the SIGTERM's)"
[ "$verdict" = OK ] && [ "$serve_rc" = 0 ] && [ "$crossed" = 0 ]
