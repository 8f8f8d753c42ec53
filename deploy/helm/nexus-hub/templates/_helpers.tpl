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

{{/* The NATS servers' StatefulSet, and its headless Service (routes and per-pod names). */}}
{{- define "nexus-hub.natsName" -}}
{{- printf "%s-nats" (include "nexus-hub.fullname" .) }}
{{- end }}

{{/* NEXUS_BUS_URL: bus.url, else the chart's NATS servers (every one, so clients fail */}}
{{/* over), else empty. */}}
{{- define "nexus-hub.busUrl" -}}
{{- if .Values.bus.url }}
{{- .Values.bus.url }}
{{- else if .Values.nats.enabled }}
{{- $name := include "nexus-hub.natsName" . }}
{{- $servers := list }}
{{- range $i := until (int .Values.nats.replicas) }}
{{- $servers = append $servers (printf "%s-%d.%s.%s.svc:4222" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- printf "nats://%s" (join "," $servers) }}
{{- end }}
{{- end }}

{{/* "true" when the bus is NATS (its nodes then need credentials), else empty. */}}
{{- define "nexus-hub.busIsNats" -}}
{{- $url := include "nexus-hub.busUrl" . | lower }}
{{- if or (hasPrefix "nats://" $url) (hasPrefix "tls://" $url) }}
{{- $_ := required "a nats:// bus needs node credentials: bus.natsCredsSecret (a Secret with one .creds per role, from nexus hub cluster add-node)" .Values.bus.natsCredsSecret -}}
true
{{- end }}
{{- end }}

{{/* The bus's environment of one role's pods: (dict "ctx" $ "role" "rpc"|"frontend"). */}}
{{- define "nexus-hub.busEnv" -}}
{{- $ctx := .ctx }}
{{- with include "nexus-hub.busUrl" $ctx }}
- name: NEXUS_BUS_URL
  value: {{ . | quote }}
{{- end }}
{{- if include "nexus-hub.busIsNats" $ctx }}
- name: NEXUS_NATS_CREDS
  value: /etc/nexus/nats/node.creds
- name: NEXUS_NATS_REPLICAS
  value: {{ $ctx.Values.bus.replicas | quote }}
- name: NEXUS_NODE_NAME
  value: {{ index $ctx.Values.bus.nodeNames .role | quote }}
{{- end }}
{{- end }}

{{/* The read-only mount of one role's credential: (dict "ctx" $ "role" …), under volumes:. */}}
{{- define "nexus-hub.natsCredsVolume" -}}
{{- if include "nexus-hub.busIsNats" .ctx }}
- name: nats-creds
  secret:
    secretName: {{ .ctx.Values.bus.natsCredsSecret }}
    defaultMode: 0400
    items:
      - key: {{ index .ctx.Values.bus.natsCredsKeys .role }}
        path: node.creds
        mode: 0400
{{- end }}
{{- end }}
