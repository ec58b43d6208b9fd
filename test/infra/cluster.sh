#!/usr/bin/env bash
# A real one-node Kubernetes cluster for imagegate's tests and for trying the gate by hand, all on 127.0.0.1 and unix
# sockets under one directory:
#   etcd, kube-apiserver, kubelet, kubectl   built by build-kubernetes.sh from Go modules (cached)
#   containerd (Debian 1.6) with CRI, runc, the bridge CNI (containernetworking-plugins, no gateway, no masquerade)
#     and imagegate's node model: deploy/runtime/containerd/config-v2.toml, ctd-decoder, `imagegate keyprovider`
#     (the repo's dist/ on Node 24) logged in to OpenBao as the node's AppRole
#   OpenBao (dev server, build-openbao.sh), set up by `imagegate vault setup`: a derived Transit key, JWT auth with
#     the API server's service-account key for the workload, an AppRole for the node
#   docker-registry twice: TLS with its own CA, and plain HTTP
#   the admission webhook: `imagegate webhook serve` on the host, with the policy and the webhook configurations the
#     Helm chart renders (deploy/helm/imagegate; clientConfig turned into a URL, as there is no Service network)
# There is no controller manager, scheduler or kube-proxy: the namespaces' default ServiceAccount and kube-root-ca.crt
# are created here, pods carry nodeName, pods that must reach 127.0.0.1 use hostNetwork.
#
#   cluster.sh up DIR      start it all; writes DIR/cluster.env (KEY=VALUE lines, the end of cluster/up.sh) and leaves
#                          it running. Refuses when a kubelet already runs on this machine (the kubelet uses fixed
#                          host paths such as /var/lib/kubelet/device-plugins: one per machine).
#   cluster.sh down DIR    stop everything `up` started (pid files under DIR/run), undo what the kubelet and CNI did
#                          on the host, and remove DIR except DIR/logs.
#   cluster.sh status DIR  the processes and their memory (RSS).
#
# Nothing on the host changes outside DIR for good: no iptables rules (the kubelet runs without /usr/sbin on PATH,
# the bridge neither masquerades nor routes), no forwarding; the sysctls the kubelet sets are restored by `down`; the
# bridge, netns entries, CNI result files and the kubelet's fixed paths it leaves are removed by `down`.
# Needs root, containerd, runc, containernetworking-plugins, docker-registry, openssl, curl, jq, and `npm run build`;
# builds (or finds cached) what build-kubernetes.sh, build-openbao.sh and build-deploy-tools.sh (helm) make.
# IMAGEGATE_CLUSTER_KEYS_DIR=off: ctd-decoder without --decryption-keys-path (default on, as shipped).
# IMAGEGATE_CLUSTER_CHECK_IMAGE=IMAGE@DIGEST: the webhook injects imagegate's init containers running that image
#   (`init --check` in the node model, `init --unpack` in the pod model), trusting the TLS registry's CA
#   (--check-registry-ca) and, as the policy's insecureRegistries says, the plain-HTTP registry.
# IMAGEGATE_CLUSTER_CHECK_LAYOUT=DIR:TAG: the same with imagegate's image from an OCI layout (scripts/build-image.sh),
#   pushed to the TLS registry as REGISTRY/imagegate/imagegate:TAG and injected by digest. Needs skopeo.
# IMAGEGATE_CLUSTER_RUNTIME_MODEL=node|pod: the policy's runtimeModel (default node).
# IMAGEGATE_CLUSTER_CONTAINERD=1|2: Debian's containerd 1.6 with deploy/runtime/containerd/config-v2.toml appended to
#   cluster/containerd-config.toml (default 1), or containerd 2.4.2 (build-containerd2.sh, built if missing) reading
#   cluster/containerd-config-v3.toml, which imports deploy/runtime/containerd/config-v3.toml as a conf.d drop-in.
#   Either way with ctd-decoder and `imagegate keyprovider` as deploy/runtime registers them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
templates="$here/cluster"
say() { echo "cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# Fixed names: one cluster per machine (the kubelet's rule), so fixed is unambiguous.
NODE=localhost                  # the kubelet's node name (resolves to 127.0.0.1: `kubectl logs` reaches it)
NAMESPACE=imagegate-demo        # the workload's namespace
SERVICE_ACCOUNT=app             # allowed to run KEY's images
OTHER_SERVICE_ACCOUNT=intruder  # in NAMESPACE, allowed nothing
POLICY_ONLY_SERVICE_ACCOUNT=unvaulted # in NAMESPACE, admitted by the policy, but OpenBao's role does not take it
KEY_NAME=cluster-layers         # transit/KEY_NAME
CNI_BRIDGE=igcluster0
CNI_NETWORK=imagegate-cluster
PAUSE_IMAGE=localhost/imagegate/pause:1
SA_ISSUER=https://kubernetes.default.svc.cluster.local
# Host paths the kubelet, containerd or CNI create whatever their configuration says; `down` removes what `up` created.
HOST_DIRS=(/var/lib/kubelet /var/log/containers /var/log/pods /run/netns /var/lib/cni /run/containerd)
# The sysctls the kubelet sets at start (setupKernelTunables); `down` puts the values `up` found back.
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys
  kernel/keys/root_maxbytes)
