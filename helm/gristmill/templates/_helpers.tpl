{{/*
Names and labels shared by every template. Services are rendered with a context of
(dict "root" $ "service" $svc), since each template ranges over .Values.services.
*/}}

{{/* The release-wide base name, short enough to leave room for a service name. */}}
{{- define "gristmill.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one service's Deployment and PodDisruptionBudget. */}}
{{- define "gristmill.serviceName" -}}
{{- printf "%s-%s" (include "gristmill.fullname" .root) .service.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select one service's pods; never change them on an installed release. */}}
{{- define "gristmill.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service.name }}
{{- end -}}

{{- define "gristmill.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "gristmill.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/*
The env entries of a service's settings (already merged: its own over the release-wide ones).
A setting is an env var GRISTMILL_<NAME>; the Redis URL is refused here: it comes from the Secret.
*/}}
{{- define "gristmill.settingsEnv" -}}
{{- range $name, $value := . }}
{{- if eq (lower $name) "redis_url" }}
{{- fail "settings.redis_url: the Redis URL is a secret; set redis.existingSecret instead" }}
{{- end }}
- name: {{ printf "GRISTMILL_%s" (upper $name) }}
  {{- /* Helm reads numbers as float64: toJson keeps 1048576 from becoming 1.048576e+06 */}}
  value: {{ if kindIs "string" $value }}{{ $value | quote }}{{ else }}{{ $value | toJson | quote }}{{ end }}
{{- end }}
{{- end -}}
