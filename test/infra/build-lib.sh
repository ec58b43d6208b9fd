# Sourced by the test/infra/build-*.sh scripts (each defines `say` first): what every cached Go build does the same.

# One build at a time per version: takes the lock LOCKFILE (held until the script exits), then, since whoever held it
# may have built everything meanwhile, prints DONE and exits when `CHECK...` now succeeds.
# Usage: wait_for_other_build LOCKFILE DONE CHECK...
wait_for_other_build() {
  local lock="$1" done="$2"
  shift 2
  command -v flock >/dev/null || return 0
  exec 9>"$lock"
  flock 9
  if "$@"; then
    echo "$done"
    exit 0
  fi
}

# Sets `go` to the machine's Go toolchain (PATH, else /usr/local/go/bin/go), or exits saying there is none.
find_go() {
  go=go
  command -v go >/dev/null || go=/usr/local/go/bin/go
  if ! command -v "$go" >/dev/null; then
    say "no Go toolchain: neither 'go' on PATH nor /usr/local/go/bin/go"
    exit 1
  fi
}
