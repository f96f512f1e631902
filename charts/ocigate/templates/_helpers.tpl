{{/* Names and labels. */}}
{{- define "ocigate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ocigate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ocigate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ocigate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ocigate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ocigate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "ocigate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ocigate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ocigate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secret and ConfigMap names, the chart's own or the user's. */}}
{{- define "ocigate.tlsSecret" -}}
{{- default (printf "%s-tls" (include "ocigate.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}
{{- define "ocigate.htpasswdSecret" -}}
{{- default (printf "%s-htpasswd" (include "ocigate.fullname" .)) .Values.auth.htpasswd.existingSecret -}}
{{- end -}}
{{- define "ocigate.tokenKeysSecret" -}}
{{- default (printf "%s-token-keys" (include "ocigate.fullname" .)) .Values.auth.tokenService.existingSecret -}}
{{- end -}}
{{- define "ocigate.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "ocigate.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}
{{- define "ocigate.generateAdmin" -}}
{{- if and .Values.auth.htpasswd.generateAdmin (not .Values.auth.htpasswd.existingSecret) (not .Values.auth.htpasswd.users) -}}true{{- end -}}
{{- end -}}
{{- define "ocigate.hasHtpasswd" -}}
{{- if or .Values.auth.htpasswd.existingSecret .Values.auth.htpasswd.users (include "ocigate.generateAdmin" .) -}}true{{- end -}}
{{- end -}}
{{- define "ocigate.scheme" -}}
{{- if .Values.tls.enabled -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/*
The gateway's configuration. Every file it names is mounted under /etc/ocigate and named relative to the
config file (/etc/ocigate/config/ocigate.yaml), so `ocigate check-config` can check a rendered copy anywhere.
*/}}
{{- define "ocigate.config" -}}
listen:
  - addr: "0.0.0.0:{{ .Values.gateway.port }}"
    {{- if .Values.tls.enabled }}
    tls:
      cert: ../tls/tls.crt
      key: ../tls/tls.key
      {{- if .Values.tls.clientCA.enabled }}
      client_ca: ../client-ca/ca.crt
      require_client_cert: {{ .Values.tls.clientCA.required }}
      client_identity: {{ .Values.tls.clientCA.identity }}
      {{- end }}
    {{- end }}
admin:
  addr: "0.0.0.0:{{ .Values.gateway.adminPort }}"
upstream:
  {{- if eq .Values.mode "standalone" }}
  bundled:
    root: /data
    upload_ttl: {{ .Values.standalone.uploadTTL | quote }}
  {{- else if eq .Values.mode "sidecar" }}
  url: "http://127.0.0.1:{{ .Values.sidecar.registry.port }}"
  {{- else }}
  url: {{ required "edge.upstream.url is required in edge mode" .Values.edge.upstream.url | quote }}
  {{- with .Values.edge.upstream }}
  {{- if .caSecret }}
  ca: ../upstream-ca/ca.crt
  {{- end }}
  {{- if .insecureSkipVerify }}
  insecure_skip_verify: true
  {{- end }}
  {{- if eq .credentials.type "basic" }}
  credentials:
    basic:
      username: {{ .credentials.username | quote }}
      password_file: ../upstream-credentials/{{ .credentials.key }}
  {{- else if eq .credentials.type "bearer" }}
  credentials:
    bearer:
      token_file: ../upstream-credentials/{{ .credentials.key }}
  {{- else if eq .credentials.type "token" }}
  credentials:
    token:
      {{- if .credentials.username }}
      username: {{ .credentials.username | quote }}
      password_file: ../upstream-credentials/{{ .credentials.key }}
      {{- end }}
  {{- end }}
  timeouts:
    connect: {{ .timeouts.connect | quote }}
    read: {{ .timeouts.read | quote }}
  {{- end }}
  {{- end }}
auth:
  anonymous: {{ .Values.auth.anonymous }}
  realm: {{ .Values.auth.realm | quote }}
  {{- if include "ocigate.hasHtpasswd" . }}
  htpasswd: ../auth/htpasswd
  {{- end }}
  {{- with .Values.auth.groups }}
  groups:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.auth.trustedProxies }}
  trusted_proxies:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.auth.tokenService }}
  {{- if .enabled }}
  token_service:
    {{- if .service }}
    service: {{ .service | quote }}
    {{- end }}
    {{- if .realm }}
    realm: {{ .realm | quote }}
    {{- else if and $.Values.ingress.enabled $.Values.ingress.tls }}
    {{- $tls := first $.Values.ingress.tls }}
    {{- if $tls.hosts }}
    realm: {{ printf "https://%s/token" (first $tls.hosts) | quote }}
    {{- end }}
    {{- end }}
    lifetime: {{ .lifetime | quote }}
    refresh_lifetime: {{ .refreshLifetime | quote }}
    keys:
      {{- range .keys }}
      - ../token-keys/{{ . }}
      {{- end }}
  {{- end }}
  {{- end }}
  {{- with .Values.auth.issuers }}
  issuers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
policy:
  paths: [../policy]
  mode: {{ .Values.policy.mode }}
log:
  decisions: {{ .Values.gateway.decisions }}
{{- with .Values.gateway.threads }}
threads: {{ . }}
{{- end }}
shutdown_timeout: {{ .Values.gateway.shutdownTimeout | quote }}
{{- end -}}
