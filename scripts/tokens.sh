#!/usr/bin/env bash
# Real PKCS#11 tokens for the tests besides SoftHSM2: tpm2-pkcs11 over swtpm, and the opencryptoki
# (ock) soft token. Runnable, or sourceable for its functions (tokens_*).
#
#   tokens.sh ensure                                     install the Debian packages (idempotent)
#   tokens.sh tpm2 start   DIR LABEL SO_PIN USER_PIN     own swtpm + fresh token under DIR/tpm2
#   tokens.sh tpm2 kill    DIR                           kill the swtpm (SIGKILL), keep its state
#   tokens.sh tpm2 resume  DIR                           start the swtpm again on the same state
#   tokens.sh tpm2 restart DIR                           kill + resume (fault tests)
#   tokens.sh tpm2 flush   DIR                           flush objects/sessions killed clients left
#   tokens.sh tpm2 stop    DIR                           kill the swtpm, remove DIR/tpm2
#   tokens.sh ock start    DIR LABEL SO_PIN USER_PIN     claim a free ock soft-token slot, init it fresh
#   tokens.sh ock stop     DIR                           wipe and release the slot DIR claimed
#   tokens.sh ock shutdown                               stop pkcsslotd if this script started it
#   tokens.sh ock unconfigure                            undo `ock` changes to the machine
#   tokens.sh softhsm start DIR LABEL SO_PIN USER_PIN    SoftHSM2 token under DIR/softhsm
#   tokens.sh softhsm stop  DIR
#   tokens.sh nss start    DIR LABEL SO_PIN USER_PIN     NSS softokn database under DIR/nss (its token is
#                                                        always "NSS Certificate DB"; LABEL and SO_PIN unused)
#   tokens.sh nss stop     DIR
#
# `start` and `resume` print KEY=VALUE lines on stdout, nothing else (logs go to stderr):
#   MODULE=<module path>   MODULE_ENV=<comma-separated keys below that the module needs in its env>
#   TOKEN_LABEL=...        and per kind SWTPM_PID / SLOT_ID, PKCSSLOTD_PID / SOFTHSM2_CONF / INIT_ARGS.
# Daemons get /dev/null for stdin/stdout, so a caller reading stdout to EOF does not hang.
#
# The PINs are on argv here (pkcs11-tool has no other way to take them). That is acceptable only
# because these are throwaway test tokens with throwaway PINs; nothing the project ships does this.
#
# Machine-wide effects, all for tests on throwaway (CI) machines, run as root:
#   - `ock` appends a marked block of STATION_OCK_SLOTS slots to /etc/opencryptoki/opencryptoki.conf
#     (the original is kept once as opencryptoki.conf.station-orig), copies the soft-token library
#     to /usr/local/lib/station-ock/ (one copy per slot: ock 3.8 keeps token objects in
#     library-global trees, so slots sharing one library see each other's objects), starts
#     pkcsslotd, keeps claims under /run/station-tokens/ and token data under
#     /var/lib/opencryptoki/station<N>. `ock unconfigure` undoes all of it.
#   - `tpm2` and `softhsm` touch nothing outside DIR.

declare -F log >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOKENS_SO_DEFAULT_OCK=87654321 # the SO PIN of a fresh ock token
STATION_OCK_SLOTS="${STATION_OCK_SLOTS:-4}"
STATION_OCK_FIRST_SLOT="${STATION_OCK_FIRST_SLOT:-10}"
TOKENS_RUN=/run/station-tokens
TOKENS_OCK_CONF=/etc/opencryptoki/opencryptoki.conf
TOKENS_OCK_LIBDIR=/usr/local/lib/station-ock
TOKENS_OCK_DATA=/var/lib/opencryptoki
TOKENS_BEGIN="# >>> station test tokens (scripts/tokens.sh; undo: scripts/tokens.sh ock unconfigure)"
TOKENS_END="# <<< station test tokens"

# The Debian packages the tokens need.
STATION_TOKEN_APT_PACKAGES=(swtpm swtpm-tools libtpm2-pkcs11-1 libtss2-tcti-swtpm0 tpm2-tools opencryptoki softhsm2 opensc
  libnss3 libnss3-tools)

