# `cluster.sh up DIR`, sourced by ../cluster.sh (its helpers and settings are in scope).
started=$SECONDS

# --- what must be there -------------------------------------------------------------------------------------------
[[ $EUID -eq 0 ]] || die "up needs root (containerd, runc, the kubelet's mounts and the CNI bridge)"
for daemon in "${DAEMONS[@]}"; do
  if our_pid "$daemon" >/dev/null; then die "$dir already has a running cluster ($daemon); run: $0 down $dir"; fi
done
for pid in $(pgrep -x kubelet || true); do
  running "$pid" || continue
  die "a kubelet already runs on this machine (pid $pid); it uses fixed host paths, so a second one cannot start.
  Stop it first (a cluster from this script: $0 down THAT_DIR)."
done
# IMAGEGATE_CLUSTER_CONTAINERD=2: containerd 2.4.2 (build-containerd2.sh) with deploy/runtime/containerd/config-v3.toml
# instead of Debian's 1.6 with config-v2.toml.
CONTAINERD_MAJOR="${IMAGEGATE_CLUSTER_CONTAINERD:-1}"
debian_containerd=(containerd ctr)
case "$CONTAINERD_MAJOR" in
1) ;;
2) debian_containerd=() ;;
*) die "IMAGEGATE_CLUSTER_CONTAINERD is '$IMAGEGATE_CLUSTER_CONTAINERD'; expected 1 (Debian's 1.6) or 2 (2.4.2, built)" ;;
esac
missing=()
for tool in "${debian_containerd[@]}" runc docker-registry openssl curl jq setsid pgrep ip; do
  command -v "$tool" >/dev/null || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
done
for plugin in bridge host-local loopback; do [[ -x "/usr/lib/cni/$plugin" ]] || missing+=("/usr/lib/cni/$plugin"); done
if ((${#missing[@]})); then
  die "missing: ${missing[*]} (Debian: apt-get install containerd runc containernetworking-plugins docker-registry openssl curl jq procps iproute2)"
fi
# IMAGEGATE_CLUSTER_KEYS_DIR=off drops ctd-decoder's --decryption-keys-path (the shipped file has it on): ocicrypt's
# requests differ with and without a keys directory, and nodes run both ways.
keys_dir_filter=(cat)
case "${IMAGEGATE_CLUSTER_KEYS_DIR:-on}" in
on) ;;
off) keys_dir_filter=(grep -v -e '--decryption-keys-path') ;;
*) die "IMAGEGATE_CLUSTER_KEYS_DIR is '$IMAGEGATE_CLUSTER_KEYS_DIR'; expected on or off" ;;
esac
RUNTIME_MODEL="${IMAGEGATE_CLUSTER_RUNTIME_MODEL:-node}"
[[ "$RUNTIME_MODEL" == node || "$RUNTIME_MODEL" == pod ]] ||
  die "IMAGEGATE_CLUSTER_RUNTIME_MODEL is '$RUNTIME_MODEL'; expected node or pod"
check_image="${IMAGEGATE_CLUSTER_CHECK_IMAGE:-}"
check_layout="${IMAGEGATE_CLUSTER_CHECK_LAYOUT:-}"
if [[ -n "$check_layout" ]]; then
  [[ -z "$check_image" ]] || die "set IMAGEGATE_CLUSTER_CHECK_IMAGE or IMAGEGATE_CLUSTER_CHECK_LAYOUT, not both"
  [[ "$check_layout" == *:* && -f "${check_layout%:*}/index.json" ]] ||
    die "IMAGEGATE_CLUSTER_CHECK_LAYOUT is '$check_layout'; expected DIR:TAG of an OCI layout (scripts/build-image.sh DIR TAG)"
  command -v skopeo >/dev/null || die "IMAGEGATE_CLUSTER_CHECK_LAYOUT needs skopeo (apt-get install skopeo)"
