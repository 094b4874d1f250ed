#!/usr/bin/env bash
# The fleet registry's figures for docs/PERFORMANCE.md: the station's peak issuance rate (engine, SoftHSM, ledger;
# each device issued and confirmed, two events, as `serve` records it) against the forwarder's throughput to a real
# PostgreSQL, the registry lag p50/p99 under that full load, and the time to drain a backlog of 100,000 events.
#
#   scripts/bench-registry.sh [--release] [DEVICES [THREADS [DRAIN_EVENTS]]]     (defaults 3000, 8, 100000)
#
# Without --release it runs in the test suite's build (dependencies optimised, the station's own code not);
# --release builds the harness with the release profile (a first build takes several minutes). Both sides of every
# ratio are measured in the same build and the same run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"
profile=()
if [ "${1:-}" = "--release" ]; then
  profile=(--release)
  shift
fi
ensure_packages
"$REPO/scripts/pg.sh" ensure
ensure_rust
export PERF_DEVICES="${1:-3000}" PERF_THREADS="${2:-8}" PERF_DRAIN_EVENTS="${3:-100000}"
cargo test "${profile[@]}" --features test-hooks --test registry_bench -- --ignored --nocapture \
  measure_forwarding_against_peak_issuance 2>&1 | grep -E '^(machine|RESULT)'
