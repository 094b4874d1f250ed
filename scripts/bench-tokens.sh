#!/usr/bin/env bash
# What each PKCS#11 token can sign, against what the station issues on it.
#   1. the token's raw signing rate: scripts/bench-token-sign.sh (C_Sign in a loop, one thread, one session);
#   2. the station's issuance rate on the same token: scripts/bench-serial.sh --token T (station serve with enough
#      benches of station-devsim to keep the token busy), the median of RUNS runs;
#   3. the ratio. Where the token is slower than the rest of the station (the TPM), the station should get at
#      least 90 % of the raw rate; where it is much faster (SoftHSM, the opencryptoki soft token), the station's own
#      CPU per certificate is the limit and the ratio says how far below the token it stays.
# NSS softokn is left out: the C bench cannot pass its C_Initialize arguments.
# Usage: scripts/bench-tokens.sh [RUNS]   (default 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
runs="${1:-3}"
ensure_build

raw="$("$REPO/scripts/bench-token-sign.sh" 5)"
echo "$raw"
# token, CA key type, raw column (2 = ECDSA, 3 = RSA CKM_RSA_PKCS, 4 = RSA CKM_SHA256_RSA_PKCS), benches, devices each
cases=(
  "softhsm ec-p256 2 64 60"
  "tpm2 ec-p256 2 8 100"
  "tpm2 rsa-2048 4 8 60"
  "ock rsa-2048 3 32 60"
)
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
printf '\n%-8s %-9s %14s %16s %7s\n' token CA "raw signs/s" "station certs/s" ratio
for c in "${cases[@]}"; do
  read -r token kt col benches count <<<"$c"
  raw_rate="$(awk -v t="$token" -v c="$col" '$1 == t {print $c}' <<<"$raw")"
  rates=()
  for _ in $(seq "$runs"); do
    out="$("$REPO/scripts/bench-serial.sh" --token "$token" --ca-key-type "$kt" --benches "$benches" --count "$count" --no-seeds)"
    rates+=("$(sed -n 's/^whole station.*: \([0-9.]*\) certs\/s$/\1/p' <<<"$out")")
  done
  rate="$(printf '%s\n' "${rates[@]}" | median)"
  printf '%-8s %-9s %14s %16s %6.0f%%   (runs: %s)\n' "$token" "$kt" "$raw_rate" "$rate" \
    "$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN {print (b > 0 ? 100 * a / b : 0)}')" "${rates[*]}"
done
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
