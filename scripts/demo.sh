#!/usr/bin/env bash
# The main job on embedded defaults: a SoftHSM token, an SQLite ledger and a CA whose key never leaves
# the HSM. Run it again and it reuses the demo station. STATION_DEMO_DIR picks the folder.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ensure_packages
ensure_build
STATION="$REPO/target/release/station"
DEMO="${STATION_DEMO_DIR:-$REPO/demo}"
CFG="$DEMO/station.toml"

step() { printf '\n== %s\n' "$*"; }

if [ -f "$CFG" ]; then
  step "reusing the demo station in $DEMO"
else
  step "station init --dir $DEMO"
  "$STATION" init --dir "$DEMO" --station-id demo-station
fi

if ! "$STATION" -c "$CFG" ca show demo-ca >/dev/null 2>&1; then
  step "station ca create --name demo-ca (key generated inside the HSM)"
  "$STATION" -c "$CFG" ca create --name demo-ca --subject "CN=Demo Factory CA,O=Station Demo,C=DE"
fi

step "station ca list"
"$STATION" -c "$CFG" ca list

step "station hsm status (the CA key is sensitive and never extractable)"
"$STATION" -c "$CFG" hsm status

step "openssl verify -x509_strict on the CA certificate"
"$STATION" -c "$CFG" ca show demo-ca --pem | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' >"$DEMO/demo-ca.pem"
openssl verify -x509_strict -CAfile "$DEMO/demo-ca.pem" "$DEMO/demo-ca.pem"
