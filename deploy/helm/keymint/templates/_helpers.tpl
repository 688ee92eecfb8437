{{/* The release's object name: the release name, or release-keymint. */}}
{{- define "keymint.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the server pods; never change on upgrade. */}}
{{- define "keymint.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "keymint.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: keymint
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image, by digest when one is given. */}}
{{- define "keymint.image" -}}
{{- if .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .Values.image.digest) -}}
{{- fail "image.digest must be sha256: and 64 hex digits" -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Checks values that templates cannot express. */}}
{{- define "keymint.validate" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set exactly one of minAvailable and maxUnavailable (the other to null)" -}}
{{- end -}}
{{- if and .Values.persistence.enabled .Values.autoscaling.enabled -}}
{{- fail "persistence (one SQLite file) cannot be shared by replicas: set autoscaling.enabled=false" -}}
{{- end -}}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) -}}
{{- fail "persistence (one SQLite file) cannot be shared by replicas: set replicaCount=1" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- fail "secrets.existingSecret: name the Secret holding pepper, database-url and redis-url" -}}
{{- end -}}
{{- range $k, $v := .Values.config.extra -}}
{{- if not (hasPrefix "KEYMINT_" $k) -}}
{{- fail (printf "config.extra.%s is no KEYMINT_* setting" $k) -}}
{{- end -}}
{{- if has $k (list "KEYMINT_PEPPER" "KEYMINT_DATABASE_URL" "KEYMINT_DATABASE_READ_URL" "KEYMINT_REDIS_URL") -}}
{{- fail (printf "config.extra.%s is a secret: it is read from secrets.existingSecret" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's data (also hashed into the pod template). */}}
{{- define "keymint.configData" -}}
# In a container keymint must listen on all interfaces (defaults are loopback).
KEYMINT_HTTP_ADDR: "0.0.0.0:8080"
KEYMINT_GRPC_ADDR: "0.0.0.0:9090"
KEYMINT_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
KEYMINT_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
KEYMINT_TOKEN_PREFIX: {{ .Values.config.tokenPrefix | quote }}
KEYMINT_SHUTDOWN_TIMEOUT: {{ .Values.config.shutdownTimeout | quote }}
{{- if .Values.config.trustedProxies }}
KEYMINT_TRUSTED_PROXIES: {{ .Values.config.trustedProxies | quote }}
{{- end }}
{{- if .Values.persistence.enabled }}
# The embedded store and its generated pepper, on the PersistentVolume.
KEYMINT_DATA_DIR: "/data"
{{- end }}
{{- range $k, $v := .Values.config.extra }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* One variable read from secrets.existingSecret: (list $ NAME valueKey),
valueKey naming the entry in secrets.keys and secrets.optional. */}}
{{- define "keymint.secretEnv" -}}
{{- $v := (index . 0).Values.secrets -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret }}
      key: {{ index $v.keys (index . 2) }}
      optional: {{ index $v.optional (index . 2) }}
{{- end -}}
