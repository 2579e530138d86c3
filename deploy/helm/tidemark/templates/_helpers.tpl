{{/* The six services, in the order objects are rendered. */}}
{{- define "tidemark.serviceNames" -}}
connector ingest orchestrator jobs schema impact
{{- end -}}

{{/*
The URL path prefixes each service owns; the Ingress routes them and tests/deploy checks they cover
every public route of every service and that no two services share one.
*/}}
{{- define "tidemark.ingressPrefixes" -}}
connector: [/v1/connections, /v1/connector-types, /v1/tokens]
ingest: [/v1/workers, /v1/tables]
orchestrator: [/v1/pipelines]
jobs: [/v1/runs, /jobs]
schema: [/v1/schemas, /v1/drift]
impact: [/v1/impact, /v1/downstreams, /v1/lineage, /v1/alerts, /v1/alert-rules]
{{- end -}}

{{- define "tidemark.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped prefix of every object's name; short enough that "<fullname>-orchestrator-migrate" fits 63. */}}
{{- define "tidemark.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tidemark.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tidemark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tidemark
{{- end -}}

{{/* Selector labels of one service: call with (dict "root" $ "svc" "ingest"). */}}
{{- define "tidemark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tidemark.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc }}-svc
{{- end -}}

{{- define "tidemark.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tidemark.serviceAccountName" -}}
{{- printf "%s-%s" (include "tidemark.fullname" .root) .svc -}}
{{- end -}}

{{- define "tidemark.workerServiceAccountName" -}}
{{- if .Values.launcher.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "tidemark.fullname" .)) .Values.launcher.serviceAccount.name -}}
{{- else -}}
{{- .Values.launcher.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* In-cluster base URL of a service. */}}
{{- define "tidemark.serviceUrl" -}}
{{- printf "http://%s-%s.%s.svc:%v" (include "tidemark.fullname" .root) .svc .root.Release.Namespace .root.Values.service.port -}}
{{- end -}}

{{- define "tidemark.tokensMountPath" -}}/etc/tidemark/tokens{{- end -}}

{{/*
Every variable of a service that comes from a Secret, as JSON {VAR: {"name": secret, "key": key}}: one
source for the container's env and for the worker's SECRET_REFS, so a worker reads each secret from the
same Secret key as ingest-svc. Call with (dict "root" $ "svc" "ingest").
*/}}
{{- define "tidemark.secretVars" -}}
{{- $v := .root.Values -}}
{{- $p := printf "TIDEMARK_%s__" (upper .svc) -}}
{{- $out := dict -}}
{{- $_ := set $out "TIDEMARK_INTERNAL_TOKEN" $v.auth.internalTokenSecret -}}
{{- $dbKey := index $v.database.urlKeys .svc -}}
{{- $_ := set $out (printf "%sDATABASE__URL" $p) (dict "name" $v.database.existingSecret "key" $dbKey) -}}
{{- if $v.kafka.sasl.passwordSecret.name -}}
{{- $_ := set $out (printf "%sKAFKA__SASL_PASSWORD" $p) $v.kafka.sasl.passwordSecret -}}
{{- end -}}
{{- if eq .svc "connector" -}}
{{- $_ := set $out (printf "%sSECRET_KEY" $p) $v.connector.secretKeySecret -}}
{{- if $v.connector.previousSecretKeysSecret.name -}}
{{- $_ := set $out (printf "%sPREVIOUS_SECRET_KEYS" $p) $v.connector.previousSecretKeysSecret -}}
{{- end -}}
{{- end -}}
{{- if eq .svc "ingest" -}}
{{- $l := $v.lakehouse -}}
{{- $lp := printf "%sLAKEHOUSE__" $p -}}
{{- $_ := set $out (printf "%sCATALOG_URI" $lp) $l.catalogUriSecret -}}
{{- range $var, $ref := dict "CATALOG_CREDENTIAL" $l.catalogCredentialSecret "CATALOG_TOKEN" $l.catalogTokenSecret "PROPERTIES" $l.propertiesSecret "S3__ACCESS_KEY_ID" $l.s3.accessKeyIdSecret "S3__SECRET_ACCESS_KEY" $l.s3.secretAccessKeySecret "S3__SESSION_TOKEN" $l.s3.sessionTokenSecret "AZURE__ACCOUNT_KEY" $l.azure.accountKeySecret "AZURE__SAS_TOKEN" $l.azure.sasTokenSecret "AZURE__CONNECTION_STRING" $l.azure.connectionStringSecret -}}
{{- if $ref.name -}}
{{- $_ := set $out (printf "%s%s" $lp $var) $ref -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The environment of a service's container (also the migration hook's): call with (dict "root" $ "svc" "ingest"). */}}
{{- define "tidemark.env" -}}
{{- $v := .root.Values -}}
{{- $p := printf "TIDEMARK_%s__" (upper .svc) -}}
- name: TIDEMARK_ENVIRONMENT
  value: production
- name: TIDEMARK_HOME
  value: /home/tidemark/.tidemark
{{- if $v.egressAllow }}
- name: TIDEMARK_EGRESS_ALLOW
  value: {{ $v.egressAllow | quote }}
{{- end }}
{{- range $name, $ref := (include "tidemark.secretVars" . | fromJson) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
- name: {{ $p }}AUTH__TOKENS_FILE
  value: {{ include "tidemark.tokensMountPath" . }}/{{ $v.auth.tokensSecret.key }}
- name: {{ $p }}DATABASE__POOL_SIZE
  value: {{ $v.database.poolSize | quote }}
- name: {{ $p }}KAFKA__BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: {{ $p }}KAFKA__TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: {{ $p }}KAFKA__SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
- name: {{ $p }}KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | quote }}
- name: {{ $p }}KAFKA__REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | quote }}
{{- if $v.kafka.tls.caSecret.name }}
- name: {{ $p }}KAFKA__SSL_CAFILE
  value: /etc/tidemark/kafka-ca/{{ $v.kafka.tls.caSecret.key }}
{{- end }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
- name: {{ $p }}KAFKA__SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: {{ $p }}KAFKA__SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
{{- end }}
- name: {{ $p }}LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: {{ $p }}LOG_FORMAT
  value: {{ $v.logFormat | quote }}
{{- if has .svc (list "ingest" "orchestrator" "schema") }}
- name: {{ $p }}CONNECTOR_URL
  value: {{ include "tidemark.serviceUrl" (dict "root" .root "svc" "connector") | quote }}
{{- end }}
{{- if eq .svc "ingest" }}
{{- include "tidemark.ingestEnv" .root }}
{{- end }}
{{- range $name, $value := (index $v.services .svc).settings }}
- name: {{ $p }}{{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with (index $v.services .svc).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ingest-svc's lakehouse (plain parts) and launcher settings. */}}
{{- define "tidemark.ingestEnv" -}}
{{- $v := .Values -}}
{{- $l := $v.lakehouse -}}
{{- $lp := "TIDEMARK_INGEST__LAKEHOUSE__" }}
- name: {{ $lp }}CATALOG_TYPE
  value: {{ $l.catalogType | quote }}
- name: {{ $lp }}WAREHOUSE
  value: {{ $l.warehouse | quote }}
- name: {{ $lp }}MERGE_STRATEGY
  value: {{ $l.mergeStrategy | quote }}
{{- range $var, $value := dict "CATALOG_WAREHOUSE" $l.catalogWarehouse "CATALOG_OAUTH2_URI" $l.catalogOauth2Uri "S3__ENDPOINT" $l.s3.endpoint "AZURE__ACCOUNT_NAME" $l.azure.accountName "AZURE__BLOB_ENDPOINT" $l.azure.blobEndpoint }}
{{- if $value }}
- name: {{ $lp }}{{ $var }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
- name: {{ $lp }}S3__REGION
  value: {{ $l.s3.region | quote }}
- name: {{ $lp }}S3__PATH_STYLE
  value: {{ $l.s3.pathStyle | quote }}
- name: TIDEMARK_INGEST__LAUNCHER
  value: {{ $v.launcher.type | quote }}
- name: TIDEMARK_INGEST__WORKER_IMAGE
  value: {{ default (include "tidemark.image" .) $v.launcher.workerImage | quote }}
{{- if eq $v.launcher.type "kubernetes" }}
{{- $kp := "TIDEMARK_INGEST__KUBERNETES__" }}
{{- $refs := dict }}
{{- range $name, $ref := (include "tidemark.secretVars" (dict "root" . "svc" "ingest") | fromJson) }}
{{- /* The worker needs the database, the internal token and the lakehouse secrets; not Kafka. The S3 access
key id is no secret to the worker spec: ingest-svc hands it over as a plain value. */}}
{{- if and (or (eq $name "TIDEMARK_INTERNAL_TOKEN" "TIDEMARK_INGEST__DATABASE__URL") (hasPrefix "TIDEMARK_INGEST__LAKEHOUSE__" $name)) (ne $name "TIDEMARK_INGEST__LAKEHOUSE__S3__ACCESS_KEY_ID") }}
{{- $_ := set $refs $name (printf "%s:%s" $ref.name $ref.key) }}
{{- end }}
{{- end }}
- name: {{ $kp }}NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: {{ $kp }}IN_CLUSTER
  value: "true"
- name: {{ $kp }}SERVICE_ACCOUNT
  value: {{ include "tidemark.workerServiceAccountName" . | quote }}
- name: {{ $kp }}IMAGE_PULL_POLICY
  value: {{ default $v.image.pullPolicy $v.launcher.imagePullPolicy | quote }}
- name: {{ $kp }}TTL_SECONDS_AFTER_FINISHED
  value: {{ $v.launcher.ttlSecondsAfterFinished | quote }}
- name: {{ $kp }}STUCK_DEADLINE_SECONDS
  value: {{ $v.launcher.stuckDeadlineSeconds | quote }}
- name: {{ $kp }}SECRET_REFS
  value: {{ toJson $refs | quote }}
{{- /* Quantities as strings (YAML reads `cpu: 1` as a number); tolerations in the launcher's field names. */}}
{{- $resources := dict }}
{{- range $part, $amounts := $v.launcher.resources }}
{{- $quantities := dict }}
{{- range $name, $quantity := $amounts }}
{{- $_ := set $quantities $name (toString $quantity) }}
{{- end }}
{{- $_ := set $resources $part $quantities }}
{{- end }}
{{- $tolerations := list }}
{{- range $t := $v.launcher.tolerations }}
{{- $o := omit $t "tolerationSeconds" }}
{{- if hasKey $t "tolerationSeconds" }}
{{- $_ := set $o "toleration_seconds" (int $t.tolerationSeconds) }}
{{- end }}
{{- $tolerations = append $tolerations $o }}
{{- end }}
- name: {{ $kp }}RESOURCES
  value: {{ toJson $resources | quote }}
- name: {{ $kp }}NODE_SELECTOR
  value: {{ toJson $v.launcher.nodeSelector | quote }}
- name: {{ $kp }}TOLERATIONS
  value: {{ toJson $tolerations | quote }}
- name: {{ $kp }}RUN_AS_USER
  value: {{ $v.podSecurityContext.runAsUser | default 10001 | quote }}
{{- with $v.launcher.workerSecret }}
- name: {{ $kp }}WORKER_SECRET
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The writable directories a read-only root filesystem still needs, and the mounted API tokens. */}}
{{- define "tidemark.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
- name: api-tokens
  secret:
    secretName: {{ .Values.auth.tokensSecret.name }}
    items:
      - key: {{ .Values.auth.tokensSecret.key }}
        path: {{ .Values.auth.tokensSecret.key }}
{{- with .Values.kafka.tls.caSecret }}
{{- if .name }}
- name: kafka-ca
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "tidemark.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/tidemark/.tidemark
- name: api-tokens
  mountPath: {{ include "tidemark.tokensMountPath" . }}
  readOnly: true
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/tidemark/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Rules across values that values.schema.json cannot state clearly. They stop `helm template`/`install`/`upgrade`;
`helm lint` only reports them (as INFO), so every single-field rule lives in the schema, which lint enforces.
*/}}
{{- define "tidemark.validate" -}}
{{- $v := .Values -}}
{{- if and (eq $v.launcher.type "kubernetes") (not $v.launcher.serviceAccount.create) (not $v.launcher.serviceAccount.name) -}}
{{- fail "launcher.serviceAccount.name: with create: false, name the workers' existing ServiceAccount" -}}
{{- end -}}
{{- range $svc := splitList " " (include "tidemark.serviceNames" .) -}}
{{- $a := (index $v.services $svc).autoscaling -}}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- fail (printf "services.%s.autoscaling: minReplicas (%v) exceeds maxReplicas (%v)" $svc $a.minReplicas $a.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- range $svc := splitList " " (include "tidemark.serviceNames" .) -}}
{{- range $name, $_ := (index $v.services $svc).settings -}}
{{- range $owned := list "DATABASE__" "KAFKA__" "AUTH__" "LAKEHOUSE__" "KUBERNETES__" "LOG_LEVEL" "LOG_FORMAT" "CONNECTOR_URL" "LAUNCHER" "WORKER_IMAGE" "PLATFORM__" -}}
{{- if hasPrefix $owned $name -}}
{{- fail (printf "services.%s.settings.%s: the chart sets TIDEMARK_%s__%s itself; use the chart's own value for it (see values.yaml)" $svc $name (upper $svc) $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.kafka.tls.caSecret.name (not (hasSuffix "SSL" $v.kafka.securityProtocol)) -}}
{{- fail "kafka.tls.caSecret: a CA is used only with kafka.securityProtocol SSL or SASL_SSL" -}}
{{- end -}}
{{- if and (ne $v.lakehouse.catalogType "rest") (or $v.lakehouse.catalogCredentialSecret.name $v.lakehouse.catalogTokenSecret.name) -}}
{{- fail "lakehouse.catalogCredentialSecret/catalogTokenSecret: only a REST catalog (lakehouse.catalogType: rest) uses them" -}}
{{- end -}}
{{- end -}}