fi
node="$("$repo/scripts/node24.sh")/node"
imagegate_js="$repo/dist/cli/imagegate.js"
[[ -f "$imagegate_js" ]] || die "$imagegate_js is missing: build the CLI first (npm run build)"
bin="$("$here/build-kubernetes.sh")"
bao="$("$here/build-openbao.sh")"
helm="$("$here/build-deploy-tools.sh")"
# containerd, ctr and containerd-shim-runc-v2: Debian's from PATH, or containerd 2's bin directory (first on its PATH,
# so that it starts its own shim, not Debian's).
containerd_bin=containerd
ctr_bin=ctr
containerd_path=""
if [[ "$CONTAINERD_MAJOR" == 2 ]]; then
  containerd2="$("$here/build-containerd2.sh")"
  containerd_bin="$containerd2/containerd"
  ctr_bin="$containerd2/ctr"
  containerd_path="$containerd2:"
fi

mkdir -p "$dir"/{run,logs,imagegate,kubelet,containerd}
# From here on, a failure stops what was started and keeps the logs (-E: also inside functions).
set -E
cleanup_on_failure() {
  say "up failed; stopping what it started (logs stay in $dir/logs)"
  "$0" down "$dir" || true
}
trap cleanup_on_failure ERR

# What the kubelet and CNI will change outside DIR, recorded for `down`.
: >"$dir/run/host-dirs-created"
for host_dir in "${HOST_DIRS[@]}"; do [[ -e "$host_dir" ]] || echo "$host_dir" >>"$dir/run/host-dirs-created"; done
: >"$dir/run/sysctls"
for sysctl in "${KUBELET_SYSCTLS[@]}"; do echo "$sysctl $(cat "/proc/sys/$sysctl")" >>"$dir/run/sysctls"; done

# --- PKI, ports, settings the templates read ----------------------------------------------------------------------
pki="$dir/pki"
"$templates/pki.sh" "$pki" "$NODE"
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT VAULT_PORT REGISTRY_PORT \
  PLAIN_REGISTRY_PORT WEBHOOK_PORT < <(free_ports 9)
export DIR="$dir" PKI="$pki" NODE NAMESPACE SERVICE_ACCOUNT POLICY_ONLY_SERVICE_ACCOUNT RUNTIME_MODEL KEY_NAME CNI_BRIDGE PAUSE_IMAGE SA_ISSUER
export API_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT
export CONTAINERD_SOCKET="$dir/containerd/containerd.sock"
vault_addr="http://127.0.0.1:$VAULT_PORT"
vault_token="imagegate-cluster-$(openssl rand -hex 12)"
kubeconfig="$dir/kubeconfig"
IDENTITY=admin render "$templates/kubeconfig.yaml" "$kubeconfig"
IDENTITY=kubelet render "$templates/kubeconfig.yaml" "$dir/kubelet/kubeconfig"
# kubectl's discovery cache under DIR too (by default it is ~/.kube/cache).
export KUBECACHEDIR="$dir/kubectl-cache"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
# The daemons see only what they need: no VAULT_*, KUBECONFIG or proxy settings from the caller.
clean_env=(env -i "HOME=$dir" "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")

# --- etcd, OpenBao, the registries (independent: started together) ----------------------------------------------
start_daemon etcd "$dir/etcd" "${clean_env[@]}" "$bin/etcd" --name imagegate-cluster --data-dir "$dir/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "imagegate-cluster=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync \
  --quota-backend-bytes=1073741824 --log-level=warn

start_daemon openbao "$dir/openbao" "${clean_env[@]}" "$bao" server -dev "-dev-root-token-id=$vault_token" \
  "-dev-listen-address=127.0.0.1:$VAULT_PORT" -dev-no-store-token

