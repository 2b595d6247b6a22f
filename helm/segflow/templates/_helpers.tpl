{{- define "segflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "segflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "segflow.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "segflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "segflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "segflow.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{/* Environment every segflow container shares: endpoints, secrets, logging. */}}
{{- define "segflow.env" -}}
- name: SEGFLOW_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: SEGFLOW_KAFKA__SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.saslMechanism }}
- name: SEGFLOW_KAFKA__SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.saslUsername }}
- name: SEGFLOW_KAFKA__SASL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.existingSecret }}
- name: SEGFLOW_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.existingSecret }}
      key: {{ .Values.kafka.saslPasswordKey }}
{{- end }}
- name: SEGFLOW_KAFKA__COMMANDS_TOPIC
  value: {{ .Values.kafka.commandsTopic | quote }}
- name: SEGFLOW_KAFKA__DEAD_LETTER_TOPIC
  value: {{ .Values.kafka.deadLetterTopic | quote }}
- name: SEGFLOW_KAFKA__TOPIC_PARTITIONS
  value: {{ .Values.kafka.topicPartitions | quote }}
- name: SEGFLOW_KAFKA__TOPIC_REPLICATION_FACTOR
  value: {{ .Values.kafka.topicReplicationFactor | quote }}
- name: SEGFLOW_CASSANDRA__CONTACT_POINTS
  value: {{ .Values.cassandra.contactPoints | quote }}
- name: SEGFLOW_CASSANDRA__PORT
  value: {{ .Values.cassandra.port | quote }}
{{- with .Values.cassandra.localDc }}
- name: SEGFLOW_CASSANDRA__LOCAL_DC
  value: {{ . | quote }}
{{- end }}
- name: SEGFLOW_CASSANDRA__KEYSPACE
  value: {{ .Values.cassandra.keyspace | quote }}
- name: SEGFLOW_CASSANDRA__REPLICATION_CLASS
  value: {{ .Values.cassandra.replicationClass | quote }}
- name: SEGFLOW_CASSANDRA__REPLICATION_FACTOR
  value: {{ .Values.cassandra.replicationFactor | quote }}
{{- with .Values.cassandra.dcReplication }}
- name: SEGFLOW_CASSANDRA__DC_REPLICATION
  value: {{ toJson . | quote }}
{{- end }}
{{- with .Values.cassandra.username }}
- name: SEGFLOW_CASSANDRA__USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.cassandra.existingSecret }}
- name: SEGFLOW_CASSANDRA__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.cassandra.existingSecret }}
      key: {{ .Values.cassandra.passwordKey }}
{{- end }}
- name: SEGFLOW_LOG__LEVEL
  value: {{ .Values.log.level | quote }}
- name: SEGFLOW_LOG__FORMAT
  value: {{ .Values.log.format | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "segflow.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "segflow.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}
