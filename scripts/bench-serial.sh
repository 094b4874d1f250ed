#!/usr/bin/env bash
# Serial benchmark: BENCHES benches on linked ptys, one station-devsim per bench at full pty speed
# (or --line-rate BAUD), EC P-256 CA in SoftHSM, the real `station serve`. Reports certs/s for the whole
# station, station-side latency p50/p99 (CSR received -> last byte of CHAIN written, measured by the
# daemon), the daemon's peak RSS, and the seeds' openssl-per-device loop on the same number of devices.
# The simulators stand in for devices, whose own work (key generation, flash writes) costs the device, not
# the station host; on this one machine they share the station's cores, so by default they keep that work out
# of the timed run: each makes its line itself (devsim --pty: a pty pair, no socat copying in between), makes
# its keys and CSRs before the first HELLO (--pregenerate), and stores to tmpfs without fsync (--no-sync). Every
# chain is still checked against the CA, stored and confirmed by hash in the run.
#   --device-fsync    the simulators store to the work directory on disk, with fsync
#   --keygen-in-loop  each device makes its key and CSR when its turn comes
#   --socat           the lines are socat-linked pty pairs
# The run is timed from the first HELLO to the last DONE, as the simulators report them.
#   --token KIND      the CA key's token: softhsm (default, made by station init), tpm2 (tpm2-pkcs11 over its own
#                     swtpm), ock (the opencryptoki soft token; RSA only) or nss (NSS softokn); see scripts/tokens.sh
#   --ca-key-type T   the CA key type (default ec-p256)
#   --max-sessions N  [hsm] max_sessions (default: the config's, 4)
#   --nice-sims       run the simulators at nice 19: devices have their own CPUs, so the station and its token get
#                     the cores first (for token-bound runs, where the token's client library is CPU work here)
#   --scrape SECS     turn on [http] and, during the run, scrape /metrics and fetch /line.json every SECS seconds
#                     (a busy Prometheus and a line screen); reports what one scrape costs
# Usage: scripts/bench-serial.sh [--benches N] [--count PER_BENCH] [--line-rate BAUD] [--seeds-devices N]
#                                [--device-fsync] [--keygen-in-loop] [--socat] [--token KIND] [--ca-key-type T]
#                                [--max-sessions N] [--nice-sims] [--no-seeds] [--scrape SECS]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
benches=64 count=40 line_rate="" seeds="" sync_args=(--no-sync) gen_args=(--pregenerate) socat="" token=softhsm
ca_key_type=ec-p256 no_seeds="" max_sessions="" nice_sims="" scrape=""
while [ $# -gt 0 ]; do
  case "$1" in
    --benches) benches="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --line-rate) line_rate="$2"; shift 2 ;;
    --seeds-devices) seeds="$2"; shift 2 ;;
    --device-fsync) sync_args=(); shift ;;
    --keygen-in-loop) gen_args=(); shift ;;
    --socat) socat=1; shift ;;
    --token) token="$2"; shift 2 ;;
    --ca-key-type) ca_key_type="$2"; shift 2 ;;
    --no-seeds) no_seeds=1; shift ;;
    --max-sessions) max_sessions="$2"; shift 2 ;;
    --nice-sims) nice_sims=1; shift ;;
    --scrape) scrape="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
