{{/*
Names. Every object is "<fullname>-<component>"; fullname is the release name
(plus the chart name unless the release name already holds it), cut to leave
room for the longest suffix ("-gateway-canary-headless", 24 characters) within
the 63 characters of a DNS label.
*/}}
{{- define "liqstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 39 | trimSuffix "-" -}}
{{- end -}}

{{- define "liqstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 39 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 39 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 39 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "liqstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of one component: (dict "ctx" $ "component" "gateway").
Gateways add liqstream.io/track (stable or canary) on top.
*/}}
{{- define "liqstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "liqstream.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Metadata labels: selector labels, chart labels, then values.commonLabels over them. */}}
{{- define "liqstream.labels" -}}
{{- $l := include "liqstream.selectorLabels" . | fromYaml -}}
{{- $_ := set $l "app.kubernetes.io/part-of" "liqstream" -}}
{{- $_ := set $l "app.kubernetes.io/version" .ctx.Chart.AppVersion -}}
{{- $_ := set $l "app.kubernetes.io/managed-by" .ctx.Release.Service -}}
{{- $_ := set $l "helm.sh/chart" (include "liqstream.chart" .ctx) -}}
{{- toYaml (mergeOverwrite $l (deepCopy (.ctx.Values.commonLabels | default dict))) -}}
{{- end -}}

{{/* Image of a liqstream service: (dict "ctx" $ "image" .Values.gateway.image). */}}
{{- define "liqstream.image" -}}
{{- $registry := .image.registry | default .ctx.Values.image.registry -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Container securityContext every container of the chart runs with:
(dict "uid" 65532). Non-root, read-only root fs, no privilege escalation,
no capabilities, the runtime's default seccomp profile.
*/}}
{{- define "liqstream.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod securityContext: (dict "uid" 65532). fsGroup makes volumes writable. */}}
{{- define "liqstream.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* In-cluster DNS names. */}}
{{- define "liqstream.gatewayHeadless" -}}
{{- printf "%s-gateway-headless.%s.svc.%s" (include "liqstream.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "liqstream.canaryHeadless" -}}
{{- printf "%s-gateway-canary-headless.%s.svc.%s" (include "liqstream.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "liqstream.snapshotterURL" -}}
{{- printf "http://%s-snapshotter.%s.svc.%s:8081" (include "liqstream.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/*
The redis_url both services get: the bundled Redis, or redis.url, which is
then required.
*/}}
{{- define "liqstream.redisURL" -}}
{{- if .Values.redis.bundled -}}
{{- printf "redis://%s-redis.%s.svc.%s:6379/0" (include "liqstream.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- required "redis.url is required when redis.bundled is false and redis.existingSecret is empty: set it to redis://[user:password@]host:6379/0 of your Redis" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the Redis URL (it may carry a password, so it is never
in a ConfigMap): redis.existingSecret, or the chart's own.
*/}}
{{- define "liqstream.redisSecretName" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis-url" (include "liqstream.fullname" .)) -}}
{{- end -}}

{{/* The env entry both services read the Redis URL from (it beats the config file). */}}
{{- define "liqstream.redisEnv" -}}
- name: LIQSTREAM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "liqstream.redisSecretName" . }}
      key: {{ ternary .Values.redis.existingSecretKey "redis-url" (ne .Values.redis.existingSecret "") }}
{{- end -}}

{{/* A checksum that changes when the chart's Redis URL does, so pods roll. */}}
{{- define "liqstream.redisChecksum" -}}
{{- if .Values.redis.existingSecret -}}
{{- printf "%s/%s" .Values.redis.existingSecret .Values.redis.existingSecretKey | sha256sum -}}
{{- else -}}
{{- include "liqstream.redisURL" . | sha256sum -}}
{{- end -}}
{{- end -}}

{{/*
Seconds in a Go duration string ("10s", "1m30s", "500ms"), rounded up, as an
integer string. Fails on anything else, naming the key: (dict "d" "10s" "key" "gateway.config.drain_timeout").
*/}}
{{- define "liqstream.durationSeconds" -}}
{{- $d := toString .d -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$" $d) -}}
{{- fail (printf "%s: want a Go duration such as 10s or 1m30s, got %q" .key $d) -}}
{{- end -}}
{{- $ms := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(h|ms|m|s)" $d -1 -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $unit := trimPrefix $num . -}}
{{- $factor := get (dict "h" 3600000.0 "m" 60000.0 "s" 1000.0 "ms" 1.0) $unit -}}
{{- $ms = addf $ms (mulf (float64 $num) $factor) -}}
{{- end -}}
{{- ceil (divf $ms 1000.0) | int -}}
{{- end -}}

{{/*
Gateway shutdown budget: preStop sleep, then drain_timeout for clients to
leave, then up to 5 s for the HTTP server to shut down. Returns the grace
period: gateway.terminationGracePeriodSeconds when set (failing if it does not
cover the budget), else the budget plus gateway.terminationGraceMarginSeconds.
(dict "ctx" $ "config" $mergedGatewayConfig)
*/}}
{{- define "liqstream.gatewayGrace" -}}
{{- $v := .ctx.Values.gateway -}}
{{- $drain := include "liqstream.durationSeconds" (dict "d" (.config.drain_timeout | default "10s") "key" "gateway.config.drain_timeout") | int -}}
{{- $preStop := $v.preStopSleepSeconds | int -}}
{{- $min := add $preStop $drain 5 -}}
{{- if $v.terminationGracePeriodSeconds -}}
{{- if lt ($v.terminationGracePeriodSeconds | int) $min -}}
{{- fail (printf "gateway.terminationGracePeriodSeconds is %d, too low: it must cover preStopSleepSeconds (%d) + drain_timeout (%ds) + 5s of HTTP shutdown = %d, or Kubernetes kills the gateway before its clients are drained with 1012. Raise it, lower drain_timeout, or leave it unset to have it computed" ($v.terminationGracePeriodSeconds | int) $preStop $drain $min) -}}
{{- end -}}
{{- $v.terminationGracePeriodSeconds | int -}}
{{- else -}}
{{- add $min ($v.terminationGraceMarginSeconds | int) -}}
{{- end -}}
{{- end -}}

{{/*
The gateway config file: values.gateway.config (with overrides merged over
it for the canary) plus the keys the chart owns.
(dict "ctx" $ "overrides" .Values.canary.config)
*/}}
{{- define "liqstream.gatewayConfig" -}}
{{- $ctx := .ctx -}}
{{- $cfg := mergeOverwrite (deepCopy ($ctx.Values.gateway.config | default dict)) (deepCopy (.overrides | default dict)) -}}
{{- $ws := $cfg.ws | default dict -}}
{{- $proxies := concat ($ctx.Values.cluster.podCIDRs | default list) ($ws.trusted_proxies | default list) | uniq -}}
{{- $_ := set $ws "trusted_proxies" $proxies -}}
{{- $_ := set $cfg "ws" $ws -}}
{{- $_ := set $cfg "listen" ":8080" -}}
{{- $_ := set $cfg "snapshotter_url" (include "liqstream.snapshotterURL" $ctx) -}}
{{- if hasKey $cfg "redis_url" -}}
{{- fail "gateway.config.redis_url / canary.config.redis_url: set the Redis URL with redis.url or redis.existingSecret; the chart passes it in a Secret (LIQSTREAM_REDIS_URL)" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The snapshotter config file: values.snapshotter.config plus the keys the chart owns. */}}
{{- define "liqstream.snapshotterConfig" -}}
{{- $cfg := deepCopy (.Values.snapshotter.config | default dict) -}}
{{- $_ := set $cfg "listen" ":8081" -}}
{{- $_ := set $cfg "db" "/data/liqstream.duckdb" -}}
{{- if hasKey $cfg "redis_url" -}}
{{- fail "snapshotter.config.redis_url: set the Redis URL with redis.url or redis.existingSecret; the chart passes it in a Secret (LIQSTREAM_REDIS_URL)" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Pod selector of the metrics scraper, for NetworkPolicy "from" entries. */}}
{{- define "liqstream.scraperPeer" -}}
{{- with .Values.networkPolicy.metricsScraper }}
{{- if or .namespaceSelector .podSelector }}
- {{- with .namespaceSelector }}
  namespaceSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .podSelector }}
  podSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Pod template labels: the selector labels (plus extra, e.g. the gateway
track), then podLabels merged over them. A podLabels entry may replace a
selector label; the chart does not stop that, the API server does (the
selector must match the template).
(dict "ctx" $ "component" "gateway" "extra" (dict ...) "podLabels" .Values.gateway.podLabels)
*/}}
{{- define "liqstream.podLabels" -}}
{{- $l := dict "app.kubernetes.io/part-of" "liqstream" -}}
{{- $l = mergeOverwrite $l (include "liqstream.selectorLabels" . | fromYaml) (.extra | default dict) (deepCopy (.podLabels | default dict)) -}}
{{- toYaml $l -}}
{{- end -}}
