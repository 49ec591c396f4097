{{/* Names, labels, images and the pieces every workload shares. */}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; components append -control, -proxy, -etcd (so at most 52). */}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.control.fullname" -}}{{ include "switchyard.fullname" . }}-control{{- end -}}
{{- define "switchyard.proxy.fullname" -}}{{ include "switchyard.fullname" . }}-proxy{{- end -}}
{{- define "switchyard.etcd.fullname" -}}{{ include "switchyard.fullname" . }}-etcd{{- end -}}
{{- define "switchyard.etcd.headless" -}}{{ include "switchyard.fullname" . }}-etcd-headless{{- end -}}
{{- define "switchyard.policy.configmap" -}}
{{- if .Values.bootstrapPolicy.existingConfigMap -}}
{{- .Values.bootstrapPolicy.existingConfigMap -}}
{{- else -}}
{{- include "switchyard.fullname" . }}-bootstrap-policy
{{- end -}}
{{- end -}}

{{- define "switchyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ include "switchyard.chart" . }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "proxy") */}}
{{- define "switchyard.componentLabels" -}}
{{ include "switchyard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchyard.componentSelector" -}}
{{ include "switchyard.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A Switchyard image: (dict "ctx" $ "image" .Values.proxy.image) */}}
{{- define "switchyard.image" -}}
{{- $g := .ctx.Values.image -}}
{{- $repo := .image.repository -}}
{{- if $g.registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $g.registry) $repo -}}{{- end -}}
{{- $tag := .image.tag | default $g.tag | default .ctx.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{- define "switchyard.pullPolicy" -}}
{{- .image.pullPolicy | default .ctx.Values.image.pullPolicy -}}
{{- end -}}

{{/*
The container security context: not configurable, every container gets it.
*/}}
{{- define "switchyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The pod-level part every pod template shares. */}}
{{- define "switchyard.podCommon" -}}
serviceAccountName: {{ include "switchyard.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Scheduling of one component: (dict "ctx" $ "v" .Values.proxy "component" "proxy").
Without an explicit affinity, replicas prefer different nodes.
*/}}
{{- define "switchyard.scheduling" -}}
{{- with .v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .v.affinity }}
affinity:
  {{- toYaml .v.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "switchyard.componentSelector" (dict "ctx" .ctx "component" .component) | nindent 14 }}
{{- end }}
{{- with .v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The etcd client URLs the control plane uses, comma-separated. */}}
{{- define "switchyard.etcd.endpoints" -}}
{{- if .Values.store.etcd.endpoints -}}
{{- join "," .Values.store.etcd.endpoints -}}
{{- else -}}
{{- $urls := list -}}
{{- $name := include "switchyard.etcd.fullname" . -}}
{{- $svc := include "switchyard.etcd.headless" . -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s.svc.%s:%d" $name $i $svc $.Release.Namespace $.Values.clusterDomain (int $.Values.etcd.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- end -}}

{{/* The --store argument of the control plane. */}}
{{- define "switchyard.storeSpec" -}}
{{- if eq .Values.store.type "file" -}}
file:/var/lib/switchyard/store
{{- else -}}
etcd:{{ include "switchyard.etcd.endpoints" . }}
{{- end -}}
{{- end -}}

{{/*
Extra environment variables, refusing a literal value for anything that looks like a
credential: (dict "env" .Values.proxy.extraEnv "path" "proxy.extraEnv")
*/}}
{{- define "switchyard.extraEnv" -}}
{{- range $i, $e := .env }}
{{- if and (hasKey $e "value") (regexMatch "(?i)(key|token|secret|password|passwd|credential)" $e.name) }}
{{- fail (printf "%s[%d] (%s): a credential must not be a plain value in the chart's values; put it in a Secret and use valueFrom.secretKeyRef (or proxy.providerKeys)" $.path $i $e.name) }}
{{- end }}
- {{ toYaml $e | nindent 2 | trim }}
{{- end }}
{{- end -}}
