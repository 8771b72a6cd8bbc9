#!/usr/bin/env bash
# Boots systemd as PID 1 of a new PID and mount namespace whose /etc, /usr, /var and /tmp are
# overlays on the host's (their changes live in a tmpfs and vanish with it; /tmp too, as systemd
# empties it at boot), so that a test can install a .deb and start its units there for real
# without touching the machine. It boots to basic.target: no other service of the machine
# starts (they would share its network).
#   deb_systemd.sh boot PIDFILE DIR boots it with DIR seen inside as /mnt/stage (read-only; /tmp
#                                   is no place for what a test hands in: systemd empties it);
#                                   writes the host pid of its systemd to PIDFILE and returns
#                                   once the system has started (or fails after 90 s)
#   deb_systemd.sh run PIDFILE CMD  runs CMD (with sh -c) inside it
#   deb_systemd.sh stop PIDFILE     ends it and everything in it
set -euo pipefail
cmd=$1 pidfile=$2
case $cmd in
boot)
  [ "$(id -u)" = 0 ] || { echo "deb_systemd: needs root (unshare, mount)" >&2; exit 1; }
  log=${pidfile%.pid}.log
  stage=$(cd "$3" && pwd)
  # The overlays, then systemd as PID 1 of the namespace.
  setsid unshare --pid --fork --mount --propagation private --mount-proc sh -c '
    set -e
    stage=$1
    mount -t tmpfs tmpfs /mnt
    mkdir /mnt/stage
    mount --bind -o ro "$stage" /mnt/stage
    for d in etc usr var tmp; do
      mkdir -p /mnt/$d-up /mnt/$d-work
      mount -t overlay overlay -o lowerdir=/$d,upperdir=/mnt/$d-up,workdir=/mnt/$d-work /$d
    done
    mount -t tmpfs tmpfs /run
    exec /lib/systemd/systemd --system --unit=basic.target --log-target=console --show-status=no
  ' sh "$stage" >"$log" 2>&1 </dev/null &
  outer=$!
  for _ in $(seq 1 100); do
    pid=$(pgrep -P "$outer" -x systemd || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "${pid:-}" ] || { echo "deb_systemd: systemd did not start; its log:" >&2; cat "$log" >&2; exit 1; }
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 300); do
    nsenter -t "$pid" -m -p test -S /run/systemd/private && break
    sleep 0.1
  done
  state=$(timeout 90 nsenter -t "$pid" -m -p systemctl is-system-running --wait 2>&1 || true)
  case $state in
    running|degraded) ;;
    *) echo "deb_systemd: the system did not start: '$state'; its log:" >&2; tail -30 "$log" >&2; exit 1 ;;
  esac
  ;;
run)
  exec nsenter -t "$(cat "$pidfile")" -m -p sh -c "$3"
  ;;
stop)
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  ;;
*) echo "deb_systemd: unknown command $cmd" >&2; exit 2 ;;
esac
