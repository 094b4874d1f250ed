#!/usr/bin/env bash
# The fleet registry's figures for docs/PERFORMANCE.md: the station's peak issuance rate (engine, SoftHSM, ledger)
# against the forwarder's throughput to a real PostgreSQL, the registry lag p50/p99 under full load, and the time
# to drain a backlog of 100,000 events. Usage: scripts/bench-registry.sh [DEVICES [THREADS [DRAIN_EVENTS]]]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"
ensure_packages
"$REPO/scripts/pg.sh" ensure
ensure_rust
export PERF_DEVICES="${1:-3000}" PERF_THREADS="${2:-8}" PERF_DRAIN_EVENTS="${3:-100000}"
# The same build as the test suite (dependencies at opt-level 2, the station's own code unoptimised): both sides of
# every ratio below are measured in it.
cargo test --features test-hooks --test registry_bench -- --ignored --nocapture measure_forwarding_against_peak_issuance 2>&1 |
  grep -E '^(machine|RESULT)'
