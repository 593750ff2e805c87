{{/*
Helpers shared by the Deployment and the hook Jobs. Every schemagate
container is built by "schemagate-example.schemagateContainer" so the three
modes differ only in the command and the credentials they use.
*/}}

{{- define "schemagate-example.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "schemagate-example.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "schemagate-example.labels" -}}
{{ include "schemagate-example.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The hardened container securityContext, the same for every container. */}}
{{- define "schemagate-example.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Pod-level securityContext. fsGroup lets the non-root containers read the
password files of the Secret volumes (mode 0440, group fsGroup).
*/}}
{{- define "schemagate-example.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The credentials of a role: "migrator" or "app". */}}
{{- define "schemagate-example.credentials" -}}
{{- $db := .root.Values.database -}}
{{- if eq .role "migrator" -}}{{- toYaml $db.migrator -}}{{- else -}}{{- toYaml $db.app -}}{{- end -}}
{{- end -}}

{{- define "schemagate-example.passwordDir" -}}
/var/run/secrets/schemagate/{{ .role }}
{{- end -}}

{{/*
Database environment for a role. The URL carries the user as $(DB_USER),
which Kubernetes expands from the secretKeyRef above it; the password stays
in a mounted file (DATABASE_PASSWORD_FILE), out of the URL, the manifests,
argv and the environment.
*/}}
{{- define "schemagate-example.databaseEnv" -}}
{{- $db := .root.Values.database -}}
{{- $cred := include "schemagate-example.credentials" . | fromYaml -}}
{{- $host := $db.host -}}
{{- $port := $db.port -}}
{{- $params := $db.params -}}
{{- if .root.Values.cloudSqlProxy.enabled -}}
{{- $host = "127.0.0.1" -}}
{{- $port = .root.Values.cloudSqlProxy.port -}}
{{- $params = "" -}}
{{- end -}}
- name: DB_USER
  valueFrom:
    secretKeyRef:
      name: {{ $cred.secretName }}
      key: {{ $cred.usernameKey }}
- name: DATABASE_URL
  value: {{ printf "%s://$(DB_USER)@%s:%v/%s%s" $db.scheme $host $port $db.name (ternary (printf "?%s" $params) "" (ne $params "")) | quote }}
{{- if $cred.passwordKey }}
- name: DATABASE_PASSWORD_FILE
  value: {{ include "schemagate-example.passwordDir" . }}/password
{{- end }}
{{- end -}}

{{- define "schemagate-example.passwordVolumeMount" -}}
{{- $cred := include "schemagate-example.credentials" . | fromYaml -}}
{{- if $cred.passwordKey }}
- name: db-{{ .role }}-password
  mountPath: {{ include "schemagate-example.passwordDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "schemagate-example.passwordVolume" -}}
{{- $cred := include "schemagate-example.credentials" . | fromYaml -}}
{{- if $cred.passwordKey }}
- name: db-{{ .role }}-password
  secret:
    secretName: {{ $cred.secretName }}
    defaultMode: 0440
    items:
      - key: {{ $cred.passwordKey }}
        path: password
{{- end }}
{{- end -}}

{{/*
Cloud SQL Auth Proxy as a native sidecar: an initContainer with
restartPolicy: Always. The kubelet starts the next initContainer
(schemagate) only once the startupProbe passes, keeps the proxy running for
the app, and stops it after the main containers of a Job have finished.
*/}}
{{- define "schemagate-example.cloudSqlProxy" -}}
{{- $p := .Values.cloudSqlProxy -}}
- name: cloud-sql-proxy
  image: {{ printf "%s:%s" $p.image.repository $p.image.tag | quote }}
  imagePullPolicy: {{ $p.image.pullPolicy }}
  restartPolicy: Always
  args:
    - --port={{ $p.port }}
    - --address=127.0.0.1
    - --health-check
    - --http-address=0.0.0.0
    - --http-port={{ $p.healthPort }}
    - --structured-logs
    - --exit-zero-on-sigterm
    {{- if $p.privateIp }}
    - --private-ip
    {{- end }}
    {{- if $p.autoIamAuthn }}
    - --auto-iam-authn
    {{- end }}
    {{- range $p.extraArgs }}
    - {{ . | quote }}
    {{- end }}
    - {{ $p.instanceConnectionName | quote }}
  startupProbe:
    httpGet:
      path: /startup
      port: {{ $p.healthPort }}
    periodSeconds: 1
    failureThreshold: 60
  livenessProbe:
    httpGet:
      path: /liveness
      port: {{ $p.healthPort }}
    periodSeconds: 10
  resources:
    {{- toYaml $p.resources | nindent 4 }}
  securityContext:
    {{- include "schemagate-example.containerSecurityContext" . | nindent 4 }}
{{- end -}}

{{/*
One schemagate container. Arguments: root, role (migrator|app),
command (up|wait|rollback|serve), name, and for serve: sidecar (true) and
wait (true for "serve --wait").
*/}}
{{- define "schemagate-example.schemagateContainer" -}}
{{- $s := .root.Values.schemagate -}}
- name: {{ .name }}
  image: {{ printf "%s:%s" $s.image.repository $s.image.tag | quote }}
  imagePullPolicy: {{ $s.image.pullPolicy }}
  {{- if .sidecar }}
  restartPolicy: Always
  {{- end }}
  command: ["/schemagate"]
  {{- if .wait }}
  args: [{{ .command | quote }}, "--wait"]
  {{- else }}
  args: [{{ .command | quote }}{{ if and (eq .command "up") $s.lint }}, "--lint"{{ end }}]
  {{- end }}
  {{- if .sidecar }}
  ports:
    - name: metrics
      containerPort: {{ $s.serve.port }}
      protocol: TCP
  {{- include "schemagate-example.serveProbes" .root | nindent 2 }}
  {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- include "schemagate-example.databaseEnv" . | nindent 4 }}
    - name: SCHEMAGATE_DIR
      value: {{ $s.dir | quote }}
    - name: SCHEMAGATE_LOG_FORMAT
      value: {{ $s.logFormat | quote }}
    - name: SCHEMAGATE_LOCK_TIMEOUT
      value: {{ $s.lockTimeout | quote }}
    - name: SCHEMAGATE_CONNECT_TIMEOUT
      value: {{ $s.connectTimeout | quote }}
    {{- if .sidecar }}
    - name: SCHEMAGATE_LISTEN
      value: {{ include "schemagate-example.listenAddress" .root | quote }}
    - name: SCHEMAGATE_CHECK_INTERVAL
      value: {{ $s.serve.checkInterval | quote }}
    {{- end }}
    {{- with $s.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $mounts := printf "%s\n%s" (include "schemagate-example.passwordVolumeMount" . | trim) (include "schemagate-example.migrationsVolumeMount" .root | trim) | trim }}
  {{- if $mounts }}
  volumeMounts:
    {{- $mounts | nindent 4 }}
  {{- end }}
  terminationMessagePolicy: FallbackToLogsOnError
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    {{- include "schemagate-example.containerSecurityContext" . | nindent 4 }}
{{- end -}}

{{/*
"schemagate serve" as a native sidecar: the startupProbe on /readyz passes
only once the schema is at the target, and until it does the kubelet
starts neither the later initContainers nor the app. Its failureThreshold
times periodSeconds must cover the longest migration (default: 1 hour).
Liveness and readiness probes start after it; readiness on /readyz takes
the pod out of its Services if a migration this image knows is reverted,
fails or changes its checksum.
*/}}
{{- define "schemagate-example.serveProbes" -}}
{{- $p := .Values.schemagate.serve -}}
startupProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml $p.startupProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml $p.readinessProbe | nindent 2 }}
livenessProbe:
  httpGet:
    path: /livez
    port: metrics
  {{- toYaml $p.livenessProbe | nindent 2 }}
{{- end -}}

{{/* HOST:PORT for SCHEMAGATE_LISTEN; an IPv6 host goes in brackets. */}}
{{- define "schemagate-example.listenAddress" -}}
{{- $p := .Values.schemagate.serve -}}
{{- if contains ":" (toString $p.listenHost) -}}
{{- printf "[%s]:%v" $p.listenHost $p.port -}}
{{- else -}}
{{- printf "%s:%v" $p.listenHost $p.port -}}
{{- end -}}
{{- end -}}

{{/*
Whether the Deployment's pods run "schemagate serve": sidecar mode, or job
mode with schemagate.job.waitAs=sidecar. Renders "true" or nothing.
*/}}
{{- define "schemagate-example.servesMetrics" -}}
{{- $s := .Values.schemagate -}}
{{- if or (eq $s.mode "sidecar") (and (eq $s.mode "job") (eq $s.job.waitAs "sidecar")) -}}true{{- end -}}
{{- end -}}

{{/* A hook Job running one schemagate command with the migrator's rights. */}}
{{- define "schemagate-example.hookJob" -}}
{{- $s := .root.Values.schemagate -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "schemagate-example.fullname" .root }}-{{ .suffix }}
  labels:
    {{- include "schemagate-example.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .suffix }}
  annotations:
    {{- include "schemagate-example.hookAnnotations" (dict "root" .root "hook" .hook "weight" .weight "wave" .wave "deletePolicy" "before-hook-creation,hook-succeeded") | nindent 4 }}
spec:
  activeDeadlineSeconds: {{ $s.job.activeDeadlineSeconds }}
  backoffLimit: {{ $s.job.backoffLimit }}
  ttlSecondsAfterFinished: {{ $s.job.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "schemagate-example.selectorLabels" .root | nindent 8 }}
        app.kubernetes.io/component: {{ .suffix }}
    spec:
      restartPolicy: Never
      {{- with .root.Values.serviceAccountName }}
      serviceAccountName: {{ . }}
      {{- end }}
      securityContext:
        {{- include "schemagate-example.podSecurityContext" .root | nindent 8 }}
      {{- if .root.Values.cloudSqlProxy.enabled }}
      initContainers:
        {{- include "schemagate-example.cloudSqlProxy" .root | nindent 8 }}
      {{- end }}
      containers:
        {{- include "schemagate-example.schemagateContainer" (dict "root" .root "role" "migrator" "command" .command "name" "schemagate") | nindent 8 }}
      {{- with printf "%s\n%s" (include "schemagate-example.passwordVolume" (dict "root" .root "role" "migrator") | trim) (include "schemagate-example.migrationsVolume" .root | trim) | trim }}
      volumes:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with .root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/*
The annotations of a resource that must exist before the new pods: the
hook Jobs, and the migrations ConfigMap when a hook Job reads it (Helm runs
hooks before the release's other objects). Arguments: root, hook (Helm's
hook list), weight (Helm's weight), wave (Argo CD's sync wave),
deletePolicy (Helm's). With argocd.enabled, Argo CD's annotations replace
Helm's: a PreSync hook in its wave, BeforeHookCreation.
*/}}
{{- define "schemagate-example.hookAnnotations" -}}
{{- if .root.Values.argocd.enabled -}}
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
argocd.argoproj.io/sync-wave: {{ .wave | quote }}
{{- else -}}
helm.sh/hook: {{ .hook }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .deletePolicy }}
{{- end -}}
{{- end -}}

{{/* Whether a hook Job is rendered (job mode, or the rollback hook). Renders "true" or nothing. */}}
{{- define "schemagate-example.hasHookJob" -}}
{{- if or (eq .Values.schemagate.mode "job") .Values.schemagate.rollback.enabled -}}true{{- end -}}
{{- end -}}

{{- define "schemagate-example.migrationsVolumeMount" -}}
{{- if .Values.schemagate.migrations.files }}
- name: migrations
  mountPath: {{ .Values.schemagate.dir }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "schemagate-example.migrationsVolume" -}}
{{- if .Values.schemagate.migrations.files }}
- name: migrations
  configMap:
    name: {{ include "schemagate-example.fullname" . }}-migrations
{{- end }}
{{- end -}}
