#!/usr/bin/env bash
# The main job on embedded defaults: a SoftHSM token, an SQLite ledger, a CA whose key never leaves the
# HSM, and `station serve` provisioning simulated devices on 4 benches (linked ptys) at 115200 baud.
# Run it again and it reuses the demo station. STATION_DEMO_DIR picks the folder; DEMO_DEVICES the
# devices per bench (default 3).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ensure_packages
ensure_build
DEMO="${STATION_DEMO_DIR:-$REPO/demo}"
CFG="$DEMO/station.toml"
PER_BENCH="${DEMO_DEVICES:-3}"
st() { "$BIN/station" -c "$CFG" "$@"; }
step() { printf '\n== %s\n' "$*"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ -f "$CFG" ]; then
  step "reusing the demo station in $DEMO"
  # Demo stations made before module_env values were passed as written named the SoftHSM config relatively.
  sed -i "s|SOFTHSM2_CONF = \"softhsm2.conf\"|SOFTHSM2_CONF = \"$DEMO/softhsm2.conf\"|" "$CFG"
else
  step "station init --dir $DEMO"
  "$BIN/station" init --dir "$DEMO" --station-id demo-station
fi
if ! st ca show demo-ca >/dev/null 2>&1; then
  step "station ca create --name demo-ca (the key is generated inside the HSM)"
  st ca create --name demo-ca --subject "CN=Demo Factory CA,O=Station Demo,C=DE"
fi
st ca show demo-ca --pem | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' >"$DEMO/demo-ca.pem"

step "AWS IoT: LOCAL EMULATOR (moto via scripts/moto-iot.py on 127.0.0.1) - nothing here reaches real AWS"
"$REPO/scripts/python-env.sh"
"$REPO/.venv/bin/python" "$REPO/scripts/moto-iot.py" --port 0 --strict-verification >"$DEMO/moto.out" 2>"$DEMO/moto.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^READY ' "$DEMO/moto.out" && break; sleep 0.1; done
MOTO_URL="http://127.0.0.1:$(awk '/^READY /{print $2}' "$DEMO/moto.out")"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
if grep -q '^\[aws\]' "$CFG"; then
  sed -i "s|^endpoint_url = .*|endpoint_url = \"$MOTO_URL\"|" "$CFG"
else
  cat >>"$CFG" <<TOML

[aws]
# The demo's LOCAL EMULATOR (moto). For real AWS remove endpoint_url and set your regions and role.
endpoint_url = "$MOTO_URL"
regions = [{ name = "eu-central-1" }, { name = "us-east-1" }]
role_arn = "arn:aws:iam::123456789012:role/StationDemoJITP"
require_verified = true
TOML
fi
# The account's JITP provisioning role, made once by an account admin (here in the emulator, with awscli): it trusts
# AWS IoT and has the managed policy AWSIoTThingsRegistration. `ca verify` checks both.
"$REPO/.venv/bin/aws" --endpoint-url "$MOTO_URL" --region us-east-1 iam create-role --role-name StationDemoJITP \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}' >/dev/null
"$REPO/.venv/bin/aws" --endpoint-url "$MOTO_URL" --region us-east-1 iam attach-role-policy --role-name StationDemoJITP \
  --policy-arn arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration
step "station ca register --name demo-ca (verification certificate signed in the HSM)"
st ca register --name demo-ca
step "station ca verify --name demo-ca (every region; serve refuses to start unless this passes)"
st ca verify --name demo-ca

step "station hsm status (the CA key is sensitive and never extractable)"
st hsm status

step "4 benches: linked pty pairs stand in for USB serial adapters"
mkdir -p "$DEMO/ptys"
bench_args=()
for i in 1 2 3 4; do
  rm -f "$DEMO/ptys/bench-$i" "$DEMO/ptys/device-$i"
  socat pty,raw,echo=0,link="$DEMO/ptys/bench-$i" pty,raw,echo=0,link="$DEMO/ptys/device-$i" 2>/dev/null &
  pids+=($!)
  bench_args+=(--bench "bench-$i=$DEMO/ptys/bench-$i@115200")
done
for i in 1 2 3 4; do
  while [ ! -e "$DEMO/ptys/device-$i" ]; do sleep 0.05; done
done

step "station serve on 4 benches (one line per device)"
# Started directly (not through the st function) so that $! is the daemon itself.
"$BIN/station" -c "$CFG" serve "${bench_args[@]}" 2>"$DEMO/serve.log" &
serve_pid=$!
pids+=($serve_pid)
sleep 1

run="R$(date +%H%M%S)"
step "4 simulated devices lines, $PER_BENCH devices each, at 115200 baud (serials $run-B<bench>-…)"
sims=()
for i in 1 2 3 4; do
  "$BIN/station-devsim" --port "$DEMO/ptys/device-$i" --ca "$DEMO/demo-ca.pem" --out "$DEMO/devices" \
    --count "$PER_BENCH" --serial-from 1 --serial-prefix "$run-B$i-" --line-rate 115200 >"$DEMO/devsim-$i.txt" 2>&1 &
  sims+=($!)
done
failed=0
for p in "${sims[@]}"; do wait "$p" || failed=$((failed + 1)); done
sleep 0.5

step "stopping the daemon (SIGTERM: in-flight devices finish, the ledger is flushed)"
kill -TERM "$serve_pid"
wait "$serve_pid" || true

step "what the simulators stored (the seeds' file names)"
ls "$DEMO/devices" | head -3
echo "… $(ls "$DEMO/devices" | wc -l) device folders, each with deviceCert.key and deviceCertAndCACert.crt"
first="$(ls -d "$DEMO/devices/$run"-* | head -1)"
openssl verify -x509_strict -purpose sslclient -CAfile "$DEMO/demo-ca.pem" "$first/deviceCertAndCACert.crt"

step "station aws dry-run: what AWS IoT would do at this device's first connection, in every region"
st aws dry-run --cert "$first/deviceCertAndCACert.crt"

step "station status"
st status

step "station audit stats --by bench"
st audit stats --by bench

step "station audit verify"
st audit verify

[ "$failed" -eq 0 ] || { echo "demo: $failed simulator(s) failed; see $DEMO/devsim-*.txt" >&2; exit 1; }
