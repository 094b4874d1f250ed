#!/usr/bin/env bash
# What each PKCS#11 token can sign, against what the station issues on it, measured in turns so that the machine's
# drift hits both alike:
#   1. the token's raw signing rate: scripts/bench-token-sign.sh (C_Sign in a loop, one thread, one session; for
#      EC, CKM_ECDSA over a host hash, which measured the same as the CKM_ECDSA_SHA256 the station uses on tpm2);
#   2. the station's issuance rate on the same token: scripts/bench-serial.sh --token T --nice-sims (station serve
#      with enough benches of station-devsim to keep the token busy; the simulators at nice 19, since devices have
#      their own CPUs);
#   3. the median of RUNS turns of each, and their ratio. Where the token is slower than the rest of the station (the
#      TPM), the station should get at least 90 % of the raw rate; where it is much faster (SoftHSM, the opencryptoki
#      soft token), the station's own CPU per certificate is the limit and the ratio says how far below the token's
#      capacity the station stays.
# NSS softokn is left out: the C bench cannot pass its C_Initialize arguments.
# Usage: scripts/bench-tokens.sh [RUNS]   (default 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
runs="${1:-3}"
ensure_build

# token, CA key type, raw column (2 = ECDSA, 3 = RSA CKM_RSA_PKCS, 4 = RSA CKM_SHA256_RSA_PKCS), benches, devices each
cases=(
  "softhsm ec-p256 2 64 60"
  "tpm2 ec-p256 2 8 100"
  "tpm2 rsa-2048 4 8 60"
  "ock rsa-2048 3 32 60"
)
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
table=()
for c in "${cases[@]}"; do
  read -r token kt col benches count <<<"$c"
  raws=() rates=()
  for _ in $(seq "$runs"); do
    raw="$("$REPO/scripts/bench-token-sign.sh" 3 "$token" 2>/dev/null)"
    raws+=("$(awk -v t="$token" -v c="$col" '$1 == t {print $c}' <<<"$raw")")
    out="$("$REPO/scripts/bench-serial.sh" --token "$token" --ca-key-type "$kt" --benches "$benches" --count "$count" \
      --no-seeds --nice-sims)"
    rates+=("$(sed -n 's/^whole station.*: \([0-9.]*\) certs\/s$/\1/p' <<<"$out")")
  done
  raw_rate="$(printf '%s\n' "${raws[@]}" | median)"
  rate="$(printf '%s\n' "${rates[@]}" | median)"
  table+=("$(printf '%-8s %-9s %14s %16s %6.0f%%   raw %s; station %s' "$token" "$kt" "$raw_rate" "$rate" \
    "$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN {print (b > 0 ? 100 * a / b : 0)}')" "${raws[*]}" "${rates[*]}")")
  printf '%s\n' "${table[-1]}" >&2
done
printf '%-8s %-9s %14s %16s %7s\n' token CA "raw signs/s" "station certs/s" ratio
printf '%s\n' "${table[@]}"
echo "medians of $runs turns; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