start_registry() { # NAME PORT TLS_LINES
  mkdir -p "$dir/$1/data"
  REGISTRY_DATA="$dir/$1/data" REGISTRY_PORT="$2" TLS_LINES="$3" \
    render "$templates/registry-config.yml" "$dir/$1/config.yml"
  # The config is the whole truth: REGISTRY_* variables would override it (clean_env has none).
  start_daemon "$1" "$dir/$1" "${clean_env[@]}" docker-registry serve "$dir/$1/config.yml"
}
start_registry registry "$REGISTRY_PORT" "$(printf '  tls:\n    certificate: "%s"\n    key: "%s"' \
  "$pki/registry.crt" "$pki/registry.key")"
start_registry registry-plain "$PLAIN_REGISTRY_PORT" ""

etcd_healthy() { curl -sf "http://127.0.0.1:$ETCD_PORT/health"; }
wait_for etcd "a healthy answer" 30 etcd_healthy
registry_answers() { curl -sf -o /dev/null --cacert "$pki/registry-ca.crt" "$1/v2/"; }
wait_for registry "an answer to GET /v2/" 30 registry_answers "https://127.0.0.1:$REGISTRY_PORT"
wait_for registry-plain "an answer to GET /v2/" 30 registry_answers "http://127.0.0.1:$PLAIN_REGISTRY_PORT"

# imagegate's own image, from an OCI layout: into the TLS registry (the kubelet pulls it through containerd's
# certs.d like any image), injected by digest.
if [[ -n "$check_layout" ]]; then
  mkdir -p "$dir/run/registry-certs"
  cp "$pki/registry-ca.crt" "$dir/run/registry-certs/ca.crt"
  check_repository="127.0.0.1:$REGISTRY_PORT/imagegate/imagegate"
  skopeo copy -q --dest-cert-dir "$dir/run/registry-certs" --digestfile "$dir/run/check-image.digest" \
    "oci:$check_layout" "docker://$check_repository:${check_layout##*:}" >"$dir/logs/check-image-push.log" 2>&1 || {
    say "pushing imagegate's image ($check_layout) to the registry failed:"
    cat "$dir/logs/check-image-push.log" >&2
    false
  }
  check_image="$check_repository@$(cat "$dir/run/check-image.digest")"
fi

# --- the API server -------------------------------------------------------------------------------------------------
# --endpoint-reconciler-type=none: it refuses a loopback advertise address otherwise (there is no Service network).
start_daemon kube-apiserver "$dir/apiserver" "${clean_env[@]}" "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
  --service-account-issuer="$SA_ISSUER" --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.217.1.0/24 \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority="$pki/ca.crt" \
  --kubelet-preferred-address-types=Hostname,InternalIP \
  --endpoint-reconciler-type=none --cert-dir="$dir/apiserver/certs" --v=1

# --- OpenBao: the Transit key, the workload's JWT role, the node's AppRole -----------------------------------------
vault_healthy() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$vault_addr/v1/sys/health")" == 200 ]]; }
wait_for openbao "sys/health 200" 30 vault_healthy
SA_PUBLIC_KEY_JSON="$(json_string "$pki/sa.pub")" render "$templates/vault-setup.yaml" "$dir/imagegate/vault-setup.yaml"
imagegate_as_root() { "${clean_env[@]}" "VAULT_ADDR=$vault_addr" "VAULT_TOKEN=$vault_token" "$node" "$imagegate_js" "$@"; }
imagegate_as_root vault setup --file "$dir/imagegate/vault-setup.yaml" >"$dir/logs/vault-setup.log" 2>&1 || {
  say "imagegate vault setup failed:"
  cat "$dir/logs/vault-setup.log" >&2
  false
}
vault_api() { # METHOD PATH
  curl -sf -X "$1" -H "X-Vault-Token: $vault_token" "$vault_addr/v1/$2"
}
node_role_id="$(vault_api GET auth/approle/role/imagegate-node/role-id | jq -er .data.role_id)"
vault_api POST auth/approle/role/imagegate-node/secret-id | jq -er .data.secret_id >"$dir/imagegate/node-secret-id"
chmod 600 "$dir/imagegate/node-secret-id"

