#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs every test.
# Tests use real parts: SoftHSM2 tokens in temp dirs, SQLite files, ptys, openssl, mosquitto, moto.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_packages
ensure_packages chromium fonts-dejavu-core # headless Chromium renders the line view in tests/ops.rs
ensure_packages strace # tests/ports.rs traces the DTR/RTS requests a bench makes on its pty
ensure_packages "${CKIT_APT_PACKAGES[@]}"
"$REPO/scripts/tokens.sh" ensure # swtpm + tpm2-pkcs11 and opencryptoki, for the token tests
"$REPO/scripts/pg.sh" ensure     # PostgreSQL, for the fleet registry tests (each test starts its own server)
ensure_rust
"$REPO/scripts/python-env.sh"
export STATION_VENV_PYTHON="${STATION_VENV:-$REPO/.venv}/bin/python"

# The emulator launcher checks itself first: the AWS tests rely on its fixes.
"$REPO/scripts/test-moto-iot.sh"

# The opencryptoki daemon is machine-wide: stop it afterwards if this run started it (swtpm instances are
# each test's own and stop with it).
trap '"$REPO/scripts/tokens.sh" ock shutdown >/dev/null 2>&1 || true' EXIT

# The C device kit: gcc and clang builds, unit tests, a short fuzz run, sizes (its station tests run below).
check_ckit

# Each test runs in its own process under nextest (a PKCS#11 module reads its config once per process).
# `--workspace` tests the station, the protocol crate and the simulator, and builds every binary of the workspace:
# the station's tests run `station-devsim` from beside `station` (tests/common/sim.rs).
# The station's feature `test-hooks` compiles in the fault injection the fault tests use (never in a release build).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features station/test-hooks --no-fail-fast "$@"
else
  cargo test --workspace --features station/test-hooks --no-fail-fast "$@" -- --test-threads=1
fi
