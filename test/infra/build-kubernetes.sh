#!/usr/bin/env bash
# Builds what imagegate's one-node test cluster (test/infra/cluster.sh) runs, from Go modules, and prints the bin
# directory on stdout (progress goes to stderr):
#   kube-apiserver, kubelet, kubectl, etcd   through the wrapper module test/infra/kubernetes (its `tool` entries)
#   crictl                                    sigs.k8s.io/cri-tools (teardown of sandboxes the kubelet left)
#   ctd-decoder, ctr-enc                      github.com/containerd/imgcrypt (containerd's stream processor and its
#                                             encrypting ctr, installed as ctr-enc beside Debian's ctr)
#   pause.tar                                 the pod sandbox image (OCI archive, from test/infra/kubernetes/pause)
#   showfiles                                 a static `cat` for the test images (test/infra/kubernetes/showfiles)
#
# Everything is cached outside the repo, in ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/kubernetes-<version>/bin,
# named after the k8s.io/kubernetes pin in test/infra/kubernetes/go.mod. Each piece is built only when it is missing,
# so a warm cache returns at once. A cold build downloads the modules and compiles: on 2 cores about 11 minutes for
# the Kubernetes commands (measured while other builds shared the machine; peak memory about 2.5 GB), a minute each
# for imgcrypt and crictl, a second for the rest.
#
# Usage: build-kubernetes.sh [--path]   (--path: print the bin directory, without checking or building anything)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
module="$here/kubernetes"
say() { echo "build-kubernetes: $*" >&2; }
# shellcheck source=build-lib.sh
. "$(dirname "$0")/build-lib.sh"

imgcrypt_version=v1.1.8    # later imgcrypt `cmd` versions are not served by the module proxy here
crictl_version=v1.37.0

version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$module/go.mod")"
if [[ ! "$version" =~ ^v1\.[0-9]+\.[0-9]+$ ]]; then
  say "cannot read the k8s.io/kubernetes version (a 'k8s.io/kubernetes v1.X.Y' require line) from $module/go.mod"
  exit 1
fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/kubernetes-$version"
bin="$dir/bin"
if [[ "${1:-}" == --path ]]; then
  echo "$bin"
  exit 0
fi

runs() { [[ -x "$1" ]] && "$@" >/dev/null 2>&1; }
kubernetes_built() {
  runs "$bin/kube-apiserver" --version && runs "$bin/kubelet" --version && runs "$bin/kubectl" version --client &&
    runs "$bin/etcd" --version
}
imgcrypt_built() { runs "$bin/ctd-decoder" --help && runs "$bin/ctr-enc" --version; }
crictl_built() { runs "$bin/crictl" --version; }
# The pod sandbox image, and the static program the test images run (test/infra/kubernetes/{pause,showfiles}).
programs_built() { [[ -s "$bin/pause.tar" && -x "$bin/showfiles" ]]; }
all_built() { kubernetes_built && imgcrypt_built && crictl_built && programs_built; }

if all_built; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
wait_for_other_build "$dir/.lock" "$bin" all_built

find_go
if ! command -v umoci >/dev/null; then
  say "umoci is needed to pack the pause image: install it (Debian: apt-get install umoci)"
  exit 1
fi

work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Static binaries: they run on the host and nothing here needs cgo.
export CGO_ENABLED=0

if ! kubernetes_built; then
  say "building kube-apiserver, kubelet, kubectl and etcd $version with $("$go" version) (cold: minutes) ..."
  started=$SECONDS
  minor="${version#v1.}"
  minor="${minor%%.*}"
  # What Kubernetes' own build stamps (hack/lib/version.sh); a fixed date and commit keep the build reproducible.
  ldflags="-s -w"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    ldflags+=" -X $package.gitTreeState=clean -X $package.gitCommit=0000000000000000000000000000000000000000"
    ldflags+=" -X $package.buildDate=2026-01-01T00:00:00Z"
  done
  # One go build: the four share most of their dependencies. -mod=readonly: the committed go.mod/go.sum are the
  # whole truth; -buildvcs=false: nothing to stamp from our repo.
  (
    cd "$module"
    GOFLAGS="-mod=readonly -buildvcs=false" "$go" build -trimpath -ldflags "$ldflags" -o "$work/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl \
      go.etcd.io/etcd/server/v3
  )
  # go names the module root's main package after its path without the /v3 suffix.
  mv "$work/server" "$work/etcd"
  for command in kube-apiserver kubelet kubectl etcd; do mv -f "$work/$command" "$bin/$command"; done
  if ! kubernetes_built; then
    say "the freshly built binaries in $bin do not all answer --version"
    exit 1
  fi
  say "built kube-apiserver, kubelet, kubectl, etcd in $((SECONDS - started)) s"
fi

# `go install module/cmd@version` builds outside any module (ours included), with that module's own go.mod.
install_command() { # package@version name-in-bin
  mkdir -p "$work/gobin"
  (cd "$work" && GOBIN="$work/gobin" GOFLAGS=-buildvcs=false "$go" install -trimpath -ldflags "-s -w" "$1")
  mv -f "$work/gobin/$(basename "${1%@*}")" "$bin/$2"
}

if ! imgcrypt_built; then
  say "building imgcrypt $imgcrypt_version ctd-decoder and ctr (as ctr-enc) ..."
  started=$SECONDS
  install_command "github.com/containerd/imgcrypt/cmd/ctd-decoder@$imgcrypt_version" ctd-decoder
  install_command "github.com/containerd/imgcrypt/cmd/ctr@$imgcrypt_version" ctr-enc
  imgcrypt_built || { say "the freshly built ctd-decoder or ctr-enc in $bin does not run"; exit 1; }
  say "built ctd-decoder, ctr-enc in $((SECONDS - started)) s"
fi

if ! crictl_built; then
  say "building crictl $crictl_version ..."
  started=$SECONDS
  install_command "sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version" crictl
  crictl_built || { say "the freshly built $bin/crictl does not run"; exit 1; }
  say "built crictl in $((SECONDS - started)) s"
fi

if ! programs_built; then
  say "building the pause image and showfiles ..."
  (
    cd "$module"
    GOFLAGS="-mod=readonly -buildvcs=false" "$go" build -trimpath -ldflags "-s -w" -o "$work/" ./pause ./showfiles
  )
  layout="$work/pause-layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:1"
  # --rootless: the layer records root-owned files without needing root here.
  umoci insert --rootless --image "$layout:1" "$work/pause" /pause
  umoci config --image "$layout:1" --config.entrypoint /pause --config.user 65535:65535 --os linux --architecture amd64
  umoci gc --layout "$layout"
  # containerd's `ctr images import --base-name NAME` names the image NAME:1 from the index's ref.name annotation.
  tar -C "$layout" -cf "$work/pause.tar" .
  mv -f "$work/pause.tar" "$bin/pause.tar"
  mv -f "$work/showfiles" "$bin/showfiles"
fi

say "ready: $bin"
echo "$bin"