# The first path a glob matches, or fails.
tokens_find() {
  local f
  for f in "$@"; do
    [ -e "$f" ] && { printf '%s\n' "$f"; return 0; }
  done
  log "not found: $*"
  return 1
}
tokens_tpm2_module() { tokens_find /usr/lib/*/pkcs11/libtpm2_pkcs11.so; }
tokens_ock_module() { tokens_find /usr/lib/*/pkcs11/libopencryptoki.so /usr/lib/*/pkcs11/PKCS11_API.so; }
tokens_softhsm_module() { tokens_find /usr/lib/softhsm/libsofthsm2.so; }
tokens_nss_module() { tokens_find /usr/lib/*/libsoftokn3.so; }

# Runs a command with its output captured; shows the output (and the command, PINs masked) only
# if it fails.
tokens_quiet() {
  local out rc=0 a shown=() mask=0
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ]; then
    for a in "$@"; do
      if [ "$mask" -eq 1 ]; then shown+=("***"); else shown+=("$a"); fi
      case "$a" in --pin | --so-pin | --new-pin) mask=1 ;; *) mask=0 ;; esac
    done
    log "failed ($rc): ${shown[*]}"
    log "$out"
  fi
  return "$rc"
}

# True when PID is a live (not zombie) process whose command line contains WORD.
tokens_alive() {
  local pid="$1" word="$2" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ "$state" != Z ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"
}

# Sends SIG to PID (only if it is still the process we mean) and waits up to 5 s for it to go.
tokens_kill() {
  local pid="$1" word="$2" sig="${3:-TERM}" i
  tokens_alive "$pid" "$word" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    tokens_alive "$pid" "$word" || return 0
    sleep 0.1
  done
  log "pid $pid did not exit on SIG$sig; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# Runs a daemon with no inherited descriptors beyond 0-2 (the caller redirects those): a daemon
# holding the ock lock or a caller's pipe would block that lock, or a reader waiting for EOF.
tokens_detached() {
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec "$@"
  )
}

tokens_ensure() {
  ensure_packages "${STATION_TOKEN_APT_PACKAGES[@]}"
}

# ---------------------------------------------------------------------------------------------
# tpm2-pkcs11 over swtpm: one swtpm per DIR, unix sockets only, no resource manager.
#   DIR/tpm2/{state/, store/, sock, sock.ctrl, swtpm.pid, swtpm.log}

tokens_tpm2_paths() {
  TOKENS_T="$(realpath -m "$1")/tpm2"
  TOKENS_SOCK="$TOKENS_T/sock"
  # sun_path holds 107 bytes; the control socket is sock.ctrl (the swtpm TCTI derives it).
  if [ "${#TOKENS_SOCK}" -gt 100 ]; then
    log "tpm2: socket path too long for a unix socket (${#TOKENS_SOCK} > 100): $TOKENS_SOCK"
    return 1
  fi
}

# Runs "$@" with the environment the module and tpm2-tools need for DIR's swtpm.
tokens_tpm2_run() {
  env "TPM2_PKCS11_TCTI=swtpm:path=$TOKENS_SOCK" "TPM2_PKCS11_STORE=$TOKENS_T/store" "TPM2TOOLS_TCTI=swtpm:path=$TOKENS_SOCK" "$@"
}

# Starts swtpm on DIR's existing state and waits until it answers.
tokens_tpm2_launch() {
  local pid i
  rm -f "$TOKENS_SOCK" "$TOKENS_SOCK.ctrl" "$TOKENS_T/swtpm.pid"
  tokens_detached swtpm socket --tpm2 --daemon \
    --server "type=unixio,path=$TOKENS_SOCK,mode=0600" --ctrl "type=unixio,path=$TOKENS_SOCK.ctrl,mode=0600" \
    --tpmstate "dir=$TOKENS_T/state" --flags not-need-init,startup-clear \
    --pid "file=$TOKENS_T/swtpm.pid" --log "file=$TOKENS_T/swtpm.log" </dev/null >/dev/null 2>>"$TOKENS_T/swtpm.log"
  for i in $(seq 100); do
    pid="$(cat "$TOKENS_T/swtpm.pid" 2>/dev/null || true)"
    if [ -S "$TOKENS_SOCK" ] && [ -S "$TOKENS_SOCK.ctrl" ] && tokens_alive "$pid" "$TOKENS_SOCK" \
      && tokens_tpm2_run tpm2_getcap properties-variable >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  log "tpm2: swtpm did not come up; its log:"
  tail -n 20 "$TOKENS_T/swtpm.log" >&2 || true
  return 1
}