# --- the node model: `imagegate keyprovider` as deploy/runtime says, with paths under DIR -------------------------
# The CLI from the repo's dist/ on Node 24, as one executable (the key-provider config names a command, no args for
# an interpreter).
cat >"$dir/imagegate/imagegate" <<EOF
#!/bin/sh
exec "$node" "$imagegate_js" "\$@"
EOF
chmod 755 "$dir/imagegate/imagegate"
# deploy/runtime/keyprovider.json's settings; the dev server speaks plain HTTP, so no VAULT_CACERT.
jq -n --arg addr "$vault_addr" --arg role "$node_role_id" --arg secret "$dir/imagegate/node-secret-id" \
  '{vault: {VAULT_ADDR: $addr, IMAGEGATE_VAULT_AUTH: "approle", VAULT_ROLE_ID: $role, VAULT_SECRET_ID_FILE: $secret}}' \
  >"$dir/imagegate/keyprovider.json"
mkdir -p "$dir/containerd/etc/ocicrypt/keys"
sed -e "s|/usr/local/bin/imagegate|$dir/imagegate/imagegate|g" -e "s|/etc/imagegate/|$dir/imagegate/|g" \
  "$repo/deploy/runtime/ocicrypt_keyprovider.cmd.conf" >"$dir/containerd/etc/ocicrypt/ocicrypt_keyprovider.conf"

# --- containerd -----------------------------------------------------------------------------------------------------
mkdir -p "$dir/containerd/cni" "$dir/containerd/certs.d/127.0.0.1:$REGISTRY_PORT" \
  "$dir/containerd/certs.d/127.0.0.1:$PLAIN_REGISTRY_PORT"
if [[ "$CONTAINERD_MAJOR" == 1 ]]; then
  render "$templates/containerd-config.toml" "$dir/containerd/config.toml"
  {
    echo
    echo "# ---- deploy/runtime/containerd/config-v2.toml, paths moved under $dir/containerd/etc ----"
    grep -v -E '^version *=' "$repo/deploy/runtime/containerd/config-v2.toml" |
      sed -e "s|/etc/containerd/|$dir/containerd/etc/|g" | "${keys_dir_filter[@]}"
  } >>"$dir/containerd/config.toml"
else
  # containerd 2 reads the shipped file as a node does, from conf.d through `imports` (containerd-config-v3.toml).
  mkdir -p "$dir/containerd/conf.d"
  render "$templates/containerd-config-v3.toml" "$dir/containerd/config.toml"
  sed -e "s|/etc/containerd/|$dir/containerd/etc/|g" "$repo/deploy/runtime/containerd/config-v3.toml" |
    "${keys_dir_filter[@]}" >"$dir/containerd/conf.d/imagegate.toml"
fi
render "$templates/cni.conflist" "$dir/containerd/cni/10-$CNI_NETWORK.conflist"
printf 'server = "https://127.0.0.1:%s"\n[host."https://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
  "$REGISTRY_PORT" "$REGISTRY_PORT" "$pki/registry-ca.crt" >"$dir/containerd/certs.d/127.0.0.1:$REGISTRY_PORT/hosts.toml"
printf 'server = "http://127.0.0.1:%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
  "$PLAIN_REGISTRY_PORT" "$PLAIN_REGISTRY_PORT" >"$dir/containerd/certs.d/127.0.0.1:$PLAIN_REGISTRY_PORT/hosts.toml"
# ctd-decoder through PATH, as the shipped config names it.
start_daemon containerd "$dir/containerd" env -i "HOME=$dir" "PATH=$containerd_path$bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
  "$containerd_bin" --config "$dir/containerd/config.toml"
ctr_() { "$ctr_bin" --address "$CONTAINERD_SOCKET" -n k8s.io "$@"; }
wait_for containerd "an answer on $CONTAINERD_SOCKET" 30 ctr_ version
ctr_ images import --base-name "${PAUSE_IMAGE%:*}" "$bin/pause.tar" >"$dir/logs/pause-import.log" 2>&1 || {
  say "importing $bin/pause.tar into containerd failed:"
  cat "$dir/logs/pause-import.log" >&2
  false
}

