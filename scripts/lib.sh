# Shared by the project's scripts: idempotent installs of what the station and its tests need.
# Source it: `. "$(dirname "$0")/lib.sh"`.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO

log() { printf '%s\n' "$*" >&2; }

# Debian packages: the HSM, PKCS#11 tools, the verifier, ptys, the MQTT broker, and OpenSSL's headers (the registry
# client's TLS links the system OpenSSL).
STATION_APT_PACKAGES=(softhsm2 opensc openssl sqlite3 jq socat mosquitto mosquitto-clients libengine-pkcs11-openssl python3-venv
  libssl-dev pkg-config)

# The C device kit (device/c): both compilers of its pinned flags, mbedTLS for its port and example, flock for the
# tests that build it, the Cortex-M toolchain for its size figures, and clang's libFuzzer and sanitizer runtimes for
# its fuzz target.
CKIT_APT_PACKAGES=(make gcc clang libclang-rt-14-dev libmbedtls-dev util-linux gcc-arm-none-eabi libnewlib-arm-none-eabi)

# Installs the missing ones of the named packages (default: STATION_APT_PACKAGES).
ensure_packages() {
  local missing=() wanted=("$@")
  [ ${#wanted[@]} -gt 0 ] || wanted=("${STATION_APT_PACKAGES[@]}")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || { log "cargo is missing: install Rust (rustup) first"; exit 1; }
}

# Cargo's target folder, wherever CARGO_TARGET_DIR or a cargo config puts it.
target_dir() {
  (cd "$REPO" && cargo metadata --no-deps --format-version 1 2>/dev/null) |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# Builds the release binaries of the workspace, `station` and `station-devsim` (crates/devsim), into one folder;
# cargo skips the work when nothing changed. Sets BIN to that folder.
ensure_build() {
  ensure_rust
  if [ ! -x "$(target_dir)/release/station" ] || [ ! -x "$(target_dir)/release/station-devsim" ]; then
    log "building the station and the simulator (release; a first build takes several minutes)"
  fi
  (cd "$REPO" && cargo build --release --quiet --workspace --bins)
  BIN="$(target_dir)/release"
  export BIN
}

# Builds the C device kit with gcc and with clang (pinned flags: -std=c99 -Wall -Wextra -Werror -pedantic), runs its
# unit tests, a short libFuzzer run of its frame decoder (CKIT_FUZZ_SECONDS, default 20) and prints its sizes. The
# kit's end-to-end tests against the station are tests/device_kit.rs, in the cargo run.
check_ckit() {
  local out
  out="$(target_dir)/device-c-check"
  for cc in gcc clang; do
    make --no-print-directory -s -C "$REPO/device/c" CC="$cc" O="$out/$cc" all test
  done
  local fuzz_log="$out/fuzz-run.log"
  mkdir -p "$out"
  if ! make --no-print-directory -s -C "$REPO/device/c" O="$out/gcc" fuzz-run FUZZ_SECONDS="${CKIT_FUZZ_SECONDS:-20}" \
    >"$fuzz_log" 2>&1; then
    tail -n 30 "$fuzz_log" >&2
    log "device/c: the fuzz run failed (its whole output: $fuzz_log)"
    return 1
  fi
  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$fuzz_log" >&2 || true
  make --no-print-directory -s -C "$REPO/device/c" O="$out/gcc" size >&2
}
