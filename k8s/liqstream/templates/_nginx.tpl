{{/*
The edge's nginx.conf. Reasoning behind the proxy settings: the same as
deploy/nginx/nginx.conf.tmpl (the local fleet's edge), which was tuned with
make loadtest.
*/}}
{{- define "liqstream.nginxConf" -}}
{{- $e := .Values.edge -}}
{{- $canary := .Values.canary -}}
# liqstream edge: nginx in front of the gateways, which it finds through
# their headless Services, re-resolved at run time ("server ... resolve",
# nginx >= 1.27.3).
# One worker per core of the CPU limit ("auto" would count the node's cores);
# with reuseport the kernel spreads new
# connections over them evenly. Each WebSocket takes two of a worker's
# connections (client and gateway): {{ $e.workerConnections }} hold {{ div $e.workerConnections 2 }} clients per worker.
worker_processes {{ $e.workerProcesses }};
worker_rlimit_nofile {{ mul $e.workerConnections 2 }};
error_log /dev/stderr warn;
# The root file system is read-only: pid and temp files live in the /tmp emptyDir.
pid /tmp/nginx.pid;

events {
    worker_connections {{ $e.workerConnections }};
}

http {
    access_log off;
    server_tokens off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;

    # The cluster DNS. valid= is how long a gateway that left its headless
    # Service (not ready, terminating) can still get new clients; the
    # gateways' preStop sleep covers it.
    resolver {{ $e.resolver }};
    resolver_timeout 2s;

    # Only upgrade when the client asked to; plain requests keep "close".
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    {{- include "liqstream.nginxUpstream" (dict "ctx" . "name" "stable" "host" (include "liqstream.gatewayHeadless" .)) | nindent 4 }}
{{- if $canary.enabled }}

    {{- include "liqstream.nginxUpstream" (dict "ctx" . "name" "canary" "host" (include "liqstream.canaryHeadless" .)) | nindent 4 }}

    # Canary: a fixed share of client addresses (a hash of the whole
    # address, so a client keeps its pool across reconnects); within a pool
    # the balance method keeps it on one gateway.
    split_clients "${remote_addr}" $gateway_pool {
        {{- if gt ($canary.weight | int) 0 }}
        {{ $canary.weight }}% canary;
        {{- end }}
        * stable;
    }
{{- end }}

    server {
        listen 8080 reuseport;

        # The edge's own probe; gateways are probed by the kubelet.
        location = /edge-healthz {
            access_log off;
            default_type text/plain;
            return 200 "ok\n";
        }

        location / {
            proxy_pass http://{{ ternary "$gateway_pool" "stable" $canary.enabled }};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # $http_host, not $host: the gateway accepts a browser's
            # WebSocket when its Origin names the Host it is asked for, and
            # the Origin keeps the port, which $host drops.
            proxy_set_header Host $http_host;
            # The gateways trust these from the pod CIDR (ws.trusted_proxies)
            # and count per-IP limits on the client they name.
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            # WebSockets live for hours; the gateway's own pings keep them
            # active, this only bounds a connection nobody talks on.
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
            # An upgraded connection is relayed through one proxy_buffer_size
            # buffer per direction. The default (one page, 4 KB) cut every
            # 18-32 KB heatmap frame into up to eight reads and writes: at
            # 10,000 clients nginx then fell seconds behind on two cores. 32k
            # moves a frame in one or two, for ~40 KB per client.
            proxy_buffer_size 32k;
            proxy_buffers 4 32k;
            # A gateway that is gone or draining refuses connections or
            # answers 503: try the next one, so a reconnecting client lands
            # on a live gateway at once.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
        }
    }
{{- if $e.metrics.enabled }}

    # stub_status for the exporter sidecar only (loopback).
    server {
        listen 127.0.0.1:8081;
        location = /stub_status {
            stub_status;
        }
    }
{{- end }}
}
{{- end -}}

{{/* One upstream block: (dict "ctx" $ "name" "stable" "host" fqdn). */}}
{{- define "liqstream.nginxUpstream" -}}
{{- $e := .ctx.Values.edge -}}
upstream {{ .name }} {
    # Shared memory for the run-time resolved addresses ("resolve").
    zone {{ .name }} 256k;
    {{- if eq $e.balance "hash" }}
    # Consistent hash of {{ $e.hashKey }}: a gateway added or removed
    # moves only ~1/N of the clients.
    hash {{ $e.hashKey }} consistent;
    {{- else }}
    # ip_hash keys on the first three octets of an IPv4 client address:
    # everyone behind one NAT lands on one gateway. Stickiness only keeps
    # reconnects from churning; any gateway can serve any client.
    ip_hash;
    {{- end }}
    # max_fails=0: nginx forgets a peer's failure only when a request to
    # it ends, and a WebSocket ends hours later. With the default
    # (max_fails=1 fail_timeout=10s) one refused connect to a restarting
    # gateway left it one new client per 10 s per worker until then.
    # A dead gateway costs a refused connect and proxy_next_upstream, and
    # leaves the Service (and DNS) when its readiness probe fails.
    server {{ .host }}:8080 resolve max_fails=0;
}
{{- end -}}