devices=$((benches * count))
seeds="${seeds:-$devices}"
ensure_packages
ensure_build
work="$(mktemp -d)"
pids=()
dev_dir="$work/dev"
if [ ${#sync_args[@]} -gt 0 ] && [ -d /dev/shm ]; then
  dev_dir="$(mktemp -d /dev/shm/station-bench.XXXXXX)"
fi
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$token" = softhsm ] || "$REPO/scripts/tokens.sh" "$token" stop "$work/tok" >/dev/null 2>&1 || true
  rm -rf "$work"
  case "$dev_dir" in /dev/shm/*) rm -rf "$dev_dir" ;; esac
}
trap cleanup EXIT

if [ "$token" = softhsm ]; then
  "$BIN/station" init --dir "$work/st" --station-id bench-serial >/dev/null
else
  # Throwaway PINs for a throwaway token (opencryptoki takes 4 to 8 characters).
  facts="$("$REPO/scripts/tokens.sh" "$token" start "$work/tok" "bench-$$" 13571357 24682468)"
  init_args=(--module "$(sed -n 's/^MODULE=//p' <<<"$facts")" --token-label "$(sed -n 's/^TOKEN_LABEL=//p' <<<"$facts")")
  for k in $(sed -n 's/^MODULE_ENV=//p' <<<"$facts" | tr ',' ' '); do
    init_args+=(--module-env "$(grep "^$k=" <<<"$facts")")
  done
  if grep -q '^INIT_ARGS=' <<<"$facts"; then init_args+=(--init-args "$(sed -n 's/^INIT_ARGS=//p' <<<"$facts")"); fi
  "$BIN/station" init --dir "$work/st" --station-id bench-serial "${init_args[@]}" >/dev/null
  (umask 077 && echo 24682468 >"$work/st/hsm-pin")
fi
[ -n "$max_sessions" ] && sed -i "s/^max_sessions = .*/max_sessions = $max_sessions/" "$work/st/station.toml"
if [ -n "$scrape" ]; then
  http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf '\n[http]\nlisten = "127.0.0.1:%s"\n' "$http_port" >>"$work/st/station.toml"
fi
"$BIN/station" -c "$work/st/station.toml" ca create --name bench-ca --key-type "$ca_key_type" >/dev/null
"$BIN/station" -c "$work/st/station.toml" ca show bench-ca --pem | sed -n '/BEGIN CERT/,/END CERT/p' >"$work/ca.pem"

rate_args=()
[ -n "$line_rate" ] && rate_args=(--line-rate "$line_rate")
bench_args=() sims=()
for i in $(seq 1 "$benches"); do
  bench_args+=(--bench "b$i=$work/b$i.station")
done

start_serve() {
  "$BIN/station" -c "$work/st/station.toml" serve "${bench_args[@]}" --stats-out "$work/stats.json" >"$work/lines.txt" 2>"$work/serve.log" &
  serve_pid=$!
  pids+=($serve_pid)
}

# Until the daemon holds every bench's station end open (so no simulator's clock runs during its start-up).
wait_ports_open() {
  local want=() i
  for i in $(seq 1 "$benches"); do want+=("$(readlink -f "$work/b$i.station")"); done
  for _ in $(seq 1 3000); do
    local open
    open=$(ls -l "/proc/$serve_pid/fd" 2>/dev/null | awk '{print $NF}' | sort -u)
    local missing=0
    for t in "${want[@]}"; do grep -qxF "$t" <<<"$open" || { missing=1; break; }; done
    [ "$missing" = 0 ] && return 0
    kill -0 "$serve_pid" 2>/dev/null || { echo "station serve exited:" >&2; cat "$work/serve.log" >&2; exit 1; }
    sleep 0.01
  done
  echo "station serve did not open its ports" >&2
  exit 1
}

start_sim() { # bench number, port options...
  local i="$1"
  shift
  STATION_LOG=warn ${nice_sims:+nice -n 19} "$BIN/station-devsim" "$@" --ca "$work/ca.pem" --out "$dev_dir/$i" --count "$count" \
    --serial-from $(( (i - 1) * count + 1 )) --serial-prefix "B$i-" "${rate_args[@]}" "${sync_args[@]}" \
    "${gen_args[@]}" --reply-timeout 30s --json >"$work/sim$i.json" 2>"$work/sim$i.log" &
  sims+=($!)
  pids+=($!)
}

if [ -n "$socat" ]; then
  for i in $(seq 1 "$benches"); do
    socat pty,raw,echo=0,link="$work/b$i.station" pty,raw,echo=0,link="$work/b$i.device" 2>/dev/null &
    pids+=($!)
    while [ ! -e "$work/b$i.device" ] || [ ! -e "$work/b$i.station" ]; do sleep 0.01; done
  done
  start_serve
  wait_ports_open
  for i in $(seq 1 "$benches"); do start_sim "$i" --port "$work/b$i.device"; done
else
  # Each simulator makes its line, then waits until the station opens it before its first device starts.
  for i in $(seq 1 "$benches"); do start_sim "$i" --port "$work/b$i.station" --pty; done
  for i in $(seq 1 "$benches"); do
    while [ ! -e "$work/b$i.station" ]; do
      kill -0 "${sims[$((i - 1))]}" 2>/dev/null || { echo "simulator $i did not start:" >&2; cat "$work/sim$i.log" "$work/sim$i.json" >&2; exit 1; }
      sleep 0.01
    done
  done
  start_serve
fi
if [ -n "$scrape" ]; then
  # Scrapes until the simulators are done; each line: seconds for /metrics, its bytes, seconds for /line.json.
  python3 - "$http_port" "$scrape" "$work/scrapes.txt" "${sims[@]}" <<'PY' &
import os, sys, time, urllib.request
port, every, out, sims = sys.argv[1], float(sys.argv[2]), sys.argv[3], [int(p) for p in sys.argv[4:]]
def alive():
    return any(os.path.exists(f"/proc/{p}") for p in sims)
with open(out, "w") as f:
    while alive():
        try:
            t0 = time.perf_counter()
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            t1 = time.perf_counter()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/line.json", timeout=10).read()
            t2 = time.perf_counter()
            f.write(f"{t1 - t0:.6f} {len(body)} {t2 - t1:.6f}\n")
        except OSError:
            pass
        time.sleep(every)
PY
  pids+=($!)
fi
failed=0
for p in "${sims[@]}"; do wait "$p" || failed=$((failed + 1)); done
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$serve_pid/status")
# The daemon's own CPU time (user + system), to tell its cost from the simulators' on the shared cores.
serve_cpu=$(awk -v tck="$(getconf CLK_TCK)" '{print ($14 + $15) / tck}' "/proc/$serve_pid/stat")
kill -TERM "$serve_pid"
wait "$serve_pid" || true

ok=$(grep -c ' OK ' "$work/lines.txt" || true)
# From the first device's start to the last device's end, as the simulators timed them.
wall=$(python3 - "$work" "$benches" <<'PY'
import json, sys
runs = [json.load(open(f"{sys.argv[1]}/sim{i}.json")) for i in range(1, int(sys.argv[2]) + 1)]
print(max(r["finished_unix"] for r in runs) - min(r["started_unix"] for r in runs))
PY
)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'token %s, CA %s; benches %d x %d devices%s: %d provisioned, %d simulator(s) failed, %.2f s\n' \
  "$token" "$ca_key_type" "$benches" "$count" "${line_rate:+ at $line_rate baud}" "$ok" "$failed" "$wall"
printf 'whole station (simulators on the same %d cores): %.0f certs/s\n' "$(nproc)" "$(awk "BEGIN {print $ok / $wall}")"
printf 'daemon CPU: %.2f s of %.2f s available (%.0f%%), %.3f ms per device: %.0f certs/s for the daemon alone on %d cores\n' \
  "$serve_cpu" "$(awk "BEGIN {print $wall * $(nproc)}")" "$(awk "BEGIN {print 100 * $serve_cpu / ($wall * $(nproc))}")" \
  "$(awk "BEGIN {print 1000 * $serve_cpu / $ok}")" "$(awk "BEGIN {print $ok * $(nproc) / $serve_cpu}")" "$(nproc)"
python3 - "$work/stats.json" "$rss_kb" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"station-side latency (CSR received -> CHAIN written): p50 {s['latency_p50_ms']:.2f} ms, p99 {s['latency_p99_ms']:.2f} ms, max {s['latency_max_ms']:.2f} ms")
print(f"daemon peak RSS: {int(sys.argv[2]) / 1024:.1f} MiB")
PY
if [ -n "$scrape" ]; then
  python3 - "$work/scrapes.txt" "$scrape" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
if rows:
    m = sorted(float(r[0]) * 1000 for r in rows)
    j = sorted(float(r[2]) * 1000 for r in rows)
    print(f"scrapes every {sys.argv[2]} s during the run: {len(rows)}; /metrics median {statistics.median(m):.2f} ms, "
          f"max {m[-1]:.2f} ms, {int(rows[-1][1]) / 1024:.0f} KiB; /line.json median {statistics.median(j):.2f} ms")
PY
fi
if [ -n "$line_rate" ]; then
  python3 - "$work" "$benches" "$line_rate" <<'PY'
import json, sys, glob, statistics
work, benches, baud = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per, wire = [], []
for f in glob.glob(f"{work}/sim*.json"):
    try:
        r = json.load(open(f))
    except Exception:
        continue
    for d in r.get("devices", []):
        if d.get("ok"):
            per.append(d["ms"])
            wire.append((d["wire"]["bytes_sent"] + d["wire"]["bytes_received"]) * 10 * 1000 / baud)
if per:
    print(f"per device at {baud} baud: median {statistics.median(per):.0f} ms; computed wire time median {statistics.median(wire):.0f} ms")
PY
fi

[ -n "$no_seeds" ] && exit 0
# The seeds' way on the same number of devices: openssl x509 -req + cat per device, file CA key.
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout seed-ca.key -out seed-ca.pem -days 3650 -subj /CN=seed 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key -out d.csr -subj /CN=dev 2>/dev/null
s0=$(date +%s.%N)
for i in $(seq 1 "$seeds"); do
  openssl x509 -req -in d.csr -CA seed-ca.pem -CAkey seed-ca.key -CAcreateserial -days 365 -out "s.pem" 2>/dev/null
  cat s.pem seed-ca.pem >"s-chain.pem"
done
s1=$(date +%s.%N)
seed_rate=$(awk "BEGIN {print $seeds / ($s1 - $s0)}")
printf "seeds' way: %.1f devices/s (%d devices)\n" "$seed_rate" "$seeds"
printf 'ratio: %.0fx\n' "$(awk "BEGIN {print ($ok / $wall) / $seed_rate}")"
