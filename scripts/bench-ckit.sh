#!/usr/bin/env bash
# The C device kit's host example (device/c, bp-device: termios + mbedTLS) against station-devsim, on the same
# station and the same benches in one session: BENCHES socat-linked pty pairs, the real `station serve` with an EC
# P-256 CA in SoftHSM. First station-devsim, then bp-device, each running COUNT devices per bench (own serials,
# key made in the loop, stored without fsync on both sides). Reports the median per-device time of each (the
# device's own clock, HELLO to DONE including key generation) and their ratio, and the wall time of each run.
# BIN_DIR=target/debug runs already-built binaries of that folder instead of the release build.
# Usage: scripts/bench-ckit.sh [--benches N] [--count PER_BENCH]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
benches=4 count=25
while [ $# -gt 0 ]; do
  case "$1" in
    --benches) benches="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ensure_packages
ensure_packages "${CKIT_APT_PACKAGES[@]}"
if [ -n "${BIN_DIR:-}" ]; then BIN="$BIN_DIR"; else ensure_build; fi
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
kit="$(target_dir)/device-c-bench"
make --no-print-directory -s -C "$REPO/device/c" O="$kit" CFLAGS=-O2 "$kit/bp-device"

"$BIN/station" init --dir "$work/st" --station-id bench-ckit >/dev/null
"$BIN/station" -c "$work/st/station.toml" ca create --name bench-ca --key-type ec-p256 >/dev/null
"$BIN/station" -c "$work/st/station.toml" ca show bench-ca --pem | sed -n '/BEGIN CERT/,/END CERT/p' >"$work/ca.pem"
bench_args=()
for i in $(seq 1 "$benches"); do
  socat pty,raw,echo=0,link="$work/b$i.station" pty,raw,echo=0,link="$work/b$i.device" 2>/dev/null &
  pids+=($!)
  while [ ! -e "$work/b$i.device" ] || [ ! -e "$work/b$i.station" ]; do sleep 0.01; done
  bench_args+=(--bench "b$i=$work/b$i.station")
done
"$BIN/station" -c "$work/st/station.toml" serve "${bench_args[@]}" >"$work/lines.txt" 2>"$work/serve.log" &
pids+=($!)
sleep 2

run() { # name, command per bench (bench number appended as serial offset)
  local name="$1" sims=() t0 t1 i
  t0=$(date +%s.%N)
  for i in $(seq 1 "$benches"); do
    local from=$(( (i - 1) * count + 1 ))
    if [ "$name" = devsim ]; then
      STATION_LOG=warn "$BIN/station-devsim" --port "$work/b$i.device" --ca "$work/ca.pem" --out "$work/out-$name" \
        --count "$count" --serial-from "$from" --serial-prefix "D$i-" --no-sync --json >"$work/$name$i.json" 2>/dev/null &
    else
      "$kit/bp-device" --port "$work/b$i.device" --ca "$work/ca.pem" --out "$work/out-$name" \
        --count "$count" --serial-from "$from" --serial-prefix "C$i-" --no-sync >"$work/$name$i.json" 2>/dev/null &
    fi
    sims+=($!)
  done
  local failed=0
  for p in "${sims[@]}"; do wait "$p" || failed=$((failed + 1)); done
  t1=$(date +%s.%N)
  echo "$name $(awk "BEGIN {print $t1 - $t0}") $failed" >>"$work/walls.txt"
}
run devsim
run ckit
chains=("$work"/out-*/*/deviceCertAndCACert.crt)
verified=$(openssl verify -x509_strict -purpose sslclient -CAfile "$work/ca.pem" "${chains[@]}" | grep -c ': OK$' || true)
[ "$verified" = "${#chains[@]}" ] || { echo "only $verified of ${#chains[@]} chains pass openssl verify" >&2; exit 1; }
echo "openssl verify -x509_strict: $verified of ${#chains[@]} chains OK"
python3 - "$work" "$benches" "$count" <<'PY'
import json, statistics, sys, glob
work, benches, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
walls = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(f"{work}/walls.txt")}
def per_device(name):
    ms = []
    for f in glob.glob(f"{work}/{name}*.json"):
        text = open(f).read()
        if name == "devsim":
            report = json.loads(text)
            if "devices" not in report:
                sys.exit(f"{f}: station-devsim did not run: {text}")
            ms += [d["ms"] for d in report["devices"] if d["ok"]]
        else:
            ms += [d["ms"] for d in map(json.loads, text.splitlines()) if d.get("ok")]
    return ms
d, c = per_device("devsim"), per_device("ckit")
print(f"benches {benches} x {count} devices each, same station, same ptys, one after the other; "
      f"1-min load average at the end: {open('/proc/loadavg').read().split()[0]}")
for name, ms in (("station-devsim", d), ("bp-device (C kit)", c)):
    key = "devsim" if name.startswith("station") else "ckit"
    print(f"{name}: {len(ms)} provisioned, {walls[key][1]} run(s) failed, wall {walls[key][0]:.2f} s, "
          f"per device median {statistics.median(ms):.1f} ms, p90 {statistics.quantiles(ms, n=10)[-1]:.1f} ms")
print(f"ratio C kit / devsim, median per-device time: {statistics.median(c) / statistics.median(d):.2f}")
PY
