#!/usr/bin/env bash
# Builds Prometheus's promtool, which test/integration/monitoring.test.ts uses to check the alerting rules in
# deploy/monitoring/ (`promtool check rules`, `promtool test rules`), from the Go module proxy, and prints the binary's
# path on stdout (progress goes to stderr).
#
# `go install github.com/prometheus/prometheus/cmd/promtool@VERSION`: Prometheus's own go.mod and go.sum pin every
# dependency, so no wrapper module is needed. The Go module version v0.X.Y is Prometheus release 3.X.Y.
# The binary is cached outside the repo, at ${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/promtool-<version>/promtool; when
# it is there and runs, this prints its path and exits at once. A cold build downloads about 1 GB of modules into the
# Go module cache and compiles them: a few minutes.
#
# Usage: build-promtool.sh [--path]   (--path: print where the binary belongs, without checking or building it)
set -euo pipefail

say() { echo "build-promtool: $*" >&2; }
# shellcheck source=build-lib.sh
. "$(dirname "$0")/build-lib.sh"

module=github.com/prometheus/prometheus
version=v0.316.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/promtool-$version"
bin="$dir/promtool"
if [[ "${1:-}" == --path ]]; then
  echo "$bin"
  exit 0
fi

runs() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

if runs "$bin"; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
wait_for_other_build "$dir/.lock" "$bin" runs "$bin"

find_go

say "building promtool $version with $("$go" version) (a cold build takes minutes) ..."
started=$SECONDS
work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# GOTOOLCHAIN=local: never download another toolchain; GOWORK=off: ignore any go.work above us; -buildvcs=false:
# nothing to stamp from our repo. GOBIN: install into the build directory, published below only once it runs.
GOBIN="$work" GOTOOLCHAIN=local GOWORK=off GOFLAGS="-buildvcs=false" CGO_ENABLED=0 \
  "$go" install -trimpath -ldflags "-s -w" "$module/cmd/promtool@$version"
if ! runs "$work/promtool"; then
  say "the freshly built $work/promtool does not run 'promtool --version'"
  exit 1
fi
mv -f "$work/promtool" "$bin"
say "built $bin ($(du -h "$bin" | cut -f1)) in $((SECONDS - started)) s"
echo "$bin"
