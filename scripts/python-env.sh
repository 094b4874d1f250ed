#!/usr/bin/env bash
# Create (if missing) the project's Python venv and install the pinned test
# tooling into it: moto[server] (the AWS emulator, see docs/aws-emulator.md),
# awscli v1 (an independent client for checking what the station registered) and
# prometheus-client (its Prometheus and OpenMetrics text parsers check /metrics).
#
# Idempotent and fast: when the venv already holds exactly these versions it
# only checks a few directories (no pip start-up) and exits.
#
#   scripts/python-env.sh            # venv at $REPO/.venv
#   STATION_VENV=/tmp/v scripts/python-env.sh
#   STATION_PYTHON=python3.11 ...    # interpreter used to create the venv
#
# Prints exactly one line saying what it did.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STATION_VENV:-$REPO/.venv}"

MOTO_VERSION="5.2.5"
AWSCLI_VERSION="1.46.3"   # latest 1.46.x on PyPI when pinned
PROMETHEUS_CLIENT_VERSION="0.26.0"
PINS=("moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION" "prometheus-client==$PROMETHEUS_CLIENT_VERSION")

# Fast check: pip records each installed distribution as
# site-packages/<name>-<version>.dist-info. flask is what the [server] extra adds.
installed() {
    local sp
    for sp in "$VENV"/lib/python3*/site-packages; do
        [[ -d "$sp/moto-$MOTO_VERSION.dist-info" ]] || return 1
        [[ -d "$sp/awscli-$AWSCLI_VERSION.dist-info" ]] || return 1
        [[ -d "$sp/prometheus_client-$PROMETHEUS_CLIENT_VERSION.dist-info" ]] || return 1
        compgen -G "$sp/flask-*.dist-info" >/dev/null || return 1
        compgen -G "$sp/flask_cors-*.dist-info" >/dev/null || return 1
        return 0
    done
    return 1
}

if [[ -x "$VENV/bin/python" ]] && installed; then
    echo "python-env: $VENV already has ${PINS[*]}"
    exit 0
fi

created=""
if [[ ! -x "$VENV/bin/python" ]]; then
    PY="${STATION_PYTHON:-}"
    if [[ -z "$PY" ]]; then
        for cand in python3 /usr/bin/python3; do
            if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then
                PY="$cand"; break
            fi
        done
    fi
    [[ -n "$PY" ]] || { echo "python-env: no python3 with venv/ensurepip found (apt-get install python3-venv)" >&2; exit 1; }
    "$PY" -m venv "$VENV" >&2
    created="created $VENV and "
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "${PINS[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "python-env: pip install ${PINS[*]} failed" >&2
    exit 1
fi
installed || { echo "python-env: installed, but the version check still fails in $VENV" >&2; exit 1; }
echo "python-env: ${created}installed ${PINS[*]} into $VENV"
