#!/usr/bin/env bash
# Builds the tools the deployment tests use, and fetches the API schemas they validate manifests against:
#   bin/helm, bin/kubeconform, bin/actionlint   from the wrapper modules in test/infra/deploy-tools/<tool> (each
#                                               builds with the dependency versions of its own upstream go.mod)
#   sources/kubernetes/swagger.json             k8s.io/kubernetes api/openapi-spec/swagger.json
#   sources/crds/*.yaml                         the ServiceMonitor CRD (prometheus-operator) and the cert-manager
#                                               Certificate and Issuer CRDs
#   versions.env                                the pinned versions, one NAME=VALUE a line
# The sources come from the Go module proxy (`go mod download`, checked against the sums pinned below), so this needs
# Go and the proxy, nothing else: .ci/run runs it before `npm ci`. test/support/deploy-tools.ts turns the sources into
# kubeconform schemas on first use.
#
# Everything lands in ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/deploy-tools-<versions>/, which is published whole (built
# in a temporary directory, then renamed), so bin/helm existing means everything is there. Prints the absolute path of
# bin/helm on stdout (the other files are found from it); progress goes to stderr. When the directory is there this
# prints the path and exits at once; a cold build compiles helm's dependencies: minutes.
#
# Usage: build-deploy-tools.sh [--path]   (--path: print where bin/helm belongs, without checking or building it)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules="$here/deploy-tools"
say() { echo "build-deploy-tools: $*" >&2; }
# shellcheck source=build-lib.sh
. "$(dirname "$0")/build-lib.sh"

# Schema sources: module, version, the module zip's h1 sum (as in go.sum), files to copy (path in module:dest in dir).
kubernetes_version=v1.35.4
sources=(
  "k8s.io/kubernetes $kubernetes_version h1:o/8dBC/pHVpYoGV4OAIytAlNPZbdYVTXJHoYvXC4qzM="
  "api/openapi-spec/swagger.json:sources/kubernetes/swagger.json"

  "github.com/prometheus-operator/prometheus-operator v0.85.0 h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
  "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml:sources/crds/monitoring.coreos.com_servicemonitors.yaml"

  "github.com/cert-manager/cert-manager v1.21.2 h1:UWgoYM+KLNtRlqmoWOKjKBOBUPVHeepQ6/ac3ERJW68="
  "deploy/crds/cert-manager.io_certificates.yaml:sources/crds/cert-manager.io_certificates.yaml
   deploy/crds/cert-manager.io_issuers.yaml:sources/crds/cert-manager.io_issuers.yaml"
)

modver() { # modver DIR MODULE: the version DIR/go.mod requires of MODULE
  awk -v m="$2" '$1 == "require" && $2 == m { print $3; exit }' "$modules/$1/go.mod"
}
helm_version="$(modver helm helm.sh/helm/v4)"
kubeconform_version="$(modver kubeconform github.com/yannh/kubeconform)"
actionlint_version="$(modver actionlint github.com/rhysd/actionlint)"
if [[ -z "$helm_version" || -z "$kubeconform_version" || -z "$actionlint_version" ]]; then
  say "cannot read the tool versions (a 'require MODULE VERSION' line) from $modules/*/go.mod"
  exit 1
fi
version="helm-${helm_version}_kubeconform-${kubeconform_version}_actionlint-${actionlint_version}"
for ((i = 0; i < ${#sources[@]}; i += 2)); do
  read -r mod ver _ <<<"${sources[i]}"
  version+="_${mod##*/}-$ver"
done
root="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate"
dir="$root/deploy-tools-$version"
if [[ "${1:-}" == --path ]]; then
  echo "$dir/bin/helm"
  exit 0
fi

complete() { [[ -x "$dir/bin/helm" && -x "$dir/bin/kubeconform" && -x "$dir/bin/actionlint" && -f "$dir/versions.env" ]]; }
if complete; then
  echo "$dir/bin/helm"
  exit 0
fi

mkdir -p "$root"
wait_for_other_build "$root/.deploy-tools-$version.lock" "$dir/bin/helm" complete

find_go
# GOTOOLCHAIN=local: never download another toolchain; GOWORK=off: ignore any go.work above us; -mod=readonly: the
# committed go.mod/go.sum are the whole truth; -buildvcs=false: nothing to stamp from our repo.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

started=$SECONDS
work="$(mktemp -d "$root/.deploy-tools-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work" # mktemp made it private; the published directory is not
mkdir -p "$work/bin"

build() { # build TOOL PACKAGE LDFLAGS
  say "building $1 with $("$go" version) ..."
  local t=$SECONDS
  (cd "$modules/$1" && "$go" build -trimpath -ldflags "-s -w $3" -o "$work/bin/$1" "$2")
  say "built $1 in $((SECONDS - t)) s"
}
build helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$helm_version"
build kubeconform github.com/yannh/kubeconform/cmd/kubeconform "-X main.version=$kubeconform_version"
build actionlint github.com/rhysd/actionlint/cmd/actionlint ""
"$work/bin/helm" version --short >&2
"$work/bin/kubeconform" -v >&2
"$work/bin/actionlint" -version | sed -n 1p >&2 # sed, unlike head, reads to the end: no SIGPIPE

for ((i = 0; i < ${#sources[@]}; i += 2)); do
  read -r mod ver sum <<<"${sources[i]}"
  # -json prints Dir (the extracted module) and Sum; go checks the download against the checksum database too.
  info="$(cd "$work" && GOFLAGS= "$go" mod download -json "$mod@$ver")"
  got_sum="$(sed -nE 's/^\s*"Sum": "(.*)",?$/\1/p' <<<"$info")"
  from="$(sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p' <<<"$info")"
  if [[ "$got_sum" != "$sum" || ! -d "$from" ]]; then
    say "$mod@$ver: expected sum $sum and an extracted module, got sum '$got_sum', dir '$from':"
    say "$info"
    exit 1
  fi
  for pair in ${sources[i + 1]}; do
    mkdir -p "$work/$(dirname "${pair#*:}")"
    cp "$from/${pair%%:*}" "$work/${pair#*:}"
  done
  say "copied the schema sources from $mod@$ver"
done
chmod -R u+w "$work" # module cache files are read-only

cat >"$work/versions.env" <<EOF
HELM_VERSION=$helm_version
KUBECONFORM_VERSION=$kubeconform_version
ACTIONLINT_VERSION=$actionlint_version
KUBERNETES_VERSION=$kubernetes_version
EOF
rm -rf "$dir" # an incomplete directory left by hand; published ones are complete
mv "$work" "$dir"
trap - EXIT
say "built $dir in $((SECONDS - started)) s"
echo "$dir/bin/helm"
