{{/*
One gateway track (stable or canary): ConfigMap, Deployment and headless
Service. (dict "ctx" $ "track" "stable"|"canary")
*/}}
{{- define "liqstream.gatewayTrack" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values.gateway -}}
{{- $canary := eq .track "canary" -}}
{{- $suffix := ternary "gateway-canary" "gateway" $canary -}}
{{- $name := printf "%s-%s" (include "liqstream.fullname" $ctx) $suffix -}}
{{- $overrides := ternary $ctx.Values.canary.config dict $canary -}}
{{- $config := include "liqstream.gatewayConfig" (dict "ctx" $ctx "overrides" $overrides) -}}
{{- $grace := include "liqstream.gatewayGrace" (dict "ctx" $ctx "config" (fromYaml $config)) -}}
{{- $image := deepCopy $v.image -}}
{{- if and $canary $ctx.Values.canary.image.tag -}}
{{- $_ := set $image "tag" $ctx.Values.canary.image.tag -}}
{{- end -}}
{{- $sel := dict "ctx" $ctx "component" "gateway" }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "liqstream.labels" $sel | nindent 4 }}
    liqstream.io/track: {{ .track }}
data:
  # The gateway's config file (LIQSTREAM_CONFIG). instance_id comes from
  # the pod name (LIQSTREAM_INSTANCE_ID).
  gateway.yaml: |
    {{- $config | nindent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "liqstream.labels" $sel | nindent 4 }}
    liqstream.io/track: {{ .track }}
spec:
  {{- if $canary }}
  replicas: {{ $ctx.Values.canary.replicas }}
  {{- else if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  {{- /* With the HPA on, replicas is left out so an upgrade does not reset its count. */}}
  revisionHistoryLimit: 5
  minReadySeconds: {{ $v.minReadySeconds }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Never below the current capacity: the clients of every replaced
      # gateway reconnect to the others at once.
      maxUnavailable: 0
      maxSurge: {{ $v.maxSurge }}
  selector:
    matchLabels:
      {{- include "liqstream.selectorLabels" $sel | nindent 6 }}
      liqstream.io/track: {{ .track }}
  template:
    metadata:
      labels:
        {{- include "liqstream.podLabels" (dict "ctx" $sel.ctx "component" $sel.component "extra" (dict "liqstream.io/track" .track) "podLabels" $v.podLabels) | nindent 8 }}
      annotations:
        # A config change rolls the pods.
        checksum/config: {{ $config | sha256sum }}
        checksum/redis-url: {{ include "liqstream.redisChecksum" $ctx }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      # preStop sleep + drain_timeout + HTTP shutdown + margin.
      terminationGracePeriodSeconds: {{ $grace }}
      securityContext:
        {{- include "liqstream.podSecurityContext" (dict "uid" 65532) | nindent 8 }}
      {{- with $ctx.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
        podAntiAffinity:
          # Preferred, not required: a small cluster must still schedule a
          # surge pod during a rollout.
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "liqstream.selectorLabels" $sel | nindent 20 }}
      topologySpreadConstraints:
        {{- range $v.topologySpread.topologyKeys }}
        - maxSkew: {{ $v.topologySpread.maxSkew }}
          topologyKey: {{ . }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "liqstream.selectorLabels" $sel | nindent 14 }}
              liqstream.io/track: {{ $.track }}
          matchLabelKeys: [pod-template-hash]
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: gateway
          image: {{ include "liqstream.image" (dict "ctx" $ctx "image" $image) }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          env:
            - name: LIQSTREAM_CONFIG
              value: /etc/liqstream/gateway.yaml
            {{- include "liqstream.redisEnv" $ctx | nindent 12 }}
            - name: LIQSTREAM_INSTANCE_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          readinessProbe:
            # 503 before every symbol has a frame and while draining.
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 2
            failureThreshold: 2
            timeoutSeconds: 2
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 5
            periodSeconds: 10
            failureThreshold: 3
            timeoutSeconds: 3
          lifecycle:
            preStop:
              # The pod has already left the headless Service; sleeping lets
              # the edge's next DNS re-resolution drop it before SIGTERM
              # starts the drain (1012 to every client).
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "liqstream.containerSecurityContext" (dict "uid" 65532) | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/liqstream
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: {{ $name }}
---
# Headless: the edge resolves this name to the ready pods' addresses
# ("server ... resolve"); not-ready and terminating pods are left out.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  labels:
    {{- include "liqstream.labels" $sel | nindent 4 }}
    liqstream.io/track: {{ .track }}
spec:
  clusterIP: None
  publishNotReadyAddresses: false
  selector:
    {{- include "liqstream.selectorLabels" $sel | nindent 4 }}
    liqstream.io/track: {{ .track }}
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
{{- end -}}
