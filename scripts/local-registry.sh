#!/usr/bin/env bash
# A throwaway OCI registry for trying imagegate: Debian's docker-registry (distribution 2.8) on 127.0.0.1, plain
# HTTP, no auth, data under ./imagegate-demo/registry. Never the package's own config, which listens on every
# interface (and whose htpasswd path is a directory).
#
#   scripts/local-registry.sh start [PORT]   # default 5000; prints HOST:PORT
#   scripts/local-registry.sh stop
#
# Install the registry once with: sudo apt-get install docker-registry
set -euo pipefail

dir="${IMAGEGATE_DEMO_DIR:-imagegate-demo}/registry"
pidfile="$dir/registry.pid"

case "${1:-}" in
  start)
    port="${2:-5000}"
    bin="$(command -v docker-registry || true)"
    if [[ -z "$bin" ]]; then
      echo "local-registry: docker-registry is not installed; run: sudo apt-get install docker-registry" >&2
      exit 1
    fi
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "local-registry: already running (pid $(cat "$pidfile")); stop it with: $0 stop" >&2
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
    # REGISTRY_* variables would override the config; the config is the whole truth.
    env -u REGISTRY_HTTP_ADDR nohup "$bin" serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port"
        exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.1
    done
    echo "local-registry: the registry did not start; its log:" >&2
    cat "$dir/registry.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$pidfile" ]]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
