#!/usr/bin/env bash
# A Docker Engine for the project's images, never someone else's daemon reconfigured or stopped.
#
#   scripts/docker-engine.sh up     print DOCKER_HOST=<uri> of a daemon that answers: $DOCKER_HOST's, else the
#                                   default socket's, else the project's private daemon (started if needed, after
#                                   installing Debian's docker.io as root when no dockerd exists)
#   scripts/docker-engine.sh down   stop the project's private daemon (no other); a no-op when none runs
#   scripts/docker-engine.sh run CMD...   `up`, CMD with DOCKER_HOST exported, then `down` if `up` started it
#
# The private daemon keeps everything under $MLCYCLE_CACHE/docker (default ~/.cache/mlcycle/docker): data root
# (images and build cache, kept between runs), exec root, pid file, log and socket. It runs with --iptables=false
# --ip-forward=false and --bridge=none: it adds no firewall rules, no bridge and changes no sysctl; containers use
# --network host.
# Progress goes to stderr; stdout carries only the DOCKER_HOST line (up) or CMD's output (run).
set -euo pipefail

ROOT="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/docker"
SOCK="$ROOT/docker.sock"
PIDFILE="$ROOT/dockerd.pid"
LOG="$ROOT/dockerd.log"
say() { echo "docker-engine [$(date +%H:%M:%S)]: $*" >&2; }

# A client for the API: the docker CLI on PATH (any version negotiates the daemon's API).
answers() { DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The pid of the project's dockerd: the one in the pid file, if that process is a dockerd serving our socket.
private_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" && -d "/proc/$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "dockerd" \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "unix://$SOCK" && echo "$pid"
}

install_engine() {
  if command -v dockerd >/dev/null 2>&1; then return 0; fi
  if [[ "$(id -u)" != 0 ]]; then
    say "no Docker daemon answers and dockerd is not installed; install Docker Engine (or Debian's docker.io), or set DOCKER_HOST"
    exit 1
  fi
  say "installing Debian's docker.io (first time only, ~1 min)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # The package would start the system's docker service (its own bridge, iptables rules, ip_forward): a policy-rc.d
  # that refuses (101) keeps it stopped while it installs; the project starts its own daemon instead.
  local policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2 || { [[ -z "$policy" ]] || rm -f "$policy"; exit 1; }
  [[ -z "$policy" ]] || rm -f "$policy"
  if ! command -v docker >/dev/null 2>&1; then say "docker.io installed no docker CLI"; exit 1; fi
}

# dockerd leaves mounts under its roots when it stops (its exec root's netns/default, an nsfs bind mount):
# unmount whatever remains below ours, deepest first.
unmount_leftovers() {
  local m
  awk -v root="$ROOT/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

start_private() {
  install_engine
  mkdir -p "$ROOT/data" "$ROOT/exec"
  # a crashed run's leftovers: a stale pid file or socket, mounts
  rm -f "$PIDFILE" "$SOCK"
  unmount_leftovers
  say "starting a private dockerd (data root $ROOT/data, socket $SOCK)"
  # setsid: its own session, so make's or pytest's signals reach it only through `down`
  setsid dockerd --data-root "$ROOT/data" --exec-root "$ROOT/exec" --pidfile "$PIDFILE" -H "unix://$SOCK" \
    --iptables=false --ip-masq=false --ip-forward=false --bridge=none --userland-proxy=false --log-level=warn \
    </dev/null >"$LOG" 2>&1 9>&- &  # 9>&-: the daemon must not inherit (and hold) the lock
  local pid=$! deadline=$((SECONDS + 60))
  until answers "unix://$SOCK"; do
    if ((SECONDS > deadline)) || [[ ! -d "/proc/$pid" ]]; then
      say "dockerd did not answer within 60 s; its log: $LOG"; tail -20 "$LOG" >&2
      kill -TERM "$pid" 2>/dev/null || true  # never leave a half-started daemon behind
      exit 1
    fi
    sleep 0.3
  done
  say "private dockerd $(DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}') up"
}

up() {
  # 1. the user's own daemon, as named or at the default socket
  if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != "unix://$SOCK" ]] && answers "$DOCKER_HOST"; then
    say "using the daemon at DOCKER_HOST=$DOCKER_HOST"; echo "DOCKER_HOST=$DOCKER_HOST"; return 0
  fi
  if [[ -S /var/run/docker.sock ]] && answers unix:///var/run/docker.sock; then
    say "using the daemon at /var/run/docker.sock"; echo "DOCKER_HOST=unix:///var/run/docker.sock"; return 0
  fi
  # 2. the project's private daemon, running or started now
  if private_pid >/dev/null && answers "unix://$SOCK"; then
    say "using the project's private dockerd (already running)"
  else
    start_private
  fi
  echo "DOCKER_HOST=unix://$SOCK"
}

down() {
  local pid
  pid="$(private_pid)" || { rm -f "$PIDFILE"; return 0; }
  say "stopping the private dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while [[ -d "/proc/$pid" ]]; do
    if ((SECONDS > deadline)); then say "dockerd ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.2
  done
  # its containerd (a child dockerd started) normally goes with it; a leftover one, by its own pid file
  local cpid
  cpid="$(cat "$ROOT/exec/containerd/containerd.pid" 2>/dev/null || true)"
  if [[ -n "$cpid" && -d "/proc/$cpid" ]] && grep -qF "$ROOT/exec" "/proc/$cpid/cmdline" 2>/dev/null; then
    kill -TERM "$cpid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$SOCK"
  unmount_leftovers
}

# One `up`/`down` at a time (two makes starting the same private daemon would race on its data root).
lock() { mkdir -p "$ROOT"; exec 9>"$ROOT/engine.lock"; flock 9; }
unlock() { flock -u 9; }

case "${1:-}" in
  up) lock; up ;;
  down) lock; down ;;
  run)
    shift
    lock
    started=0
    private_pid >/dev/null || started=1
    line="$(up)"
    export "${line?}"
    [[ "$DOCKER_HOST" == "unix://$SOCK" ]] || started=0
    unlock
    # stopped however CMD ends (a failure, Ctrl-C, SIGTERM), if this call started it
    if ((started)); then trap 'lock; down' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; fi
    rc=0
    "$@" || rc=$?
    exit "$rc"
    ;;
  *) echo "usage: $0 up|down|run CMD..." >&2; exit 2 ;;
esac