# Flushes transient objects and sessions from the TPM. Without a resource manager, what a killed
# client had loaded stays there, and after two or three such kills the next C_Login fails with
# CKR_GENERAL_ERROR (TPM "out of memory for object contexts"). Call it only while no process is
# using this swtpm: it also flushes a live client's objects.
tokens_tpm2_flush() {
  tokens_tpm2_paths "$1" || return 1
  tokens_quiet tokens_tpm2_run tpm2_flushcontext --transient-object || return 1
  tokens_quiet tokens_tpm2_run tpm2_flushcontext --loaded-session || return 1
  tokens_quiet tokens_tpm2_run tpm2_flushcontext --saved-session
}

tokens_tpm2_print() {
  printf 'MODULE=%s\n' "$(tokens_tpm2_module)"
  printf 'MODULE_ENV=TPM2_PKCS11_TCTI,TPM2_PKCS11_STORE\n'
  printf 'TPM2_PKCS11_TCTI=swtpm:path=%s\n' "$TOKENS_SOCK"
  printf 'TPM2_PKCS11_STORE=%s\n' "$TOKENS_T/store"
  printf 'TPM2TOOLS_TCTI=swtpm:path=%s\n' "$TOKENS_SOCK"
  printf 'SWTPM_PID=%s\n' "$(cat "$TOKENS_T/swtpm.pid")"
}

tokens_tpm2_start() {
  local dir="$1" label="$2" so_pin="$3" user_pin="$4" module
  tokens_tpm2_paths "$dir" || return 1
  module="$(tokens_tpm2_module)" || return 1
  tokens_tpm2_stop "$dir" || return 1
  mkdir -p "$TOKENS_T/state" "$TOKENS_T/store"
  chmod 0700 "$TOKENS_T"
  # Token creation leaves a transient object loaded, hence the flush. A failed start leaves nothing running.
  if ! tokens_tpm2_launch \
    || ! tokens_quiet tokens_tpm2_run pkcs11-tool --module "$module" --slot-index 0 --init-token \
      --label "$label" --so-pin "$so_pin" \
    || ! tokens_quiet tokens_tpm2_run pkcs11-tool --module "$module" --token-label "$label" --login \
      --login-type so --so-pin "$so_pin" --init-pin --pin "$user_pin" \
    || ! tokens_tpm2_flush "$dir"; then
    tokens_tpm2_stop "$dir"
    return 1
  fi
  printf '%s\n' "$label" >"$TOKENS_T/label"
  tokens_tpm2_print
  printf 'TOKEN_LABEL=%s\n' "$label"
}

tokens_tpm2_kill() {
  tokens_tpm2_paths "$1" || return 1
  tokens_kill "$(cat "$TOKENS_T/swtpm.pid" 2>/dev/null || true)" "$TOKENS_SOCK" KILL
  rm -f "$TOKENS_SOCK" "$TOKENS_SOCK.ctrl"
}

# Starts the swtpm again on the state a kill left. A TPM that was not shut down in order after a
# DA-protected use (a login) counts one failed authorisation at start-up, and swtpm locks out after
# 3, so this clears the counter after reporting it (DA_COUNTER_AFTER_RESTART).
tokens_tpm2_resume() {
  local counter
  tokens_tpm2_paths "$1" || return 1
  [ -d "$TOKENS_T/state" ] || { log "tpm2: no state under $TOKENS_T; use start"; return 1; }
  if tokens_alive "$(cat "$TOKENS_T/swtpm.pid" 2>/dev/null || true)" "$TOKENS_SOCK"; then
    log "tpm2: swtpm already running for $TOKENS_T"
  else
    tokens_tpm2_launch || return 1
  fi
  counter="$(tokens_tpm2_run tpm2_getcap properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ {print $2}')"
  tokens_quiet tokens_tpm2_run tpm2_dictionarylockout --clear-lockout || return 1
  tokens_tpm2_print
  printf 'TOKEN_LABEL=%s\n' "$(cat "$TOKENS_T/label" 2>/dev/null || true)"
  printf 'DA_COUNTER_AFTER_RESTART=%d\n' "$counter"
}

