#!/usr/bin/env bash
# Prepares this machine for `npm test`, so that no test is skipped for want of a tool: Go (checked first: the test
# tools are built from Go modules), the Debian packages the tests run, Node 24 when the machine's Node is older,
# node_modules when it does not match package-lock.json, and the tools built from Go modules into
# ~/.cache/imagegate (OpenBao, skopeo 1.19, helm/kubeconform/actionlint, Kubernetes, containerd 2, promtool; about
# 30 minutes cold, instant once cached).
# .ci/run runs this, then `npm test`. Run it from anywhere; it works in the repository's root.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "prepare-tests: $*" >&2; }

# Go before anything else: without it the builds below fail after the apt and Node steps took their time.
go="$(scripts/check-go.sh)"
PATH="$(dirname "$go"):$PATH"

missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v containerd >/dev/null || missing+=(containerd)
command -v buildah >/dev/null || missing+=(buildah)
[ -x /usr/bin/time ] || missing+=(time)
command -v npm >/dev/null || missing+=(npm)
# Debian's own Node (older than the CLI needs): node-version.test.ts checks the CLI refuses it clearly.
[ -x /usr/bin/node ] || missing+=(nodejs)
# The one-node test cluster (test/infra/cluster.sh): runc and CNI plugins for containerd, and the tools its scripts use.
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v pgrep >/dev/null || missing+=(procps)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "as root, run: apt-get install ${missing[*]}; then run this again"; exit 1; }
    sudo=(sudo)
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Node 24 from the npm registry when the machine's Node is older than 22.19.
node_dir="$(scripts/node24.sh)"
path_node_dir="$(dirname "$(command -v node || echo /none/node)")"
PATH="$node_dir:$PATH"
export PATH
# node_modules as package-lock.json says, unless npm installed exactly that already (it records what it installed in
# node_modules/.package-lock.json, written after package-lock.json).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
say "go $("$go" env GOVERSION), node $(node --version), skopeo $(skopeo --version | awk '{print $3}'), umoci $(umoci --version | awk '{print $3}')"

# The OpenBao dev server for the integration tests, built from its Go module up front and cached outside the repo
# (minutes when cold, instant once cached); a failed build fails the run.
test/infra/build-openbao.sh >/dev/null
# A current skopeo (ocicrypt >= 1.1, with key providers) as the peer for `imagegate keyprovider`; Debian's is too old.
test/infra/build-ocicrypt-peer.sh >/dev/null
# helm, kubeconform, actionlint and the Kubernetes/CRD schema sources for the chart and workflow tests (cached).
test/infra/build-deploy-tools.sh >/dev/null
# kube-apiserver, kubelet, kubectl, etcd, crictl, imgcrypt's ctd-decoder and ctr-enc and the pause image for the
# one-node test cluster (test/infra/cluster.sh), from Go modules, cached outside the repo (about 13 minutes cold).
test/infra/build-kubernetes.sh >/dev/null
# containerd 2.4.2 (containerd, ctr, the runc shim) from its Go module, for the node model on containerd 2.x
# (test/integration/containerd2.test.ts), cached outside the repo (about 1.5 minutes cold).
test/infra/build-containerd2.sh >/dev/null
# promtool (Prometheus v3.16) from its Go module, for checking deploy/monitoring's alerting rules, cached outside the repo.
test/infra/build-promtool.sh >/dev/null

if [ "$node_dir" = "$path_node_dir" ]; then
  say "ready: every tool the tests use is there; run them with: npm test"
else
  say "ready: every tool the tests use is there; run them with Node 24 on PATH:"
  say "  export PATH=\"\$(scripts/node24.sh):\$PATH\"; npm test"
fi
