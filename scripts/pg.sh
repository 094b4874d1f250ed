#!/usr/bin/env bash
# A throwaway PostgreSQL server for the fleet registry's tests and benchmarks. Runnable, or sourceable for its
# functions (pg_*).
#
#   pg.sh ensure                          install Debian's postgresql (idempotent)
#   pg.sh start DIR [PASSWORD] [--tls]    initdb in DIR/pg (owned by postgres, 0700), start it on a free loopback
#                                         port; role `station` with PASSWORD (default: a random one), database
#                                         `fleet`. Idempotent: a server already running in DIR is reused.
#   pg.sh stop  DIR                       fast shutdown (waits), keeps DIR/pg
#   pg.sh kill  DIR                       SIGKILL the postmaster (fault tests), keeps DIR/pg
#   pg.sh resume DIR                      start the stopped server again on the same port
#   pg.sh psql  DIR [psql args...]        psql as the superuser, over the server's Unix socket
#   pg.sh destroy DIR                     stop, then remove DIR/pg
#
# `start` and `resume` print KEY=VALUE lines on stdout, nothing else (logs go to stderr):
#   PGHOST=127.0.0.1  PGPORT=<port>  PGDATABASE=fleet  PGUSER=station  PGPASSWORD=<password>
#   REGISTRY_URL=host=127.0.0.1 port=<port> user=station dbname=fleet sslmode=disable|require
#   PG_SOCKET_DIR=<DIR/pg/run>  PG_DATA=<DIR/pg/data>  and with --tls PG_CA=<DIR/pg/ca.pem>
#
# initdb and postgres refuse to run as root: as root they run as the `postgres` user (runuser), which must be
# able to reach DIR (a temp folder under /tmp is; the script makes DIR/pg, owned by postgres). The server
# listens on 127.0.0.1 only, with scram-sha-256 for TCP and trust on its own socket (the superuser's psql).
# The password reaches the server through a 0600 file fed to psql on stdin, never on a command line.

declare -F log >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_APT_PACKAGES=(postgresql postgresql-contrib)

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { printf '%s\n' "$d"; return 0; }
  done
  log "PostgreSQL is not installed (run: scripts/pg.sh ensure)"
  return 1
}

pg_ensure() {
  ensure_packages "${PG_APT_PACKAGES[@]}"
  # Debian's package starts a cluster of its own on port 5432; the tests never use it.
}

# Runs a command as the server's owner.
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A free TCP port on 127.0.0.1.
pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_root() { printf '%s/pg\n' "$(cd "$1" && pwd)"; }

pg_running() {
  local bin root
  bin="$(pg_bin)" || return 1
  root="$(pg_root "$1")"
  [ -f "$root/data/postmaster.pid" ] && pg_as "$bin/pg_ctl" -D "$root/data" status >/dev/null 2>&1
}

pg_print() {
  local root="$1" port sslmode=disable
  port="$(cat "$root/port")"
  [ -f "$root/ca.pem" ] && sslmode=require
  printf 'PGHOST=127.0.0.1\nPGPORT=%s\nPGDATABASE=fleet\nPGUSER=station\nPGPASSWORD=%s\n' "$port" "$(cat "$root/password")"
  printf 'REGISTRY_URL=host=127.0.0.1 port=%s user=station dbname=fleet sslmode=%s\n' "$port" "$sslmode"
  printf 'PG_SOCKET_DIR=%s/run\nPG_DATA=%s/data\n' "$root" "$root"
  [ -f "$root/ca.pem" ] && printf 'PG_CA=%s/ca.pem\n' "$root"
  return 0
}

# A CA and a server certificate for 127.0.0.1/localhost, made with openssl.
pg_make_tls() {
  local root="$1"
  (
    cd "$root" || exit 1
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 \
      -subj "/CN=registry test CA" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
        -subj "/CN=127.0.0.1" >/dev/null 2>&1 &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext \
        -out server.pem >/dev/null 2>&1
  ) || { log "cannot make the test TLS certificates"; return 1; }
  chmod 0644 "$root/ca.pem"
  chown postgres: "$root/server.key" "$root/server.pem" 2>/dev/null || true
}

