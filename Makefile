# liqstream — every entry point a developer or CI needs. See README.md.
SHELL   := /bin/bash
GO      ?= go
MODULES := pkg services/snapshotter services/gateway loadtest e2e
# Checks of what ships (Dockerfiles, compose, the Helm chart): modules of
# their own, outside go.work, so their BuildKit, compose-spec, Helm and
# Kubernetes dependencies never change the services' versions.
# k8s builds kube-apiserver for its test on the first run (~8 min on two
# cores, then cached), hence their longer timeout.
DEPLOY_MODULES := deploy k8s
# Unit and integration tests of every module, race detector on. The e2e
# module builds and starts the real binaries itself.
TEST_FLAGS ?= -race -count=1 -timeout 15m
# Stamped into pkg/buildinfo (--version, build_info); outside a git checkout
# the binaries say "dev" and take the revision the go command embeds, if any.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/liqstream/liqstream/pkg/buildinfo.Version=$(VERSION) -X github.com/liqstream/liqstream/pkg/buildinfo.Revision=$(REVISION)

.PHONY: all build run fleet test faults k6check promcheck bench fuzz lint fmt vet tidy clean screenshot loadtest loadtest-bin soak

all: build

build: ## bin/snapshotter (cgo, DuckDB) and bin/gateway (CGO_ENABLED=0)
	cd services/snapshotter && $(GO) build -ldflags "$(LDFLAGS)" -o ../../bin/snapshotter .
	cd services/gateway && CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o ../../bin/gateway .

run: build ## snapshotter + one gateway on the embedded default at http://localhost:8080
	deploy/local/run.sh

fleet: build ## redis + snapshotter + 3 gateways + nginx (ip_hash) at http://localhost:8080
	deploy/local/fleet.sh

test: ## every test of every module, the k6 scenarios type-checked, and the smoke load
	@set -e; for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GO) test $(TEST_FLAGS) ./...); done
	@set -e; for m in $(DEPLOY_MODULES); do echo "== go test $$m (own module, outside go.work)"; (cd $$m && GOWORK=off $(GO) test $(TEST_FLAGS) -timeout 30m ./...); done
	@$(MAKE) --no-print-directory k6check
	@$(MAKE) --no-print-directory promcheck
	@$(MAKE) --no-print-directory loadtest LOAD=smoke

faults: ## the crash and fault tests in full (make test runs short versions): >= 20 kills -9 each during demo seed, archive import and live ingest; fleet faults under 500 clients; 200 week-long history requests
	cd e2e && LIQSTREAM_FAULTS_FULL=1 $(GO) test -count=1 -timeout 60m -run 'TestCrash|TestFleetFaults|TestHistoryUnderHostileLoad' -v .

k6check: ## type-check loadtest/k6 against @types/k6 (no k6 binary: it is AGPL; see docs/LOADTEST.md)
	@echo "== tsc loadtest/k6"
	cd loadtest/k6 && npm ci --no-audit --no-fund --silent && npx --no-install tsc -p . && echo "k6 scenarios type-check: ok"

PROMTOOL ?= promtool
promcheck: ## the Prometheus config, rules and rule unit tests in deploy/prometheus (promtool: Debian's prometheus package)
	@echo "== promtool deploy/prometheus"
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml
	$(PROMTOOL) check rules deploy/prometheus/liqstream-rules.yaml
	$(PROMTOOL) test rules deploy/prometheus/liqstream-rules.test.yaml

bench: ## benchmarks (heatmap engine, ...); numbers go to docs/PERFORMANCE.md with this command
	cd pkg && $(GO) test -run '^$$' -bench . -benchmem ./...
	cd services/gateway && $(GO) test -run '^$$' -bench . -benchtime 5x ./internal/ws

FUZZTIME ?= 60s
LOAD ?= standard
SOAK ?= 30m
LOADRUN_FLAGS ?=
loadtest-bin:
	cd services/gateway && CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o ../../bin/gateway .
	cd loadtest && CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/floor ./cmd/floor && $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/loadrun ./cmd/loadrun && $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/wsload ./cmd/wsload && $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/feeder ./cmd/feeder

# The standard load regenerates its section of docs/PERFORMANCE.md; the
# smoke load (part of make test) only checks that every client connected and
# got every frame in order, and writes no doc.
loadtest: loadtest-bin ## LOAD=standard (~20 min, regenerates docs/PERFORMANCE.md), LOAD=delta (~12 min, full frames vs deltas ± deflate at 10,000 and 5,000 clients, regenerates its section) or LOAD=smoke (~1 min); gateway vs the floor, real redis-server and nginx; see docs/LOADTEST.md
	bin/loadrun -load $(LOAD) -out bin/loadtest-$(LOAD).json $(if $(filter standard delta,$(LOAD)),-doc docs/PERFORMANCE.md) -via "make loadtest LOAD=$(LOAD)" $(LOADRUN_FLAGS)

soak: loadtest-bin ## 1,000 clients on one gateway for SOAK (30m): RSS, goroutines and fds each minute; regenerates its section of docs/PERFORMANCE.md
	bin/loadrun -load soak -soak $(SOAK) -out bin/loadtest-soak.json -doc docs/PERFORMANCE.md -via "make soak SOAK=$(SOAK)" $(LOADRUN_FLAGS)

# One snapshotter at 2, 20 and 100 symbols against an in-process fake
# Binance (REST + market streams, real time); measures, asserts nothing.
.PHONY: symscale
SYMSCALE_FLAGS ?=
symscale: build ## snapshotter at 2, 20, 100 symbols vs a fake Binance (~30 min): CPU per 5 s interval, memory, frame sizes, Binance request budget; markdown on stdout (SYMSCALE_FLAGS="-measure 3m -out bin/symscale.md"); see docs/PERFORMANCE.md
	cd loadtest && $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/symscale ./cmd/symscale
	bin/symscale -via "make symscale$(if $(SYMSCALE_FLAGS), SYMSCALE_FLAGS=\"$(SYMSCALE_FLAGS)\")" $(SYMSCALE_FLAGS)

fuzz: ## fuzz the client-message decoder; new corpus entries land in Go's cache (copy interesting ones to testdata/)
	cd pkg && $(GO) test -run '^$$' -fuzz FuzzDecodeClientMessage -fuzztime $(FUZZTIME) ./protocol

lint: ## gofmt check and go vet over every module
	@bad=$$(gofmt -l $(MODULES) $(DEPLOY_MODULES)); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@set -e; for m in $(DEPLOY_MODULES); do (cd $$m && GOWORK=off $(GO) vet ./...); done
	cd services/gateway && CGO_ENABLED=0 $(GO) build -o /dev/null .

fmt:
	gofmt -w $(MODULES) $(DEPLOY_MODULES)

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin

screenshot: build ## docs/screenshot.png (1280x800): bin/ on temp ports, a temp DuckDB with demo data, headless Chromium
	cd e2e && LIQSTREAM_BIN=$(CURDIR)/bin LIQSTREAM_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(GO) test -tags screenshot -count=1 -run '^TestScreenshot$$' -v .
