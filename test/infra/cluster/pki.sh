#!/usr/bin/env bash
# A throwaway PKI for the one-node test cluster, written into DIR: one CA signs the API server's and the kubelet's
# serving certificates and every client certificate; sa.key/sa.pub sign and verify service-account tokens.
# Identities are client certificates (O = group, CN = user), so the Node authorizer and NodeRestriction see the
# kubelet as system:node:NODE, as in a real cluster.
# Usage: pki.sh DIR NODE
set -euo pipefail
dir="$1" node="$2"
mkdir -p "$dir"
cd "$dir"

ec_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt, signed by ca.crt, valid for 2 days (a test cluster).
sign() {
  ec_key "$1"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%b\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" \
    -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ec_key ca
openssl req -x509 -new -key ca.key -subj "/CN=imagegate-cluster-ca" -days 2 -out ca.crt 2>/dev/null
sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
sign admin "/O=system:masters/CN=imagegate-cluster-admin" "extendedKeyUsage=clientAuth"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
sign kubelet "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
sign kubelet-serving "/CN=$node" "subjectAltName=DNS:$node,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
sign webhook "/CN=imagegate-webhook" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
# The registry's own CA, apart from the cluster's: what a private registry with its own CA looks like to a node.
ec_key registry-ca
openssl req -x509 -new -key registry-ca.key -subj "/CN=imagegate-cluster-registry-ca" -days 2 \
  -out registry-ca.crt 2>/dev/null
ec_key registry
openssl req -new -key registry.key -subj "/CN=127.0.0.1" -out registry.csr 2>/dev/null
printf '%b\n' "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth" >registry.ext
openssl x509 -req -in registry.csr -CA registry-ca.crt -CAkey registry-ca.key -CAcreateserial -days 2 \
  -extfile registry.ext -out registry.crt 2>/dev/null
rm -f registry.csr registry.ext
# RSA: the service-account key OpenBao's JWT auth verifies tokens with.
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key