pg_start() {
  local dir="$1" password="${2:-}" tls="${3:-}" bin root port
  [ -n "$dir" ] || { log "usage: pg.sh start DIR [PASSWORD] [--tls]"; return 2; }
  [ "$password" = "--tls" ] && { tls=--tls; password=""; }
  bin="$(pg_bin)" || return 1
  mkdir -p "$dir"
  root="$(pg_root "$dir")"
  if pg_running "$dir"; then
    pg_print "$root"
    return 0
  fi
  if [ ! -f "$root/data/PG_VERSION" ]; then
    mkdir -p "$root/run"
    [ -n "$password" ] || password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    (umask 077 && printf '%s' "$password" >"$root/password")
    [ "$tls" = "--tls" ] && { pg_make_tls "$root" || return 1; }
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$root" "$root/run" "$root/password"
      chmod 0755 "$dir" 2>/dev/null || true
    fi
    chmod 0700 "$root"
    pg_as "$bin/initdb" -D "$root/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null ||
      { log "initdb failed in $root/data"; return 1; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$root/run'"
      echo "max_connections = 200"
      echo "shared_buffers = 64MB"
      echo "password_encryption = scram-sha-256"
      echo "log_min_messages = warning"
      if [ "$tls" = "--tls" ]; then
        echo "ssl = on"
        echo "ssl_cert_file = '$root/server.pem'"
        echo "ssl_key_file = '$root/server.key'"
      fi
    } | pg_as tee -a "$root/data/postgresql.conf" >/dev/null
    {
      echo "local all postgres trust"
      if [ "$tls" = "--tls" ]; then
        echo "hostssl all all 127.0.0.1/32 scram-sha-256"
      else
        echo "host all all 127.0.0.1/32 scram-sha-256"
      fi
    } | pg_as tee "$root/data/pg_hba.conf" >/dev/null
    pg_free_port >"$root/port"
  fi
  port="$(cat "$root/port")"
  pg_as "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -o "-p $port" -w -t 60 start >/dev/null || {
    log "PostgreSQL did not start (port $port):"
    tail -20 "$root/server.log" >&2
    return 1
  }
  if [ ! -f "$root/initialised" ]; then
    # The role's password goes in through stdin (psql's \set from a file), never on a command line.
    {
      printf '\\set pw `cat %q`\n' "$root/password"
      echo "CREATE ROLE station LOGIN PASSWORD :'pw';"
      echo "CREATE DATABASE fleet OWNER station;"
    } | pg_as "$bin/psql" -h "$root/run" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >/dev/null ||
      { log "cannot create the role and database"; return 1; }
    touch "$root/initialised"
  fi
  pg_print "$root"
}

pg_stop() {
  local bin root
  bin="$(pg_bin)" || return 1
  root="$(pg_root "$1")"
  [ -f "$root/data/postmaster.pid" ] || return 0
  pg_as "$bin/pg_ctl" -D "$root/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

pg_kill() {
  local root pid
  root="$(pg_root "$1")"
  [ -f "$root/data/postmaster.pid" ] || return 0
  pid="$(head -1 "$root/data/postmaster.pid")"
  # The whole server at once, as a power cut would: the postmaster and each of its processes, by id.
  local children c
  children="$(ps -o pid= --ppid "$pid" 2>/dev/null || true)"
  kill -KILL "$pid" 2>/dev/null || true
  for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  for c in $children; do while kill -0 "$c" 2>/dev/null; do sleep 0.05; done; done
  # The next start recovers from the WAL.
}

pg_psql() {
  local dir="$1" bin root
  shift
  bin="$(pg_bin)" || return 1
  root="$(pg_root "$dir")"
  pg_as "$bin/psql" -h "$root/run" -p "$(cat "$root/port")" -U postgres -d fleet -X -q -v ON_ERROR_STOP=1 "$@"
}

pg_destroy() {
  local root
  root="$(pg_root "$1")"
  pg_stop "$1"
  rm -rf "$root"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cmd="${1:-}"
  shift || true
  case "$cmd" in
  ensure) pg_ensure ;;
  start) pg_start "$@" ;;
  resume) pg_start "$1" ;;
  stop) pg_stop "$1" ;;
  kill) pg_kill "$1" ;;
  psql) pg_psql "$@" ;;
  destroy) pg_destroy "$1" ;;
  *)
    log "usage: pg.sh ensure | start DIR [PASSWORD] [--tls] | stop DIR | kill DIR | resume DIR | psql DIR [ARGS] | destroy DIR"
    exit 2
    ;;
  esac
fi
