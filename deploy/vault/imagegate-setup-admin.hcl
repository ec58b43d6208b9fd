# imagegate-setup-admin: what `imagegate vault setup` needs, instead of a root token. Hand-written (not generated);
# test/integration/vault-setup.test.ts runs a whole setup with a token holding only this policy.
# Change "transit" below if transit.mount in your setup document is elsewhere.

# Read which secrets engines and auth methods exist; enable missing ones (enabling an auth method needs sudo).
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/mounts/*" {
  capabilities = ["create", "update", "read"]
}

path "sys/auth" {
  capabilities = ["read"]
}

path "sys/auth/*" {
  capabilities = ["create", "update", "read", "sudo"]
}

# imagegate's own policies, and nothing else's.
path "sys/policies/acl/imagegate-*" {
  capabilities = ["create", "read", "update"]
}

# Create keys and fix their configuration (deletion_allowed, auto_rotate_period); no encrypt, decrypt or export.
path "transit/keys/*" {
  capabilities = ["create", "read", "update"]
}

# Auth method configuration and roles (JWT, Kubernetes, AppRole mounts).
path "auth/+/config" {
  capabilities = ["create", "read", "update"]
}

path "auth/+/role/*" {
  capabilities = ["create", "read", "update"]
}
