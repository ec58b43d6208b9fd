#!/usr/bin/env bash
# Builds the ocicrypt peer used by the integration tests: upstream skopeo (cmd/skopeo), compiled against
# a current containers/ocicrypt that supports the key-provider protocol (`provider:NAME[:PARAMS]`).
# Debian's skopeo is built with ocicrypt 1.0.3, which has no provider support.
#
# Versions are pinned in test/infra/ocicrypt-peer/go.mod (skopeo, plus an ocicrypt override); go.sum is
# complete, so the build works from an empty module cache with -mod=readonly (needs the Go module proxy).
#
# Output: prints the absolute path of the skopeo binary on stdout; progress goes to stderr.
# Built once into ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/ocicrypt-peer-<version>/skopeo; later runs return at once.
#
# Usage of the result (keyprovider config via OCICRYPT_KEYPROVIDER_CONFIG):
#   skopeo --insecure-policy copy --encryption-key provider:imagegate[:PARAMS] oci:SRC:tag oci:DST:tag
#   skopeo --insecure-policy copy --decryption-key provider:imagegate oci:DST:tag oci:OUT:tag
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
moddir="$here/ocicrypt-peer"

modver() { # version of a required module in go.mod
  awk -v m="$1" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$moddir/go.mod"
}
skopeo_ver="$(modver github.com/containers/skopeo)"
ocicrypt_ver="$(modver github.com/containers/ocicrypt)"
if [[ -z "$skopeo_ver" || -z "$ocicrypt_ver" ]]; then
  echo "build-ocicrypt-peer: cannot read skopeo/ocicrypt versions from $moddir/go.mod" >&2
  exit 1
fi

version="skopeo-${skopeo_ver}_ocicrypt-${ocicrypt_ver}"
outdir="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/ocicrypt-peer-$version"
bin="$outdir/skopeo"

# --path: where the binary is (or would be), without building; tests use it to skip locally when it is absent.
if [[ "${1:-}" == "--path" || -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

gobin="$(command -v go || true)"
[[ -z "$gobin" && -x /usr/local/go/bin/go ]] && gobin=/usr/local/go/bin/go
if [[ -z "$gobin" ]]; then
  echo "build-ocicrypt-peer: no Go toolchain found (PATH or /usr/local/go/bin)" >&2
  exit 1
fi

mkdir -p "$outdir"
tmp="$(mktemp "$outdir/.skopeo.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

echo "build-ocicrypt-peer: building skopeo $skopeo_ver with ocicrypt $ocicrypt_ver ($("$gobin" version)); this takes a few minutes on a cold cache" >&2
start=$SECONDS
(
  cd "$moddir"
  # GOTOOLCHAIN=local: never download another toolchain; GOWORK=off: ignore any go.work above us.
  # No cgo: containers_image_openpgp replaces gpgme, and btrfs/devicemapper graph drivers are left out.
  CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" \
    "$gobin" build -trimpath \
    -tags 'containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper' \
    -o "$tmp" github.com/containers/skopeo/cmd/skopeo
)
chmod 0755 "$tmp"
"$tmp" --version >&2
mv -f "$tmp" "$bin"
trap - EXIT
echo "build-ocicrypt-peer: built $bin in $((SECONDS - start))s" >&2
echo "$bin"
