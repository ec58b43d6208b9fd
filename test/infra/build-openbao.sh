#!/usr/bin/env bash
# Builds the OpenBao server (`bao`) for the integration tests from OpenBao's Go module, through the wrapper module in
# test/infra/openbao, and prints the binary's path on stdout (progress goes to stderr).
#
# The binary is cached outside the repo, at ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/openbao-<release>-<commit>/bao,
# named after the pin in test/infra/openbao/go.mod; when it is there and runs, this prints its path and exits at once.
# A cold build downloads OpenBao's dependencies (about 2.5 GB into the Go module cache) and compiles them: minutes.
#
# Usage: build-openbao.sh [--path]   (--path: print where the binary belongs, without checking or building it)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
module="$here/openbao"
say() { echo "build-openbao: $*" >&2; }
# shellcheck source=build-lib.sh
. "$(dirname "$0")/build-lib.sh"

# The pin: `require github.com/openbao/openbao v0.0.0-<time>-<commit> // openbao vX.Y.Z`.
pin="$(grep -E '^require github\.com/openbao/openbao v' "$module/go.mod" || true)"
pseudo="$(awk '{print $3}' <<<"$pin")"
release="$(sed -nE 's|.*// openbao (v[0-9][0-9.]*).*|\1|p' <<<"$pin")"
commit="${pseudo##*-}"
if [[ -z "$pseudo" || -z "$release" || ! "$commit" =~ ^[0-9a-f]{12}$ ]]; then
  say "cannot read the OpenBao pin (require line with '// openbao vX.Y.Z') from $module/go.mod"
  exit 1
fi
version="$release-$commit"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/openbao-$version"
bin="$dir/bao"
if [[ "${1:-}" == --path ]]; then
  echo "$bin"
  exit 0
fi

runs() { [[ -x "$1" ]] && "$1" version >/dev/null 2>&1; }

if runs "$bin"; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
wait_for_other_build "$dir/.lock" "$bin" runs "$bin"

find_go

say "building OpenBao $version with $("$go" version) (a cold build takes minutes) ..."
started=$SECONDS
work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
ldflags="-s -w -X github.com/openbao/openbao/version.fullVersion=${release#v}"
ldflags+=" -X github.com/openbao/openbao/version.GitCommit=$commit"
# -mod=readonly: the committed go.mod/go.sum are the whole truth; -buildvcs=false: nothing to stamp from our repo.
(
  cd "$module"
  GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$work/bao" .
)
if ! runs "$work/bao"; then
  say "the freshly built $work/bao does not run 'bao version'"
  exit 1
fi
mv -f "$work/bao" "$bin"
say "built $bin ($(du -h "$bin" | cut -f1)) in $((SECONDS - started)) s: $("$bin" version)"
echo "$bin"