tokens_tpm2_restart() {
  tokens_tpm2_kill "$1" && tokens_tpm2_resume "$1"
}

tokens_tpm2_stop() {
  tokens_tpm2_paths "$1" || return 1
  tokens_kill "$(cat "$TOKENS_T/swtpm.pid" 2>/dev/null || true)" "$TOKENS_SOCK" TERM
  rm -rf "$TOKENS_T"
}

# ---------------------------------------------------------------------------------------------
# opencryptoki soft token: one pkcsslotd per machine, STATION_OCK_SLOTS soft-token slots numbered
# from STATION_OCK_FIRST_SLOT, each with its own library copy, tokname and data store. A test
# claims a free slot with `ock start DIR ...` (the claim names DIR; a claim whose DIR is gone is
# stale and reused) and gives it back with `ock stop DIR`.

# Runs "$@" holding the machine-wide ock lock.
tokens_ock_locked() {
  mkdir -p "$TOKENS_RUN/ock"
  (
    flock -w 120 9 || { log "ock: lock busy for 2 minutes"; exit 1; }
    "$@"
  ) 9>"$TOKENS_RUN/ock.lock"
}

tokens_ock_conf_block() {
  local i
  printf '%s\n' "$TOKENS_BEGIN"
  for ((i = 0; i < STATION_OCK_SLOTS; i++)); do
    printf 'slot %d\n{\nstdll = %s/libpkcs11_sw-station%d.so\ntokname = station%d\n' \
      $((STATION_OCK_FIRST_SLOT + i)) "$TOKENS_OCK_LIBDIR" "$i" "$i"
    printf 'description = "station test soft token %d"\n}\n' "$i"
  done
  printf '%s\n' "$TOKENS_END"
}

tokens_ock_conf_without_block() {
  awk -v b="$TOKENS_BEGIN" -v e="$TOKENS_END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' "$TOKENS_OCK_CONF"
}

tokens_ock_daemon_pid() {
  local pid
  pid="$(cat /var/run/pkcsslotd.pid 2>/dev/null || true)"
  tokens_alive "$pid" pkcsslotd && printf '%s\n' "$pid"
}

