#!/usr/bin/env bash
# A throwaway OCI registry for trying imagegate: Debian's docker-registry (distribution 2.8) on 127.0.0.1, plain
# HTTP, no auth, data under ./imagegate-try-it/registry (IMAGEGATE_REGISTRY_DIR names another directory). Never the
# package's own config, which listens on every interface (and whose htpasswd path is a directory).
#
#   scripts/local-registry.sh start [PORT]   # default 5000; prints HOST:PORT once this registry serves it
#   scripts/local-registry.sh stop           # returns once the registry has exited and its port is free
#
# Install the registry once with: sudo apt-get install docker-registry
set -euo pipefail

dir="${IMAGEGATE_REGISTRY_DIR:-imagegate-try-it/registry}"
pidfile="$dir/registry.pid"

# True when something accepts connections on 127.0.0.1:PORT.
port_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when process PID holds the socket listening on 127.0.0.1:PORT. A successful connect alone proves nothing:
# when the port was taken, our registry exits with "address already in use" while the other listener answers.
# (Linux /proc, so neither ss nor lsof is needed.)
holds_listener() {
  local port="$1" pid="$2" inode
  inode="$(awk -v local_addr="$(printf '0100007F:%04X' "$port")" \
    '$2 == local_addr && $4 == "0A" { print $10; exit }' /proc/net/tcp)"
  [[ -n "$inode" ]] && find "/proc/$pid/fd" -lname "socket:\[$inode\]" 2>/dev/null | grep -q .
}

case "${1:-}" in
  start)
    port="${2:-5000}"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
      echo "local-registry: '$port' is not a port number; usage: $0 start [PORT]" >&2
      exit 2
    fi
    bin="$(command -v docker-registry || true)"
    if [[ -z "$bin" ]]; then
      echo "local-registry: docker-registry is not installed; run: sudo apt-get install docker-registry" >&2
      exit 1
    fi
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "local-registry: already running (pid $(cat "$pidfile")); stop it with: $0 stop" >&2
      exit 1
    fi
    if port_answers "$port"; then
      echo "local-registry: 127.0.0.1:$port is already in use by another process (a registry or webhook from an" \
        "earlier run?); stop it, or pick another port: $0 start PORT" >&2
      exit 1
    fi
    mkdir -p "$dir/data"
    cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $(cd "$dir/data" && pwd)
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
    # REGISTRY_* variables would override the config; the config is the whole truth. env and nohup exec, so $! is
    # the registry itself.
    env -u REGISTRY_HTTP_ADDR nohup "$bin" serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    pid=$!
    echo "$pid" > "$pidfile"
    for _ in $(seq 100); do
      if holds_listener "$port" "$pid"; then
        echo "127.0.0.1:$port"
        exit 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "local-registry: the registry did not start on 127.0.0.1:$port; its log ($dir/registry.log):" >&2
    cat "$dir/registry.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$pidfile" ]]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      # Wait for it to exit, so that a `start` right after finds the port free.
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
