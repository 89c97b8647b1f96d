# syntax=docker/dockerfile:1
#
# liqstream snapshotter: cgo with DuckDB, so glibc and libstdc++ at run time.
# The builder and the runtime are the same Debian release (bookworm), so the
# binary finds the glibc it was linked against; `ldd bin/snapshotter` lists
# libstdc++.so.6, libm.so.6, libgcc_s.so.1 and libc.so.6. Runs as uid/gid
# 65532; the DuckDB file lives in the /data volume (the only place it
# writes). Build from the repository root (the go.work workspace):
#
#   docker build -f deploy/docker/snapshotter.Dockerfile \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -t liqstream-snapshotter .
#
# Bases are pinned by the index digests docker-library/repo-info records for
# golang:1.26.8-bookworm (the Go release go.work is built and tested with) and
# debian:bookworm-20260918-slim (the Debian snapshot that golang image was
# built on). deploy/dockerfile_test.go checks all of this.

FROM golang:1.26.8-bookworm@sha256:f4191582e1522dfc5980a6bdc0309a756f9697f3e7d0f199c7e26fc82ab324fd AS build
ARG TARGETARCH
WORKDIR /src

# The workspace first, so the module download below stays cached until a
# go.mod or go.sum changes. go refuses a go.work whose modules lack their
# go.mod, so every module's go.mod/go.sum comes along; only pkg's and the
# snapshotter's sources are copied later.
COPY go.work go.work.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/snapshotter/go.mod services/snapshotter/go.sum services/snapshotter/
COPY loadtest/go.mod loadtest/go.sum loadtest/
COPY e2e/go.mod e2e/go.sum e2e/
# The modules pkg and the snapshotter require, at the versions the workspace
# selects, with DuckDB's prebuilt library for this platform only (go.mod
# lists those of every platform, ~100 MB each).
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download $(awk '/^require \(/ {r = 1; next} r && /^\)/ {r = 0; next} r && NF >= 2 {print $1} $1 == "require" && $2 != "(" {print $2}' \
        pkg/go.mod services/snapshotter/go.mod | grep -v '/duckdb-go-bindings/lib/' | sort -u) \
        "github.com/duckdb/duckdb-go-bindings/lib/linux-${TARGETARCH:-amd64}"

COPY pkg/ pkg/
COPY services/snapshotter/ services/snapshotter/
ARG VERSION=dev
ARG REVISION=
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    cd services/snapshotter && CGO_ENABLED=1 go build -trimpath \
        -ldflags "-s -w -X github.com/liqstream/liqstream/pkg/buildinfo.Version=${VERSION} -X github.com/liqstream/liqstream/pkg/buildinfo.Revision=${REVISION}" \
        -o /out/snapshotter . \
    && /out/snapshotter --version

FROM debian:bookworm-20260918-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
# libstdc++6 for DuckDB (slim has it through apt; named so it stays);
# ca-certificates for the Binance source (https).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot \
    && mkdir /data \
    && chown 65532:65532 /data
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="liqstream-snapshotter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/snapshotter /usr/local/bin/snapshotter
# WORKDIR / makes the built-in default ./data/liqstream.duckdb (and that of
# `snapshotter import`) the volume's file too; the env says it outright and
# listens on every interface, as a container must. Flags override both.
WORKDIR /
ENV LIQSTREAM_DB=/data/liqstream.duckdb \
    LIQSTREAM_LISTEN=:8081
VOLUME /data
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/snapshotter"]
