#!/usr/bin/env bash
# The gate in a local one-node cluster, start to finish, in one command (as root, on a Debian machine with Go):
#
#   scripts/cluster-demo.sh [DIR]
#
# Builds what is missing (Kubernetes, OpenBao and helm from their Go modules, cached under ~/.cache/imagegate; the
# first time takes 15-25 minutes), brings up test/infra/cluster.sh in DIR (default ./imagegate-cluster): etcd,
# kube-apiserver, kubelet, containerd with imagegate's node model, OpenBao, two registries and the admission webhook,
# all on 127.0.0.1. Then it encrypts a sample image with the cluster's Vault key, runs it as a service account that
# may (the node decrypts it through `imagegate keyprovider`; the pod prints a file only the encrypted layer holds),
# asks for the same image as one that may not (the webhook refuses it), and tears everything down again.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(realpath -m "${1:-imagegate-cluster}")"
say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "cluster-demo: run as root (the kubelet and containerd need it)" >&2; exit 2; }
command -v go >/dev/null || { echo "cluster-demo: Go is needed to build the cluster's programs (apt-get install golang, or /usr/local/go/bin on PATH)" >&2; exit 2; }
export PATH="$("$repo/scripts/node24.sh"):$PATH"
[ -f "$repo/dist/cli/imagegate.js" ] || (cd "$repo" && npm run build >/dev/null)

say "building the cluster's programs (cached after the first run)"
"$repo/test/infra/build-openbao.sh" >/dev/null
"$repo/test/infra/build-deploy-tools.sh" >/dev/null
"$repo/test/infra/build-kubernetes.sh" >/dev/null
bin="$("$repo/test/infra/build-kubernetes.sh" --path)"

say "starting the cluster in $dir"
trap '"$repo/test/infra/cluster.sh" down "$dir" >/dev/null 2>&1 || true' EXIT
"$repo/test/infra/cluster.sh" up "$dir" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/cluster.env"
set +a
kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG" --cache-dir "$KUBECACHEDIR" "$@"; }
imagegate() { node "$repo/dist/cli/imagegate.js" "$@"; }

say "a sample image whose top layer holds a secret, encrypted with the cluster's Vault key $KEY"
work="$(mktemp -d)"
trap 'rm -rf "$work"; "$repo/test/infra/cluster.sh" down "$dir" >/dev/null 2>&1 || true' EXIT
secret="only the encrypted layer holds this line: $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
umoci init --layout "$work/image" >/dev/null
umoci new --image "$work/image:demo" >/dev/null
umoci insert --image "$work/image:demo" "$bin/showfiles" /bin/showfiles >/dev/null
printf '%s\n' "$secret" > "$work/secret.txt"
umoci insert --image "$work/image:demo" "$work/secret.txt" /app/secret.txt >/dev/null
image="$REPOSITORY:demo"
VAULT_ADDR="$VAULT_ADDR" VAULT_TOKEN="$VAULT_TOKEN" imagegate encrypt "oci:$work/image:demo" "docker://$image" -r "vault:$KEY" --ca-cert "$REGISTRY_CA" -q
imagegate inspect "docker://$image" --ca-cert "$REGISTRY_CA"

pod() { # NAME SERVICE_ACCOUNT
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $NAMESPACE}
spec:
  nodeName: $NODE
  serviceAccountName: $2
  restartPolicy: Never
  containers: [{name: app, image: "$image", command: [/bin/showfiles, /app/secret.txt]}]
EOF
}

say "service account $SERVICE_ACCOUNT, which the policy allows for $KEY: admitted, and containerd decrypts the image"
pod allowed "$SERVICE_ACCOUNT" | kubectl apply -f -
kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded pod/allowed --timeout=120s >/dev/null
kubectl -n "$NAMESPACE" get pod allowed -o jsonpath='{.spec.containers[0].image}{"\n"}'
kubectl -n "$NAMESPACE" logs allowed

say "service account $OTHER_SERVICE_ACCOUNT, which it does not allow: refused by the webhook"
if pod denied "$OTHER_SERVICE_ACCOUNT" | kubectl apply -f - 2>"$work/denied.txt"; then
  echo "cluster-demo: the pod was admitted, which it must not be" >&2
  exit 1
fi
cat "$work/denied.txt"

say "tearing the cluster down"
