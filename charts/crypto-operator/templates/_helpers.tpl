{{/*
Chart name (app.kubernetes.io/name; also the Prometheus job via the
ServiceMonitor's jobLabel).
*/}}
{{- define "crypto-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every object: "<release>-crypto-operator", or the release name
when it already contains the chart name.
*/}}
{{- define "crypto-operator.fullname" -}}
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

{{- define "crypto-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "crypto-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crypto-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crypto-operator.labels" -}}
helm.sh/chart: {{ include "crypto-operator.chart" . }}
{{ include "crypto-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "crypto-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crypto-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "crypto-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Prefix of the replica Leases (<prefix>-replica-<pod>, <prefix>-janitor) and
the value of their crypto.fleet.dev/lease-group label: the release's full
name unless set, so two releases in one namespace never share Leases.
*/}}
{{- define "crypto-operator.leasePrefix" -}}
{{- default (include "crypto-operator.fullname" .) .Values.membership.leasePrefix }}
{{- end }}

{{/*
The Secret holding the peer token (the user's, or the chart's own) and its key.
*/}}
{{- define "crypto-operator.peerTokenSecret" -}}
{{- default (printf "%s-peer-token" (include "crypto-operator.fullname" .)) .Values.peerToken.existingSecret }}
{{- end }}

{{- define "crypto-operator.peerTokenKey" -}}
{{- if .Values.peerToken.existingSecret }}{{ .Values.peerToken.key }}{{ else }}token{{ end }}
{{- end }}

{{/*
A number from values (a float64 once Helm has read it) as a flag value:
whole numbers without a fraction or exponent ("1000000", not "1e+06").
*/}}
{{- define "crypto-operator.number" -}}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
A duration in the operator's syntax ("250ms", "10s", "5m", "1h") in whole
seconds, rounded up. The schema has already checked the syntax.
*/}}
{{- define "crypto-operator.durationSeconds" -}}
{{- $n := regexFind "^[0-9]+" . | int64 }}
{{- $unit := regexReplaceAll "^[0-9]+" . "" }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ fail (printf "%q is not a duration (use ms, s, m or h)" .) }}
{{- end }}
{{- end }}

{{/*
The RBAC rules for CryptoClients and their Events, the same whether granted
cluster-wide (ClusterRole) or per watched namespace (Role).
*/}}
{{- define "crypto-operator.clientRules" -}}
- apiGroups: ["crypto.fleet.dev"]
  resources: ["cryptoclients"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["crypto.fleet.dev"]
  resources: ["cryptoclients/status"]
  verbs: ["get", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