# Config, library copies, directories and the daemon; idempotent. Call with the lock held.
tokens_ock_setup_locked() {
  local src i copy want changed=0 pid d
  src="$(tokens_find /usr/lib/*/opencryptoki/stdll/libpkcs11_sw.so)" || return 1
  getent group pkcs11 >/dev/null || { log "ock: group pkcs11 is missing (reinstall opencryptoki)"; return 1; }
  mkdir -p "$TOKENS_OCK_LIBDIR"
  for ((i = 0; i < STATION_OCK_SLOTS; i++)); do
    copy="$TOKENS_OCK_LIBDIR/libpkcs11_sw-station$i.so"
    if ! cmp -s "$src" "$copy"; then
      # A new inode, never an overwrite: a running process may have the old copy mapped.
      cp "$src" "$copy.tmp" && mv -f "$copy.tmp" "$copy"
    fi
  done
  # $(...) drops trailing newlines, so the blank line before an existing block does not pile up.
  want="$(tokens_ock_conf_without_block)"$'\n\n'"$(tokens_ock_conf_block)"
  if [ "$want" != "$(cat "$TOKENS_OCK_CONF")" ]; then
    [ -e "$TOKENS_OCK_CONF.station-orig" ] || cp -p "$TOKENS_OCK_CONF" "$TOKENS_OCK_CONF.station-orig"
    printf '%s\n' "$want" >"$TOKENS_OCK_CONF.tmp" && mv -f "$TOKENS_OCK_CONF.tmp" "$TOKENS_OCK_CONF"
    log "ock: wrote $STATION_OCK_SLOTS station slots into $TOKENS_OCK_CONF"
    changed=1
  fi
  # What the package's tmpfiles.d entry makes at boot; a container may not have run it.
  # pkcsslotd creates the token directories, not the lock directory's root.
  for d in /var/lock/opencryptoki "$TOKENS_OCK_DATA"; do
    if [ ! -d "$d" ]; then
      mkdir -p "$d" && chgrp pkcs11 "$d" && chmod 0770 "$d"
    fi
  done
  pid="$(tokens_ock_daemon_pid || true)"
  # A daemon started before the config's last change (by this run or an earlier one) read it old.
  if [ -n "$pid" ] && [ $(($(date +%s) - $(ps -o etimes= -p "$pid"))) -lt "$(stat -c %Y "$TOKENS_OCK_CONF")" ]; then
    changed=1
  fi
  if [ -n "$pid" ] && [ "$changed" -eq 1 ]; then
    # It read the old config. Restart ours; the package's systemd unit (which installing opencryptoki
    # enables and starts) through systemd; anything else is not ours to touch.
    if [ "$(cat "$TOKENS_RUN/pkcsslotd.pid" 2>/dev/null || true)" = "$pid" ]; then
      tokens_kill "$pid" pkcsslotd TERM
      pid=""
    elif systemctl is-active --quiet pkcsslotd 2>/dev/null; then
      log "ock: restarting pkcsslotd.service for the new config"
      systemctl restart pkcsslotd || return 1
      pid="$(tokens_ock_daemon_pid || true)"
      [ -n "$pid" ] || { log "ock: pkcsslotd.service did not come back"; return 1; }
    else
      log "ock: a pkcsslotd this script did not start (pid $pid) runs with the old config; restart it"
      return 1
    fi
  fi
  if [ -z "$pid" ]; then
    tokens_detached pkcsslotd </dev/null >/dev/null 2>&1 || { log "ock: pkcsslotd failed to start"; return 1; }
    for i in $(seq 50); do
      pid="$(tokens_ock_daemon_pid || true)"
      [ -n "$pid" ] && break
      sleep 0.05
    done
    [ -n "$pid" ] || { log "ock: pkcsslotd did not come up"; return 1; }
    printf '%s\n' "$pid" >"$TOKENS_RUN/pkcsslotd.pid"
  fi
}

# Claims a slot for DIR (or the one it already holds) and prints its number.
tokens_ock_claim_locked() {
  local dir="$1" i slot owner
  for ((i = 0; i < STATION_OCK_SLOTS; i++)); do
    slot=$((STATION_OCK_FIRST_SLOT + i))
    owner="$(cat "$TOKENS_RUN/ock/slot-$slot" 2>/dev/null || true)"
    if [ "$owner" = "$dir" ] || [ -z "$owner" ] || [ ! -d "$owner" ]; then
      printf '%s\n' "$dir" >"$TOKENS_RUN/ock/slot-$slot"
      printf '%s\n' "$slot"
      return 0
    fi
  done
  return 1
}

