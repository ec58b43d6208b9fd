#!/usr/bin/env bash
# Builds imagegate's runtime image (what deploy/Dockerfile's `runtime` target makes) without a container engine or
# any registry but npm's and Debian's: Node 24 from the npm registry (scripts/node24.sh), the shared libraries it
# links against and the CA bundle from this Debian machine's packages, imagegate's dist/ and its production
# dependencies, assembled with umoci into an OCI layout.
#
# The layout matches the distroless image the Dockerfile uses, so the webhook's injected command is the same for
# both: /nodejs/bin/node /opt/imagegate/dist/cli/imagegate.js (CHECK_COMMAND in src/pod-model/injected-containers.ts).
# User 65532, no shell, nothing written outside volumes (fine with a read-only root filesystem).
#
# Usage: scripts/build-image.sh LAYOUT_DIR [TAG]     (default tag: the package version)
# Then, e.g.: skopeo copy oci:LAYOUT_DIR:TAG docker://REGISTRY/imagegate:TAG
# Prints the manifest digest on stdout; progress goes to stderr. Needs umoci, ldd, npm; run as root (umoci keeps
# file ownership, and the image's files must belong to root).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "build-image: $*" >&2; }

layout="${1:?usage: build-image.sh LAYOUT_DIR [TAG]}"
node_dir="$("$repo/scripts/node24.sh")"
export PATH="$node_dir:$PATH"
tag="${2:-$(node -p "require('$repo/package.json').version")}"
for tool in umoci ldd npm; do
  command -v "$tool" >/dev/null || { say "$tool is needed (apt-get install umoci libc-bin npm)"; exit 1; }
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || { say "no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/bundle/rootfs"

# imagegate itself, with production dependencies only. The build runs in a copy, so the checkout's node_modules
# (with its dev dependencies) is not touched.
say "building imagegate and its production dependencies"
app="$work/app"
mkdir -p "$app"
cp -r "$repo/package.json" "$repo/package-lock.json" "$repo/tsconfig.json" "$repo/tsconfig.build.json" "$repo/src" "$repo/cli" "$repo/webhook" "$app/"
(cd "$app" && npm ci --no-audit --no-fund --ignore-scripts >&2 && npm run build >&2 && npm prune --omit=dev --no-audit --no-fund >&2)

# An empty image, unpacked into a bundle whose rootfs we fill.
say "assembling the image in $layout:$tag"
[ -d "$layout" ] || umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null

# Node and exactly the libraries it is linked against (Debian's libc6, libstdc++6, libgcc-s1), at the paths the
# dynamic loader looks for them.
mkdir -p "$rootfs/nodejs/bin"
cp "$node_dir/node" "$rootfs/nodejs/bin/node"
ldd "$node_dir/node" | awk '/=> \// {print $3} /^[ \t]*\// {print $1}' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/opt/imagegate"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
cp -r "$app/package.json" "$app/node_modules" "$app/dist" "$rootfs/opt/imagegate/"
# Only what the program runs: no source maps or declarations, and not the empty scope folders npm prune leaves.
find "$rootfs/opt/imagegate/dist" \( -name '*.map' -o -name '*.d.ts' \) -delete
find "$rootfs/opt/imagegate/node_modules" -type d -empty -delete

umoci repack --image "$layout:$tag" "$work/bundle" >/dev/null
umoci config --image "$layout:$tag" \
  --config.user 65532:65532 \
  --config.workingdir /opt/imagegate \
  --config.env NODE_ENV=production \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.entrypoint /nodejs/bin/node --config.entrypoint /opt/imagegate/dist/cli/imagegate.js \
  --config.cmd --help \
  --architecture amd64 --os linux \
  --author imagegate >/dev/null
umoci gc --layout "$layout"
node -e '
  const fs = require("fs");
  const index = JSON.parse(fs.readFileSync(process.argv[1] + "/index.json", "utf8"));
  const entry = index.manifests.find((m) => (m.annotations || {})["org.opencontainers.image.ref.name"] === process.argv[2]);
  process.stdout.write(entry.digest + "\n");
' "$layout" "$tag"
