#!/usr/bin/env bash
# Raw signing rate of each PKCS#11 token that runs here (SoftHSM2, tpm2-pkcs11 over swtpm, the
# opencryptoki soft token): one thread, one session, C_SignInit + C_Sign in a loop
# (benches/token-sign/sign-rate.c). Prints the median of 3 runs per cell, in signatures/s.
# Usage: scripts/bench-token-sign.sh [SECONDS_PER_RUN] [TOKEN...]   (default 5 s; softhsm tpm2 ock)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/tokens.sh"
seconds="${1:-5}"
shift || true
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(softhsm tpm2 ock)
runs=3
ensure_packages "${STATION_TOKEN_APT_PACKAGES[@]}" gcc libc6-dev pkg-config libp11-kit-dev

work="$(mktemp -d /tmp/token-bench.XXXXXX)"
cleanup() {
  tokens_tpm2_stop "$work/tpm2" || true
  tokens_ock_stop "$work/ock" || true
  tokens_softhsm_stop "$work/softhsm" || true
  tokens_ock_shutdown || true # stops pkcsslotd only if tokens.sh started it and no slot is claimed
  rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -Wall -Wextra $(pkg-config --cflags p11-kit-1) "$REPO/benches/token-sign/sign-rate.c" -o "$work/sign-rate" -ldl

# Throwaway PINs for throwaway tokens (ock takes 4 to 8 characters).
export STATION_HSM_PIN=24682468
so_pin=13571357

median() { sort -n | awk '{v[NR] = $1} END {print (NR ? v[int((NR + 1) / 2)] : "-")}'; }

# One cell: the median rate of KEY with MECH, or a reason it could not run.
cell() {
  local key="$1" mech="$2" i out rates=()
  for ((i = 0; i < runs; i++)); do
    out="$(env "${env_args[@]}" "$work/sign-rate" "$module" "$label" "$key" "$mech" "$seconds" 2>&1)" || {
      log "$kind $mech: $out"
      printf 'failed'
      return
    }
    rates+=("$(awk '/^RESULT/ {print $5}' <<<"$out")")
  done
  printf '%s' "$(printf '%s\n' "${rates[@]}" | median)"
}

printf '%-8s %22s %22s %26s\n' token "ECDSA P-256 (CKM_ECDSA)" "RSA-2048 (CKM_RSA_PKCS)" "RSA-2048 (SHA256_RSA_PKCS)"
for kind in "${kinds[@]}"; do
  label="bench-$kind"
  out="$("tokens_${kind}_start" "$work/$kind" "$label" "$so_pin" "$STATION_HSM_PIN")"
  module="$(sed -n 's/^MODULE=//p' <<<"$out")"
  env_args=()
  for k in $(sed -n 's/^MODULE_ENV=//p' <<<"$out" | tr ',' ' '); do
    env_args+=("$(grep "^$k=" <<<"$out")")
  done
  mechs="$(env "${env_args[@]}" pkcs11-tool --module "$module" --token-label "$label" -M 2>/dev/null)"
  p11() { env "${env_args[@]}" pkcs11-tool --module "$module" --token-label "$label" --login --pin "$STATION_HSM_PIN" "$@"; }
  ec="n/a" rsa="n/a" rsa_sha="n/a"
  p11 --keypairgen --key-type rsa:2048 --usage-sign --label bench-rsa --id 02 >/dev/null 2>&1 || log "$kind: no RSA-2048 key"
  if grep -q '^ *ECDSA-KEY-PAIR-GEN' <<<"$mechs"; then
    p11 --keypairgen --key-type EC:prime256v1 --usage-sign --label bench-ec --id 01 >/dev/null 2>&1 || log "$kind: no P-256 key"
    ec="$(cell bench-ec ECDSA)"
  fi
  rsa="$(cell bench-rsa RSA-PKCS)"
  grep -q '^ *SHA256-RSA-PKCS,' <<<"$mechs" && rsa_sha="$(cell bench-rsa SHA256-RSA-PKCS)"
  printf '%-8s %22s %22s %26s\n' "$kind" "$ec" "$rsa" "$rsa_sha"
  "tokens_${kind}_stop" "$work/$kind"
done
echo "signatures/s, median of $runs runs of ${seconds}s, 1 thread; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