# --- the kubelet ----------------------------------------------------------------------------------------------------
api_ready() { [[ "$(kubectl get --raw /readyz 2>/dev/null)" == ok ]]; }
wait_for kube-apiserver "/readyz ok" 60 api_ready
mkdir -p "$dir/kubelet"/{root,certs,pod-logs,volume-plugins}
render "$templates/kubelet-config.yaml" "$dir/kubelet/config.yaml"
# PATH without /usr/sbin: the kubelet then finds no iptables and leaves the host's firewall alone.
start_daemon kubelet "$dir/kubelet" env -i "HOME=$dir" PATH=/usr/local/bin:/usr/bin:/bin "$bin/kubelet" \
  --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/kubelet/kubeconfig" --root-dir="$dir/kubelet/root" \
  --cert-dir="$dir/kubelet/certs" --hostname-override="$NODE" --v=2

# --- what a controller manager would do, while the kubelet registers -----------------------------------------------
ca_pem_json="$(json_string "$pki/ca.crt")"
: >"$dir/bootstrap.yaml"
for ns in default imagegate "$NAMESPACE"; do
  NS="$ns" CA_PEM_JSON="$ca_pem_json" render "$templates/namespace.yaml" "$dir/run/namespace.yaml"
  cat "$dir/run/namespace.yaml" >>"$dir/bootstrap.yaml"
done
for sa in "$SERVICE_ACCOUNT" "$OTHER_SERVICE_ACCOUNT" "$POLICY_ONLY_SERVICE_ACCOUNT"; do
  NS="$NAMESPACE" SA="$sa" render "$templates/service-account.yaml" "$dir/run/service-account.yaml"
  cat "$dir/run/service-account.yaml" >>"$dir/bootstrap.yaml"
done
rm -f "$dir/run/namespace.yaml" "$dir/run/service-account.yaml"
kubectl apply -f "$dir/bootstrap.yaml" >"$dir/logs/bootstrap.log" 2>&1 || {
  say "creating the namespaces and service accounts failed:"
  cat "$dir/logs/bootstrap.log" >&2
  false
}

# --- the admission webhook, from the chart's own files -----------------------------------------------------------
mkdir -p "$dir/webhook"
CA_BUNDLE_BASE64="$(base64 -w0 "$pki/ca.crt")" REGISTRY_PORT="$REGISTRY_PORT" PLAIN_REGISTRY_PORT="$PLAIN_REGISTRY_PORT" \
  render "$templates/chart-values.yaml" "$dir/webhook/values.yaml"
"$helm" template imagegate "$repo/deploy/helm/imagegate" --namespace imagegate -f "$dir/webhook/values.yaml" \
  --show-only templates/webhook-configurations.yaml --show-only templates/configmap-policy.yaml \
  >"$dir/webhook/chart.yaml" 2>"$dir/logs/helm.log" || {
  say "helm template deploy/helm/imagegate failed:"
  cat "$dir/logs/helm.log" >&2
  false
}
# YAML to JSON through kubectl (client side); one object or a List per document, whichever kubectl prints.
kubectl create --dry-run=client -o json -f "$dir/webhook/chart.yaml" |
  jq -s '[.[] | if .kind == "List" then .items[] else . end]' >"$dir/webhook/chart.json"
jq -er '.[] | select(.kind == "ConfigMap") | .data["policy.yaml"]' "$dir/webhook/chart.json" >"$dir/webhook/policy.yaml"
jq --arg base "https://127.0.0.1:$WEBHOOK_PORT" '{apiVersion: "v1", kind: "List", items: [.[]
    | select(.kind | endswith("WebhookConfiguration"))
    | .webhooks |= map(.clientConfig = {url: ($base + .clientConfig.service.path), caBundle: .clientConfig.caBundle})]}' \
  "$dir/webhook/chart.json" >"$dir/webhook/webhook-configurations.json"
