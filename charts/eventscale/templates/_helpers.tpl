{{/* Labels of every object: the kustomize install's, plus Helm's own. */}}
{{- define "eventscale.labels" -}}
app.kubernetes.io/part-of: eventscale
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* A CRD shipped in files/, kept when the release is uninstalled (deleting it would delete every ScaledObject). */}}
{{- define "eventscale.crd" -}}
{{- $crd := .root.Files.Get (printf "files/%s" .file) | fromYaml }}
{{- $annotations := merge (dict "helm.sh/resource-policy" "keep") ($crd.metadata.annotations | default dict) }}
{{- $_ := set $crd.metadata "annotations" $annotations }}
{{- $_ := set $crd.metadata "labels" (merge (include "eventscale.labels" .root | fromYaml) ($crd.metadata.labels | default dict)) }}
{{- toYaml $crd }}
{{- end }}

{{- define "eventscale.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Where a delegation.delegates entry is reached: its `url`, or its `service` (namespace defaults to the release's, port to 443). */}}
{{- define "eventscale.delegateTarget" -}}
{{- if .delegate.service -}}
service:{{ .delegate.service.namespace | default .namespace }}/{{ required "delegation.delegates[].service.name is required" .delegate.service.name }}:{{ .delegate.service.port | default 443 }}
{{- else -}}
{{ required "each delegation.delegates entry needs a url or a service" .delegate.url }}
{{- end -}}
{{- end }}
