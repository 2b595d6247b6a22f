{{/* The chart's name, or nameOverride (the app.kubernetes.io/name label). */}}
{{- define "segflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object's name: fullnameOverride, else the release name, followed by the
chart's name unless the release name already contains it ("segflow" -> segflow-consumer,
"prod" -> prod-segflow-consumer).
*/}}
{{- define "segflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "segflow.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "segflow.labels" -}}
app.kubernetes.io/name: {{ include "segflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "segflow.selector" -}}
app.kubernetes.io/name: {{ include "segflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Metadata of a segflow pod template: the chart's labels, the component, podLabels, and
podAnnotations. Call with (dict "root" $ "component" "consumer").
*/}}
{{- define "segflow.podMetadata" -}}
labels:
  {{- include "segflow.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with merge (dict) (.annotations | default dict) (.root.Values.podAnnotations | default dict) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
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
{{- with (include "segflow.kafkaCaFile" .) }}
- name: SEGFLOW_KAFKA__SSL_CA_LOCATION
  value: {{ . | quote }}
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
{{- if .Values.cassandra.tls.enabled }}
- name: SEGFLOW_CASSANDRA__TLS_CA_FILE
  value: {{ ternary "/etc/segflow/tls/cassandra/ca.crt" "/etc/ssl/certs/ca-certificates.crt" (ne .Values.cassandra.tls.caSecret "") | quote }}
- name: SEGFLOW_CASSANDRA__TLS_VERIFY_HOSTNAME
  value: {{ .Values.cassandra.tls.verifyHostname | quote }}
{{- end }}
- name: SEGFLOW_LOG__LEVEL
  value: {{ .Values.log.level | quote }}
- name: SEGFLOW_LOG__FORMAT
  value: {{ .Values.log.format | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* podSecurityContext / securityContext values (defaults: non-root, read-only, no caps). */}}
{{- define "segflow.podSecurity" -}}
{{- with .Values.podSecurityContext -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "segflow.containerSecurity" -}}
{{- with .Values.securityContext -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
Scheduling of a component's pods: priorityClassName and topologySpreadConstraints, each
constraint selecting the component's own pods unless it brings a labelSelector. Call with
(dict "root" $ "component" "consumer" "values" .Values.consumer).
*/}}
{{- define "segflow.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- $selector := include "segflow.selector" (dict "root" .root "component" .component) | fromYaml }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := mergeOverwrite (dict "labelSelector" (dict "matchLabels" $selector)) (deepCopy .) }}
{{- toYaml (list $constraint) | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}


{{/*
CA bundle librdkafka verifies the brokers with: the mounted kafka.tls.caSecret, else the
image's system bundle (the wheels' bundled OpenSSL does not look there by itself). Empty
without TLS.
*/}}
{{- define "segflow.kafkaCaFile" -}}
{{- if .Values.kafka.tls.caSecret -}}
/etc/segflow/tls/kafka/ca.crt
{{- else if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") -}}
/etc/ssl/certs/ca-certificates.crt
{{- end -}}
{{- end -}}

{{/*
Refuses value combinations that render but cannot work (the schema checks single values).
Included once, by the consumer Deployment, which every release renders.
*/}}
{{- define "segflow.validate" -}}
{{- $k := .Values.kafka }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
{{- if not $k.saslMechanism }}
{{- fail "kafka.securityProtocol SASL_* needs kafka.saslMechanism" }}
{{- end }}
{{- if and (has $k.saslMechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) (not (and $k.saslUsername $k.existingSecret)) }}
{{- fail "kafka.saslMechanism PLAIN/SCRAM needs kafka.saslUsername and kafka.existingSecret (the password)" }}
{{- end }}
{{- end }}
{{- $c := .Values.cassandra }}
{{- if and $c.username (not $c.existingSecret) }}
{{- fail "cassandra.username needs cassandra.existingSecret (the password)" }}
{{- end }}
{{- if and $c.tls.caSecret (not $c.tls.enabled) }}
{{- fail "cassandra.tls.caSecret is set but cassandra.tls.enabled is false" }}
{{- end }}
{{- $auto := .Values.consumer.autoscaling }}
{{- if and $auto.hpa $auto.keda }}
{{- fail "consumer.autoscaling: enable hpa or keda, not both" }}
{{- end }}
{{- if gt (int $auto.minReplicas) (int $auto.maxReplicas) }}
{{- fail "consumer.autoscaling.minReplicas must not exceed consumer.autoscaling.maxReplicas" }}
{{- end }}
{{- if gt (int $auto.maxReplicas) (int $k.topicPartitions) }}
{{- fail "consumer.autoscaling.maxReplicas must not exceed kafka.topicPartitions (extra replicas get no partition)" }}
{{- end }}
{{- if gt (int .Values.consumer.replicas) (int $k.topicPartitions) }}
{{- fail "consumer.replicas must not exceed kafka.topicPartitions (a replica without a partition is never ready)" }}
{{- end }}
{{- if and .Values.consumer.writerSchemas.files .Values.consumer.writerSchemas.existingConfigMap }}
{{- fail "consumer.writerSchemas: set files or existingConfigMap, not both" }}
{{- end }}
{{- end -}}

{{/* Volumes of the TLS CA secrets, the shared /tmp and extraVolumes (every segflow pod). */}}
{{- define "segflow.volumes" -}}
- name: tmp
  emptyDir: {}
{{- with .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    items:
      - key: {{ $.Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- if and .Values.cassandra.tls.enabled .Values.cassandra.tls.caSecret }}
- name: cassandra-ca
  secret:
    secretName: {{ .Values.cassandra.tls.caSecret }}
    items:
      - key: {{ .Values.cassandra.tls.caKey }}
        path: ca.crt
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "segflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/segflow/tls/kafka
  readOnly: true
{{- end }}
{{- if and .Values.cassandra.tls.enabled .Values.cassandra.tls.caSecret }}
- name: cassandra-ca
  mountPath: /etc/segflow/tls/cassandra
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}