check_flags=()
if [[ -n "$check_image" ]]; then
  # One OpenBao role per namespace (vault-setup.yaml), on the JWT mount with the API server's issuer key; the
  # injected containers trust the TLS registry's CA.
  check_flags=(--check-image "$check_image" --check-vault-addr "$vault_addr"
    --check-vault-role '{namespace}' --check-vault-auth jwt --check-auth-mount jwt-kubernetes
    --check-registry-ca "$pki/registry-ca.crt")
fi
# Registry look-ups trust the registry's CA and may use plain HTTP to the plain registry only.
start_daemon webhook "$dir/webhook" "${clean_env[@]}" "$node" "$imagegate_js" webhook serve \
  --listen "127.0.0.1:$WEBHOOK_PORT" --policy "$dir/webhook/policy.yaml" --cert "$pki/webhook.crt" \
  --key "$pki/webhook.key" --ca-cert "$pki/registry-ca.crt" --insecure-registry "127.0.0.1:$PLAIN_REGISTRY_PORT" \
  --no-pull-secrets "${check_flags[@]}"
webhook_healthy() { curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$WEBHOOK_PORT/healthz"; }
wait_for webhook "/healthz ok" 30 webhook_healthy
kubectl apply -f "$dir/webhook/webhook-configurations.json" >>"$dir/logs/bootstrap.log" 2>&1 || {
  say "installing the webhook configurations failed:"
  cat "$dir/logs/bootstrap.log" >&2
  false
}
# The API server picks the configurations up asynchronously: wait until a server-side dry run of a pod in the
# protected repository (whose image does not exist) is refused by imagegate.
webhook_effective() {
  local answer
  answer="$(kubectl -n "$NAMESPACE" run imagegate-probe --dry-run=server --restart=Never \
    --image="127.0.0.1:$REGISTRY_PORT/$NAMESPACE/webhook-probe:none" 2>&1)" && return 1
  [[ "$answer" == *imagegate.dev* ]]
}
wait_for webhook "the API server calling it" 30 webhook_effective

node_ready() {
  [[ "$(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for kubelet "node $NODE Ready" 60 node_ready

# --- cluster.env ------------------------------------------------------------------------------------------------------
cat >"$dir/cluster.env" <<EOF
KUBECONFIG=$kubeconfig
REGISTRY=127.0.0.1:$REGISTRY_PORT
REGISTRY_CA=$pki/registry-ca.crt
PLAIN_REGISTRY=127.0.0.1:$PLAIN_REGISTRY_PORT
PLAIN_REPOSITORY=127.0.0.1:$PLAIN_REGISTRY_PORT/$NAMESPACE/app
VAULT_ADDR=$vault_addr
VAULT_TOKEN=$vault_token
KEY=transit/$KEY_NAME
REPOSITORY=127.0.0.1:$REGISTRY_PORT/$NAMESPACE/app
NAMESPACE=$NAMESPACE
SERVICE_ACCOUNT=$SERVICE_ACCOUNT
OTHER_SERVICE_ACCOUNT=$OTHER_SERVICE_ACCOUNT
POLICY_ONLY_SERVICE_ACCOUNT=$POLICY_ONLY_SERVICE_ACCOUNT
RUNTIME_MODEL=$RUNTIME_MODEL
CHECK_IMAGE=$check_image
POLICY_FILE=$dir/webhook/policy.yaml
WEBHOOK_LOG=$dir/logs/webhook.log
NODE=$NODE
KUBECTL=$bin/kubectl
KUBECACHEDIR=$KUBECACHEDIR
CONTAINERD_ADDRESS=$CONTAINERD_SOCKET
IMAGEGATE=$dir/imagegate/imagegate
WEBHOOK_URL=https://127.0.0.1:$WEBHOOK_PORT
EOF
trap - ERR
say "up in $((SECONDS - started)) s: $dir/cluster.env"
