#!/usr/bin/env bash
# Prints the path of a Go toolchain new enough to build the test tools (test/infra/build-*.sh), or explains how to
# install one and exits 1. Looks where test/infra/build-lib.sh does (`go` on PATH, else /usr/local/go/bin/go), or
# in $GOROOT/bin and PATH when GOROOT is set. The version needed is the highest `go` line of test/infra/*/go.mod.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
say() { echo "check-go: $*" >&2; }

needed="$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$repo"/test/infra/*/go.mod | sort -V | tail -n 1)"
needed="${needed:-1.26.0}"

case "$(uname -m)" in
  aarch64 | arm64) arch=arm64 ;;
  *) arch=amd64 ;;
esac
install_hint="install Go >= $needed from https://go.dev/dl/ (Debian's golang-go is older), e.g.:
  curl -fsSL https://go.dev/dl/go$needed.linux-$arch.tar.gz | sudo tar -C /usr/local -xz
then run this again (Go in /usr/local/go is found without changing PATH, unless GOROOT names another place)."

# With GOROOT set, Go runs only from there (a go binary elsewhere fails under a foreign GOROOT), so the usual
# /usr/local/go is no candidate then.
if [[ -n "${GOROOT:-}" ]]; then
  places="\$GOROOT/bin ($GOROOT/bin) or PATH"
  candidates=("$GOROOT/bin/go" "$(command -v go || true)")
else
  places="PATH or /usr/local/go/bin"
  candidates=("$(command -v go || true)" /usr/local/go/bin/go)
fi
go=""
for candidate in "${candidates[@]}"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    go="$candidate"
    break
  fi
done
if [[ -z "$go" ]]; then
  say "the test tools (OpenBao, skopeo 1.19, helm, kubeconform, actionlint, Kubernetes, containerd 2) are built from"
  say "Go modules, and there is no Go in $places; $install_hint"
  exit 1
fi

found="$("$go" env GOVERSION 2>/dev/null || true)"
found="${found#go}"
found="${found%% *}"
if [[ -z "$found" ]]; then
  say "$go does not run ('$go env GOVERSION' failed); $install_hint"
  exit 1
fi
if [[ "$(printf '%s\n%s\n' "$needed" "$found" | sort -V | head -n 1)" != "$needed" ]]; then
  say "$go is Go $found, older than the Go $needed that test/infra's modules need (the builds never download"
  say "another toolchain: GOTOOLCHAIN=local); $install_hint"
  exit 1
fi
echo "$go"