tokens_ock_wipe() {
  local tokdir="$TOKENS_OCK_DATA/station$1"
  rm -f "$tokdir/NVTOK.DAT" "$tokdir/MK_SO" "$tokdir/MK_USER" "$tokdir"/TOK_OBJ/*
}

tokens_ock_start_locked() {
  local dir="$1" label="$2" so_pin="$3" user_pin="$4" module slot
  module="$(tokens_ock_module)" || return 1
  tokens_ock_setup_locked || return 1
  slot="$(tokens_ock_claim_locked "$dir")" || return 3
  printf '%s\n' "$slot" >"$dir/ock.slot"
  if ! tokens_ock_init "$module" "$slot" "$label" "$so_pin" "$user_pin"; then
    tokens_ock_stop_locked "$dir"
    return 1
  fi
  printf 'MODULE=%s\nMODULE_ENV=\nTOKEN_LABEL=%s\nSLOT_ID=%s\nPKCSSLOTD_PID=%s\n' \
    "$module" "$label" "$slot" "$(tokens_ock_daemon_pid)"
}

# A fresh token in SLOT: without its data files the next C_Initialize builds default token data
# (SO PIN 87654321), and C_InitToken then also clears objects other processes may still list.
tokens_ock_init() {
  local module="$1" slot="$2" label="$3" so_pin="$4" user_pin="$5"
  tokens_ock_wipe $((slot - STATION_OCK_FIRST_SLOT))
  tokens_quiet pkcs11-tool --module "$module" --slot "$slot" --init-token --label "$label" \
    --so-pin "$TOKENS_SO_DEFAULT_OCK" || return 1
  if [ "$so_pin" != "$TOKENS_SO_DEFAULT_OCK" ]; then
    tokens_quiet pkcs11-tool --module "$module" --slot "$slot" --login --login-type so \
      --so-pin "$TOKENS_SO_DEFAULT_OCK" --change-pin --new-pin "$so_pin" || return 1
  fi
  tokens_quiet pkcs11-tool --module "$module" --slot "$slot" --login --login-type so --so-pin "$so_pin" \
    --init-pin --pin "$user_pin"
}

tokens_ock_start() {
  local dir label="$2" so_pin="$3" user_pin="$4" p i rc
  # ock soft-token PINs are 4 to 8 characters (C_InitPIN answers CKR_PIN_LEN_RANGE otherwise).
  for p in "$so_pin" "$user_pin"; do
    if [ "${#p}" -lt 4 ] || [ "${#p}" -gt 8 ]; then
      log "ock: PINs must be 4 to 8 characters"
      return 1
    fi
  done
  mkdir -p "$1"
  dir="$(realpath "$1")"
  # All slots claimed (parallel tests): wait for one, up to 2 minutes.
  for i in $(seq 240); do
    rc=0
    tokens_ock_locked tokens_ock_start_locked "$dir" "$label" "$so_pin" "$user_pin" || rc=$?
    [ "$rc" -eq 3 ] || return "$rc"
    [ "$i" -eq 1 ] && log "ock: all $STATION_OCK_SLOTS slots are claimed; waiting for one"
    sleep 0.5
  done
  log "ock: no slot became free"
  return 1
}

tokens_ock_stop_locked() {
  local dir="$1" slot
  slot="$(cat "$dir/ock.slot" 2>/dev/null || true)"
  [ -n "$slot" ] || return 0
  if [ "$(cat "$TOKENS_RUN/ock/slot-$slot" 2>/dev/null || true)" = "$dir" ]; then
    tokens_ock_wipe $((slot - STATION_OCK_FIRST_SLOT))
    rm -f "$TOKENS_RUN/ock/slot-$slot"
  fi
  rm -f "$dir/ock.slot"
}

tokens_ock_stop() {
  [ -d "$1" ] || return 0
  tokens_ock_locked tokens_ock_stop_locked "$(realpath "$1")"
}

tokens_ock_shutdown_locked() {
  local pid claims f slot
  # Release stale claims (their DIR is gone) first.
  for f in "$TOKENS_RUN"/ock/slot-*; do
    [ -e "$f" ] || continue
    if [ ! -d "$(cat "$f")" ]; then
      slot="${f##*/slot-}"
      tokens_ock_wipe $((slot - STATION_OCK_FIRST_SLOT))
      rm -f "$f"
    fi
  done
  claims="$(find "$TOKENS_RUN/ock" -name 'slot-*' 2>/dev/null | wc -l)"
  if [ "$claims" -gt 0 ]; then
    log "ock: $claims slot(s) still claimed; pkcsslotd keeps running"
    return 0
  fi
  pid="$(tokens_ock_daemon_pid || true)"
  if [ -n "$pid" ] && [ "$(cat "$TOKENS_RUN/pkcsslotd.pid" 2>/dev/null || true)" = "$pid" ]; then
    tokens_kill "$pid" pkcsslotd TERM
  fi
  rm -f "$TOKENS_RUN/pkcsslotd.pid"
}

tokens_ock_shutdown() {
  tokens_ock_locked tokens_ock_shutdown_locked
}

