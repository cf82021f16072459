# ccat-data-transfer: the two commands that matter are `make demo` and `make test`.
SWIFT ?= swift
CONFIGURATION ?= debug
SWIFT_FLAGS ?= -c $(CONFIGURATION)
PREFIX ?= /usr/local
PG := scripts/local-postgres.sh
BIN_DIR = $(shell $(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)

.PHONY: all build db db-stop demo test bench install clean

all: build

build:
	$(SWIFT) build $(SWIFT_FLAGS)

## db: start the local PostgreSQL cluster (under .ccat-dev/) and apply migrations
db: build
	@$(PG) start >/dev/null
	$(BIN_DIR)/ccat db migrate

## db-stop: stop the local PostgreSQL cluster (its data is kept; `scripts/local-postgres.sh destroy` removes it)
db-stop:
	$(PG) stop

## demo: the whole pipeline on this machine (local PostgreSQL, S3 server, local scheduler;
## SCHEDULER=slurm for the single-node Slurm cluster): instrument files to both archives, then cleanup
demo: build
	scripts/demo.sh $(BIN_DIR)

## test: the whole test suite against a real PostgreSQL, the S3 test server (moto_server), munged
## (two, with different keys), and, where installed and we are root, the single-node Slurm cluster
## and a loopback sshd (rsync over ssh)
test:
	@$(PG) start >/dev/null
	@scripts/local-s3.sh start >/dev/null
	@scripts/local-munge.sh start >/dev/null
	@scripts/local-munge.sh start foreign >/dev/null
	@if command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then scripts/local-slurm.sh start >/dev/null; fi
	@if [ -x /usr/sbin/sshd ] && [ "$$(id -u)" = 0 ]; then scripts/local-sshd.sh start >/dev/null; fi
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	CCAT_BIN_DIR=$(BIN_DIR) SWIFT="$(SWIFT)" scripts/run-tests.sh $(SWIFT_FLAGS)

## bench: benchmarks against the standard tools, in release mode (bench/README.md says what each measures)
BENCH_FLAGS ?= -c release
bench:
	@$(PG) start >/dev/null
	@if command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then scripts/local-slurm.sh start >/dev/null; fi
	@scripts/local-s3.sh start >/dev/null
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-dispatch
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-storage
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-managers
	@if [ -f .ccat-dev/slurm/etc/slurm.conf ]; then export SLURM_CONF="$$PWD/.ccat-dev/slurm/etc/slurm.conf"; fi; \
	  $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-dispatch
	CCAT_TEST_S3_ENDPOINT=$$(cat .ccat-dev/s3/endpoint) $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-storage
	$$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-managers

## install: release binaries and their resources into $(PREFIX)/bin
install:
	$(SWIFT) build -c release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $$($(SWIFT) build -c release --show-bin-path)/ccat $$($(SWIFT) build -c release --show-bin-path)/ccat-runner $(DESTDIR)$(PREFIX)/bin/
	cp -R $$($(SWIFT) build -c release --show-bin-path)/ccat-data-transfer_OpsDB.resources $(DESTDIR)$(PREFIX)/bin/

clean:
	$(SWIFT) package clean