# Started by `up`, in order; stopped by `down` in reverse.
DAEMONS=(etcd kube-apiserver openbao registry registry-plain containerd kubelet webhook)

usage() {
  echo "usage: $0 up DIR | down DIR | status DIR" >&2
  exit 2
}

# --- processes --------------------------------------------------------------------------------------------------

# Every daemon runs in its own session (setsid: it outlives `up`, and a terminal's ^C does not reach it), with its
# working directory in DIR (how `down` knows a pid is still ours), stdio on DIR/logs/NAME.log.
start_daemon() { # NAME WORKDIR COMMAND...
  local name="$1" workdir="$2"
  shift 2
  mkdir -p "$workdir"
  (cd "$workdir" && exec setsid "$@" </dev/null >"$dir/logs/$name.log" 2>&1) &
  echo $! >"$dir/run/$name.pid"
}

# The pid in DIR/run/NAME.pid when that process still runs with its working directory in DIR.
our_pid() { # NAME
  local file="$dir/run/$1.pid" pid cwd
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 1
  [[ "$cwd" == "$dir" || "$cwd" == "$dir/"* ]] || return 1
  echo "$pid"
}

# Whether PID still runs: exited daemons are nobody's children once `up` has returned, so they may linger as zombies
# until the init process reaps them, and `kill -0` succeeds on a zombie.
running() { # PID
  local state
  state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

stop_daemon() { # NAME
  local pid
  if pid="$(our_pid "$1")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      running "$pid" || break
      sleep 0.1
    done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$dir/run/$1.pid"
}

# Polls CHECK (a command) every 0.1 s until it succeeds; fails with the daemon's log tail when the daemon died or
# the time ran out.
wait_for() { # NAME WHAT SECONDS CHECK...
  local name="$1" what="$2" seconds="$3"
  shift 3
  local tries=$((seconds * 10))
  for _ in $(seq "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    if ! our_pid "$name" >/dev/null; then
      say "$name exited before $what; the end of $dir/logs/$name.log:"
      tail -n 30 "$dir/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  say "$name: no $what within $seconds s; the end of $dir/logs/$name.log:"
  tail -n 30 "$dir/logs/$name.log" >&2 || true
  return 1
}

# --- files ------------------------------------------------------------------------------------------------------

# Copies TEMPLATE to OUT with every @NAME@ replaced by the exported variable NAME (a missing one is an error).
render() { # TEMPLATE OUT
  awk '{
    while (match($0, /@[A-Z][A-Z0-9_]*@/)) {
      name = substr($0, RSTART + 1, RLENGTH - 2)
      if (!(name in ENVIRON)) { print "cluster: " FILENAME " uses @" name "@, which is not set" > "/dev/stderr"; exit 1 }
      $0 = substr($0, 1, RSTART - 1) ENVIRON[name] substr($0, RSTART + RLENGTH)
    }
    print
  }' "$1" >"$2"
}

json_string() { jq -Rs . <"$1"; }

# N ports free on 127.0.0.1 a moment ago, all distinct (held open together, then released).
free_ports() { # N
  "$node" -e '
    const net = require("node:net");
    const count = Number(process.argv[1]);
    const servers = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      server.listen(0, "127.0.0.1", () => {
        servers.push(server);
        if (servers.length === count) {
          console.log(servers.map((s) => s.address().port).join(" "));
          for (const s of servers) s.close();
        }
      });
    }' "$1"
}

case "${1:-}" in
up | down | status) ;;
*) usage ;;
esac
[[ $# -eq 2 && -n "$2" ]] || usage
command="$1"
dir="$(realpath -m "$2")"
[[ "$dir" != / ]] || die "DIR must not be /"

# shellcheck source=cluster/up.sh
# shellcheck source=cluster/down.sh
case "$command" in
up) source "$templates/up.sh" ;;
down) source "$templates/down.sh" ;;
status) source "$templates/status.sh" ;;
esac
