# syntax=docker/dockerfile:1
#
# liqstream gateway: a static binary (CGO_ENABLED=0) on distroless, run as
# uid/gid 65532, nothing else in the image (no shell), fine on a read-only
# root filesystem. Build from the repository root (the go.work workspace):
#
#   docker build -f deploy/docker/gateway.Dockerfile \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -t liqstream-gateway .
#
# Bases are pinned by digest. golang: the index digest of golang:1.26.8-bookworm
# as docker-library/repo-info records it (the Go release go.work is built and
# tested with). distroless publishes no version tags, only moving ones such as
# :nonroot, so the digest is the only pin: this one is the digest Renovate
# resolved for static-debian12:nonroot on 2025-12-08; refresh it with
# `crane digest gcr.io/distroless/static-debian12:nonroot`.
# deploy/dockerfile_test.go checks all of this.

FROM golang:1.26.8-bookworm@sha256:f4191582e1522dfc5980a6bdc0309a756f9697f3e7d0f199c7e26fc82ab324fd AS build
WORKDIR /src

# The workspace first, so the module download below stays cached until a
# go.mod or go.sum changes. go refuses a go.work whose modules lack their
# go.mod, so every module's go.mod/go.sum comes along; only pkg's and the
# gateway's sources are copied later.
COPY go.work go.work.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/snapshotter/go.mod services/snapshotter/go.sum services/snapshotter/
COPY loadtest/go.mod loadtest/go.sum loadtest/
COPY e2e/go.mod e2e/go.sum e2e/
# The modules pkg and the gateway require (not the whole workspace's, which
# would fetch DuckDB's libraries for every platform), at the versions the
# workspace selects.
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download $(awk '/^require \(/ {r = 1; next} r && /^\)/ {r = 0; next} r && NF >= 2 {print $1} $1 == "require" && $2 != "(" {print $2}' \
        pkg/go.mod services/gateway/go.mod | sort -u)

COPY pkg/ pkg/
COPY services/gateway/ services/gateway/
ARG VERSION=dev
ARG REVISION=
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    cd services/gateway && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/liqstream/liqstream/pkg/buildinfo.Version=${VERSION} -X github.com/liqstream/liqstream/pkg/buildinfo.Revision=${REVISION}" \
        -o /out/gateway . \
    && /out/gateway --version

FROM gcr.io/distroless/static-debian12:nonroot@sha256:2b7c93f6d6648c11f0e80a48558c8f77885eb0445213b8e69a6a0d7c89fc6ae4
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="liqstream-gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/gateway /usr/local/bin/gateway
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]
