#!/usr/bin/env bash
# Builds containerd 2.x (containerd, ctr, containerd-shim-runc-v2) from its Go module for the containerd 2 node-model
# test (test/integration/containerd2.test.ts), and prints the bin directory on stdout (progress goes to stderr).
# Debian ships containerd 1.6 only; current clusters run 2.x, whose CRI decrypts only with use_local_image_pull.
#
# `go install module/cmd/X@version` builds with containerd's own go.mod and go.sum (no replace directives, so no
# wrapper module is needed) and verifies every module against the checksum database. Static, as containerd's
# `make STATIC=1` builds it, minus the snapshotters this machine cannot use:
#   CGO_ENABLED=0                       btrfs needs cgo (its builtin is `!no_btrfs && cgo`), so it drops out anyway
#   no_btrfs no_devmapper no_zfs        the snapshotters that need cgo, device-mapper pools or ZFS pools
#   urfave_cli_no_docs                  what the Makefile always sets (no man-page generator linked in)
#   osusergo netgo static_build         what the Makefile adds for STATIC=1 (pure-Go user and DNS look-ups)
#   no_grpc (shim only)                 what the Makefile adds for the shim (it speaks ttrpc only)
# overlayfs, native, blockfile and erofs snapshotters, the CRI plugin and imgcrypt's stream processor support remain.
#
# Cached outside the repo, in ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/containerd-<version>/bin; a warm cache returns
# at once. A cold build downloads containerd's modules (about 0.6 GB) and compiles (0.6 GB of build cache, 0.6 GB peak
# memory): 89 s on 2 cores with empty module and build caches (measured 2026-12-05, beside other builds).
#
# Usage: build-containerd2.sh [--path]   (--path: print the bin directory, without checking or building anything)
set -euo pipefail

version=v2.4.2
say() { echo "build-containerd2: $*" >&2; }
# shellcheck source=build-lib.sh
. "$(dirname "$0")/build-lib.sh"

dir="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/containerd-$version"
bin="$dir/bin"
if [[ "${1:-}" == --path ]]; then
  echo "$bin"
  exit 0
fi

# `containerd --version` prints "containerd github.com/containerd/containerd/v2 v2.4.2 <revision>".
answers_version() { [[ -x "$1" ]] && "$@" 2>/dev/null | grep -qF " $version"; }
all_built() {
  answers_version "$bin/containerd" --version && answers_version "$bin/ctr" --version &&
    answers_version "$bin/containerd-shim-runc-v2" -v
}

if all_built; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
wait_for_other_build "$dir/.lock" "$bin" all_built

find_go

work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

module=github.com/containerd/containerd/v2
tags="urfave_cli_no_docs no_btrfs no_devmapper no_zfs osusergo netgo static_build"
# What containerd's Makefile stamps; the module proxy does not tell the tag's commit, so the revision names the source.
ldflags="-s -w -X $module/version.Version=$version -X $module/version.Revision=go-module-proxy"
ldflags+=" -X $module/version.Package=$module"

# GOTOOLCHAIN=local: never download another Go; GOWORK=off: ignore any go.work above us; run outside any module
# (ours included) so that only containerd's go.mod counts.
build() { # tags package...
  local build_tags="$1"
  shift
  (
    cd "$work"
    CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$work/gobin" \
      "$go" install -trimpath -tags "$build_tags" -ldflags "$ldflags" "${@/%/@$version}"
  )
}

say "building containerd $version (containerd, ctr, containerd-shim-runc-v2) with $("$go" version) (cold: minutes) ..."
started=$SECONDS
build "$tags" "$module/cmd/containerd" "$module/cmd/ctr"
build "$tags no_grpc" "$module/cmd/containerd-shim-runc-v2"
for command in containerd ctr containerd-shim-runc-v2; do mv -f "$work/gobin/$command" "$bin/$command"; done
if ! all_built; then
  say "the freshly built binaries in $bin do not all report $version"
  exit 1
fi
say "built in $((SECONDS - started)) s: $(cd "$bin" && du -h containerd ctr containerd-shim-runc-v2 | tr '\t\n' ' ')"
say "ready: $bin"
echo "$bin"
