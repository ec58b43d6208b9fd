{{/* Chart name, at most 63 characters (a label value). */}}
{{- define "imagegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: RELEASE-imagegate, or RELEASE when that already says imagegate. */}}
{{- define "imagegate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "imagegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the webhook pods; never change them in an upgrade (selectors are immutable). */}}
{{- define "imagegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "imagegate.labels" -}}
helm.sh/chart: {{ include "imagegate.chart" . }}
{{ include "imagegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: imagegate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "imagegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imagegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* REPO@DIGEST when a digest is given, else REPO:TAG (the tag defaulting to the chart's appVersion). */}}
{{- define "imagegate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The injected init container's image: by digest, because the validating hook compares it exactly. */}}
{{- define "imagegate.injectionImage" -}}
{{- if .Values.injection.image }}
{{- .Values.injection.image }}
{{- else if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- fail "injection.enabled needs an image pinned by digest: set injection.image (REPO@sha256:…) or image.digest" }}
{{- end }}
{{- end }}

{{- define "imagegate.serviceName" -}}
{{- include "imagegate.fullname" . }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key (and ca.crt, except perhaps with an existing Secret). */}}
{{- define "imagegate.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "imagegate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "imagegate.policyConfigMapName" -}}
{{- default (printf "%s-policy" (include "imagegate.fullname" .)) .Values.existingPolicyConfigMap }}
{{- end }}

{{/* DNS names the serving certificate must carry: the Service, as the API server calls it, and its longer forms. */}}
{{- define "imagegate.dnsNames" -}}
{{- $svc := include "imagegate.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
Namespaces the webhooks are never called for: the release namespace (the webhook must be able to start itself),
the system namespaces, and the user's list. Matched by kubernetes.io/metadata.name, which only the API server sets.
*/}}
{{- define "imagegate.namespaceSelector" -}}
{{- $exempt := concat (list .Release.Namespace "kube-system" "kube-public" "kube-node-lease") .Values.webhook.exemptNamespaces | uniq -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml $exempt | nindent 6 }}
  {{- with .Values.webhook.namespaceSelectorExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Checks across values that the schema cannot express; rendered (as nothing) by every template that needs them. */}}
{{- define "imagegate.validate" -}}
{{- $timeoutMs := mul (int .Values.webhook.timeoutSeconds) 1000 }}
{{- if gt (mul (int .Values.webhook.budgetMs) 2) $timeoutMs }}
{{- fail (printf "webhook.budgetMs (%d) must be at most half of webhook.timeoutSeconds (%d s): the webhook must answer with its own verdict well before the API server gives up on it and applies failurePolicy" (int .Values.webhook.budgetMs) (int .Values.webhook.timeoutSeconds)) }}
{{- end }}
{{- if and (lt (int .Values.replicaCount) 2) (eq .Values.webhook.failurePolicy "Fail") (not .Values.allowSingleReplicaFailClosed) }}
{{- fail "replicaCount 1 with webhook.failurePolicy Fail: while the one webhook pod is down (its node drained, a crash, a node failure) the API server has no webhook to call and refuses every pod creation in the namespaces it covers, cluster-wide. Run replicaCount 2 or more (the default), or set allowSingleReplicaFailClosed: true where that is acceptable (a one-node test cluster)" }}
{{- end }}
{{- if ge (int .Values.preStopSleepSeconds) (int .Values.terminationGracePeriodSeconds) }}
{{- fail (printf "preStopSleepSeconds (%d) must be less than terminationGracePeriodSeconds (%d): the pod needs time left to finish admissions in flight after the sleep" (int .Values.preStopSleepSeconds) (int .Values.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if and (eq .Values.tls.mode "existingSecret") (or (not .Values.tls.existingSecret.name) (not .Values.tls.existingSecret.caBundle)) }}
{{- fail "tls.mode existingSecret needs tls.existingSecret.name and tls.existingSecret.caBundle (the base64 PEM of its CA)" }}
{{- end }}
{{- if .Values.injection.enabled }}
{{- if or (not .Values.injection.vaultAddr) (not .Values.injection.vaultRole) }}
{{- fail "injection.enabled needs injection.vaultAddr and injection.vaultRole (the Vault the init container asks, and the role pods log in as)" }}
{{- end }}
{{- $_ := include "imagegate.injectionImage" . }}
{{- end }}
{{- end }}

{{/* Arguments of `imagegate webhook serve` (the image's ENTRYPOINT is the imagegate CLI). */}}
{{- define "imagegate.args" -}}
- webhook
- serve
- --policy
- /etc/imagegate/policy/policy.yaml
- --cert
- /etc/imagegate/tls/tls.crt
- --key
- /etc/imagegate/tls/tls.key
- --listen
- {{ printf "%s:%d" (ternary (printf "[%s]" .Values.listenAddress) .Values.listenAddress (contains ":" .Values.listenAddress)) (int .Values.containerPort) | quote }}
- --budget-ms
- {{ .Values.webhook.budgetMs | int | quote }}
- --cache-ttl
- {{ .Values.webhook.cacheTtlSeconds | int | quote }}
- --negative-ttl
- {{ .Values.webhook.negativeTtlSeconds | int | quote }}
- --cache-size
- {{ .Values.webhook.cacheSize | int | quote }}
{{- if not .Values.pullSecrets.enabled }}
- --no-pull-secrets
{{- end }}
{{- if .Values.registry.authSecret.name }}
- --authfile
- /etc/imagegate/registry/auth.json
{{- end }}
{{- range $i, $ca := .Values.registry.caCertificates }}
- --ca-cert
- {{ printf "/etc/imagegate/registry-ca/ca-%d.crt" $i | quote }}
{{- end }}
{{- if .Values.injection.enabled }}
- --check-image
- {{ include "imagegate.injectionImage" . | quote }}
- --check-vault-addr
- {{ .Values.injection.vaultAddr | quote }}
- --check-vault-role
- {{ .Values.injection.vaultRole | quote }}
- --check-vault-auth
- {{ .Values.injection.vaultAuth | quote }}
- --check-audience
- {{ .Values.injection.audience | quote }}
{{- with .Values.injection.authMount }}
- --check-auth-mount
- {{ . | quote }}
{{- end }}
{{- end }}
{{- range .Values.webhook.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
