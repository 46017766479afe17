{{/* Names and labels, the usual Helm way: one release per cluster is expected. */}}
{{- define "apisense.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "apisense.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "apisense.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apisense.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "apisense.labels" -}}
{{ include "apisense.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "apisense.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "apisense.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "apisense.openapiConfigMap" -}}
{{- if .Values.openapi.existingConfigMap }}
{{- .Values.openapi.existingConfigMap }}
{{- else if .Values.openapi.specs }}
{{- printf "%s-openapi" (include "apisense.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The agent's config.yaml, built as a map and serialised once, so every value is quoted and
nested correctly whatever the user passes. Paths here must match the mounts in daemonset.yaml.
*/}}
{{- define "apisense.config" -}}
{{- $c := dict
  "log" .Values.log
  "output" .Values.output
  "metrics_addr" (printf "0.0.0.0:%v" .Values.metrics.port)
  "state_dir" "/var/lib/apisense"
  "ports" .Values.ports
  "pids" (list)
  "openapi" (list)
  "ring_buffer_mib" .Values.ringBufferMiB
  "max_buffered_mib" .Values.maxBufferedMiB
  "max_connections" .Values.maxConnections
  "max_body_bytes" .Values.maxBodyBytes
  "sensitive" .Values.sensitive
  "kubernetes" (dict "enabled" .Values.kubernetes.enabled)
-}}
{{- if include "apisense.openapiConfigMap" . }}
{{- $_ := set $c "openapi" (list "/etc/apisense-openapi") }}
{{- end }}
{{- if .Values.otlp.enabled }}
{{- $o := dict "endpoint" .Values.otlp.endpoint "protocol" .Values.otlp.protocol "compression" .Values.otlp.compression }}
{{- with .Values.otlp.headers }}{{ $_ := set $o "headers" . }}{{ end }}
{{- with .Values.otlp.serviceName }}{{ $_ := set $o "service_name" . }}{{ end }}
{{- if .Values.otlp.caConfigMap }}{{ $_ := set $o "certificate" "/etc/apisense-otlp-ca/ca.pem" }}{{ end }}
{{- $_ := set $c "otlp" $o }}
{{- end }}
{{- toYaml (mergeOverwrite $c (deepCopy .Values.extraConfig)) }}
{{- end }}
