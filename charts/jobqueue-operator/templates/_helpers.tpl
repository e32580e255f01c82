{{/* Chart name, overridable. */}}
{{- define "jobqueue-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name (63 characters at most: some name fields are DNS labels). When the
release name already contains the chart name it is used as is.
*/}}
{{- define "jobqueue-operator.fullname" -}}
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

{{- define "jobqueue-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jobqueue-operator.labels" -}}
helm.sh/chart: {{ include "jobqueue-operator.chart" . }}
{{ include "jobqueue-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "jobqueue-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobqueue-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jobqueue-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jobqueue-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jobqueue-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "jobqueue-operator.leaseName" -}}
{{- default (include "jobqueue-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
What the operator does in each namespace it watches; tests/chart_rbac/ runs the operator
against a recording API server and checks every request it makes is granted here.
*/}}
{{- define "jobqueue-operator.rules" -}}
# Watch JobQueues and Schedules; patch adds and removes the cleanup finalizer. A Schedule's
# queue is read with get.
- apiGroups: ["jobqueue.io"]
  resources: ["jobqueues"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["jobqueue.io"]
  resources: ["schedules"]
  verbs: ["list", "watch", "patch"]
# Status is written with server-side apply.
- apiGroups: ["jobqueue.io"]
  resources: ["jobqueues/status", "schedules/status"]
  verbs: ["patch"]
# Worker Deployments made from workers.template, by server-side apply (which Kubernetes
# authorizes as create when the Deployment does not exist yet).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Replicas are read and set through the scale subresource (worker Deployments, and the kinds
# workers.scaleTargetRef may name: rbac.scaleTargets).
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
{{- range .Values.rbac.scaleTargets }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: ["get", "patch"]
{{- end }}
# Worker pods: which consumers are alive, and pod-deletion-cost before a scale-in.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# spec.redis.urlSecretRef (get); the Secret giving a queue's workers the default Redis URL,
# written by server-side apply (create, patch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Events about JobQueues and Schedules (kube-runtime's Recorder creates, then patches a series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
The Secret holding the dashboard's action token: the one named, or the one the chart creates.
*/}}
{{- define "jobqueue-operator.dashboardTokenSecret" -}}
{{- default (printf "%s-dashboard-token" (include "jobqueue-operator.fullname" .)) .Values.dashboard.actions.existingSecret }}
{{- end }}
