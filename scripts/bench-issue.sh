#!/usr/bin/env bash
# Issuance benchmark: the engine end to end (CSR verify, SoftHSM signing, durable group-committed
# ledger row) with an EC P-256 CA and an RSA-2048 CA, against the seeds' openssl-per-device way.
# Usage: scripts/bench-issue.sh [DEVICES_PER_CA [OPENSSL_DEVICES]]   (defaults 20000 and 200)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
devices="${1:-20000}"
seeds="${2:-200}"
ensure_packages
ensure_build
(cd "$REPO" && cargo bench --no-run --quiet --bench issue 2>/dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for kind in ec rsa; do
  "$BIN/station" init --dir "$work/$kind" --station-id "bench-$kind" >/dev/null
done
"$BIN/station" -c "$work/ec/station.toml" ca create --name bench-ec --key-type ec-p256 >/dev/null
"$BIN/station" -c "$work/rsa/station.toml" ca create --name bench-rsa --key-type rsa-2048 >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); SoftHSM $(dpkg-query -W -f='${Version}' softhsm2)"
bench() { (cd "$REPO" && cargo bench --quiet --bench issue -- "$@"); }
{
  bench engine "$work/ec/station.toml" EC-P256-CA "$devices"
  bench engine "$work/rsa/station.toml" RSA2048-CA "$devices"
  bench seeds "$seeds"
} | tee "$work/out.txt" | grep -v '^RESULT'
awk '/^RESULT seeds/ {s=$4} /^RESULT/ && !/seeds/ {r[NR]=$0} END {
  for (i in r) { split(r[i], f, " "); printf "ratio %-11s %-18s %6.0fx the seeds'"'"' way\n", f[2], f[3], f[4]/s }
}' "$work/out.txt" | sort
