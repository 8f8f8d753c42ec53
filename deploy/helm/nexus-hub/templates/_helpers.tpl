{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "nexus-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; room is left for the -frontend / -rpc suffixes. */}}
{{- define "nexus-hub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nexus-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object. */}}
{{- define "nexus-hub.labels" -}}
helm.sh/chart: {{ include "nexus-hub.chart" . }}
{{ include "nexus-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nexus-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nexus-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nexus-hub.rpcName" -}}
{{- printf "%s-rpc" (include "nexus-hub.fullname" .) }}
{{- end }}

{{- define "nexus-hub.frontendName" -}}
{{- printf "%s-frontend" (include "nexus-hub.fullname" .) }}
{{- end }}

{{- define "nexus-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret with the URLs and the token secret: the chart's own when values supply */}}
{{/* the credentials, else the operator's (secrets.existingSecret). */}}
{{- define "nexus-hub.secretName" -}}
{{- if and .Values.secrets.databaseUrl .Values.secrets.apiKeySecret }}
{{- include "nexus-hub.fullname" . }}
{{- else if or .Values.secrets.databaseUrl .Values.secrets.apiKeySecret }}
{{- fail "set both secrets.databaseUrl and secrets.apiKeySecret, or neither and name a Secret in secrets.existingSecret" }}
{{- else }}
{{- required "secrets.existingSecret: the name of a Secret with the keys in secrets.keys" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/* In-cluster URL of the rpc-server, for the frontend. */}}
{{- define "nexus-hub.rpcUrl" -}}
{{- printf "http://%s:%v" (include "nexus-hub.rpcName" .) .Values.rpc.service.port }}
{{- end }}

{{/* Host values the frontend accepts (NEXUS_MCP_ALLOWED_HOSTS). */}}
{{- define "nexus-hub.allowedHosts" -}}
{{- if .Values.frontend.allowedHosts }}
{{- join "," .Values.frontend.allowedHosts }}
{{- else }}
{{- $svc := include "nexus-hub.frontendName" . }}
{{- $hosts := list "localhost" "127.0.0.1" $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- if .Values.ingress.enabled }}
{{- $hosts = concat .Values.ingress.hosts $hosts }}
{{- end }}
{{- join "," $hosts }}
{{- end }}
{{- end }}

{{/* Public URL of /mcp (NEXUS_MCP_URL); empty means "from the Host header". */}}
{{- define "nexus-hub.publicUrl" -}}
{{- if .Values.frontend.publicUrl }}
{{- .Values.frontend.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- printf "%s://%s/mcp" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) (first .Values.ingress.hosts) }}
{{- end }}
{{- end }}