tokens_ock_unconfigure_locked() {
  local i
  tokens_ock_shutdown_locked
  rm -f "$TOKENS_RUN"/ock/slot-*
  if grep -qxF "$TOKENS_BEGIN" "$TOKENS_OCK_CONF"; then
    printf '%s\n' "$(tokens_ock_conf_without_block)" >"$TOKENS_OCK_CONF.tmp"
    mv -f "$TOKENS_OCK_CONF.tmp" "$TOKENS_OCK_CONF"
  fi
  if cmp -s "$TOKENS_OCK_CONF" "$TOKENS_OCK_CONF.station-orig"; then
    rm -f "$TOKENS_OCK_CONF.station-orig"
  fi
  for ((i = 0; i < STATION_OCK_SLOTS; i++)); do
    rm -rf "${TOKENS_OCK_DATA:?}/station$i" "/var/lock/opencryptoki/station$i" \
      "/dev/shm/var.lib.opencryptoki.station$i"
  done
  rm -rf "$TOKENS_OCK_LIBDIR" "$TOKENS_RUN"
}

tokens_ock_unconfigure() {
  tokens_ock_locked tokens_ock_unconfigure_locked
}

# ---------------------------------------------------------------------------------------------
# SoftHSM2, for the same interface: DIR/softhsm/{softhsm2.conf, tokens/}.

tokens_softhsm_start() {
  local dir="$1" label="$2" so_pin="$3" user_pin="$4" s module
  module="$(tokens_softhsm_module)" || return 1
  s="$(realpath -m "$dir")/softhsm"
  rm -rf "$s"
  mkdir -p "$s/tokens"
  chmod 0700 "$s"
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$s" >"$s/softhsm2.conf"
  SOFTHSM2_CONF="$s/softhsm2.conf" tokens_quiet softhsm2-util --init-token --free --label "$label" \
    --so-pin "$so_pin" --pin "$user_pin" || return 1
  printf 'MODULE=%s\nMODULE_ENV=SOFTHSM2_CONF\nSOFTHSM2_CONF=%s\nTOKEN_LABEL=%s\n' "$module" "$s/softhsm2.conf" "$label"
}

tokens_softhsm_stop() {
  rm -rf "$(realpath -m "$1")/softhsm"
}

# ---------------------------------------------------------------------------------------------
# NSS softokn: a key database under DIR/nss whose password is the user PIN. The module needs C_Initialize
# arguments (pReserved) naming the database, printed as INIT_ARGS.

tokens_nss_start() {
  local dir="$1" user_pin="$4" n module
  module="$(tokens_nss_module)" || return 1
  n="$(realpath -m "$dir")/nss"
  rm -rf "$n"
  mkdir -p "$n/db"
  chmod 0700 "$n"
  printf '%s\n' "$user_pin" >"$n/pw"
  tokens_quiet certutil -N -d "sql:$n/db" -f "$n/pw" || { rm -f "$n/pw"; return 1; }
  rm -f "$n/pw"
  printf 'MODULE=%s\nMODULE_ENV=\nTOKEN_LABEL=NSS Certificate DB\n' "$module"
  printf "INIT_ARGS=configdir='sql:%s/db' certPrefix='' keyPrefix='' secmod='secmod.db' flags=\n" "$n"
}

tokens_nss_stop() {
  rm -rf "$(realpath -m "$1")/nss"
}

# ---------------------------------------------------------------------------------------------

tokens_usage() {
  sed -n '2,/^$/ s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  return 2
}

tokens_main() {
  local kind="${1:-}" verb="${2:-}"
  case "$kind" in
    ensure) tokens_ensure; return ;;
    tpm2 | ock | softhsm | nss) ;;
    *) tokens_usage; return ;;
  esac
  shift 2 || { tokens_usage; return; }
  case "$kind $verb $#" in
    "tpm2 start 4" | "ock start 4" | "softhsm start 4" | "nss start 4") ;;
    "tpm2 kill 1" | "tpm2 resume 1" | "tpm2 restart 1" | "tpm2 flush 1" | "tpm2 stop 1") ;;
    "ock stop 1" | "softhsm stop 1" | "nss stop 1" | "ock shutdown 0" | "ock unconfigure 0") ;;
    *) tokens_usage; return ;;
  esac
  if [ "$(id -u)" -ne 0 ] && [ "$kind" = ock ]; then
    log "ock: needs root (machine-wide daemon and config)"
    return 1
  fi
  "tokens_${kind}_${verb}" "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  tokens_main "$@"
fi
