{{/*
Rules values.schema.json cannot express (one value constraining another). A failed rule stops
the install with a message naming the values.
*/}}
{{- define "jobqueue-operator.validate" -}}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "redis.url and redis.existingSecret are mutually exclusive: set one (a URL with a password belongs in the Secret)" }}
{{- end }}
{{- if and .Values.redis.existingSecret (not .Values.redis.existingSecretKey) }}
{{- fail "redis.existingSecretKey must name the key of redis.existingSecret that holds the URL" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) }}
{{- if kindIs "invalid" $pdb.minAvailable }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}
{{- if and (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be less than replicaCount (%v), or no operator pod could ever be evicted and node drains would block" $pdb.minAvailable .Values.replicaCount) }}
{{- end }}
{{- end }}
{{- if and .Values.dashboard.enabled (eq (int .Values.dashboard.port) (int .Values.metrics.port)) }}
{{- fail (printf "dashboard.port (%v) must differ from metrics.port (%v): each is served on its own port" .Values.dashboard.port .Values.metrics.port) }}
{{- end }}
{{- if and .Values.dashboard.actions.enabled (not .Values.dashboard.enabled) }}
{{- fail "dashboard.actions.enabled needs dashboard.enabled" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: a ServiceMonitor scrapes through the Service" }}
{{- end }}
{{- end }}
