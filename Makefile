# ccat-data-transfer: the two commands that matter are `make demo` and `make test`.
SWIFT ?= swift
CONFIGURATION ?= debug
SWIFT_FLAGS ?= -c $(CONFIGURATION)
PREFIX ?= /usr/local
PG := scripts/local-postgres.sh
BIN_DIR = $(shell $(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)

.PHONY: all build deps db db-stop demo test bench bench-10m bench-wan fuzz install deb clean

all: build

build:
	$(SWIFT) build $(SWIFT_FLAGS)

## deps: the system packages (and the S3 test server) for DEPS=build|demo|test|package (default test);
## installs what is missing as root, else prints the command to run (scripts/install-deps.sh)
DEPS ?= test
deps:
	@scripts/install-deps.sh $(DEPS)

## db: start the local PostgreSQL cluster (under .ccat-dev/) and apply migrations
db: build
	@$(PG) start >/dev/null
	$(BIN_DIR)/ccat db migrate

## db-stop: stop the local PostgreSQL cluster (its data is kept; `scripts/local-postgres.sh destroy` removes it)
db-stop:
	$(PG) stop

## demo: the whole pipeline on this machine (local PostgreSQL, S3 server, local scheduler;
## SCHEDULER=slurm for the single-node Slurm cluster): instrument files to both archives, then cleanup;
## prints the daemon's status page address; KEEP_RUNNING=1 leaves the daemon and its page up at the end;
## SITES=1 deploys it on four hosts (network namespaces, TLS to the database; as root)
demo:
	@scripts/install-deps.sh $(if $(or $(filter slurm,$(SCHEDULER)),$(SITES)),test,demo)
	$(SWIFT) build $(SWIFT_FLAGS)
	$(if $(SITES),DEMO_SITES=1) scripts/demo.sh $(BIN_DIR) $(if $(KEEP_RUNNING),--keep-running)

## test: the whole test suite against a real PostgreSQL, the S3 test server (moto_server), munged
## (two, with different keys), and, where installed and we are root, the single-node Slurm cluster
## and a loopback sshd (rsync over ssh); as root also the four hosts of scripts/local-sites.sh
test:
	@scripts/install-deps.sh test
	@$(PG) start >/dev/null
	@scripts/local-s3.sh start >/dev/null
	@scripts/local-munge.sh start >/dev/null
	@scripts/local-munge.sh start foreign >/dev/null
	@if command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then scripts/local-slurm.sh start >/dev/null; fi
	@if [ -x /usr/sbin/sshd ] && [ "$$(id -u)" = 0 ]; then scripts/local-sshd.sh start >/dev/null; fi
	@if command -v ip >/dev/null 2>&1 && [ -x /usr/sbin/sshd ] && [ "$$(id -u)" = 0 ]; then scripts/local-sites.sh start >/dev/null; fi
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) build $(SWIFT_FLAGS) --product generate-manual
	CCAT_BIN_DIR=$(BIN_DIR) SWIFT="$(SWIFT)" scripts/run-tests.sh $(SWIFT_FLAGS)

## bench: benchmarks against the standard tools, in release mode (bench/README.md says what each measures)
BENCH_FLAGS ?= -c release
BENCH_FILES ?= 1000000
bench:
	@$(PG) start >/dev/null
	@if command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then scripts/local-slurm.sh start >/dev/null; fi
	@scripts/local-s3.sh start >/dev/null
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-dispatch
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-storage
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-managers
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-integrity
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-runner
	@if [ -f .ccat-dev/slurm/etc/slurm.conf ]; then export SLURM_CONF="$$PWD/.ccat-dev/slurm/etc/slurm.conf"; fi; \
	  $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-dispatch
	CCAT_TEST_S3_ENDPOINT=$$(cat .ccat-dev/s3/endpoint) $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-storage
	$$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-managers --files $(BENCH_FILES)
	$$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-integrity
	@if command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  $(SWIFT) build $(BENCH_FLAGS) --product ccat && $(SWIFT) build $(BENCH_FLAGS) --product ccat-runner && \
	  bench/slurm-staging.sh $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path); fi
	@if command -v ip >/dev/null 2>&1 && [ -x /usr/sbin/sshd ] && [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory bench-wan; \
	  else echo "bench: wan skipped (needs root, iproute2 and openssh-server: the hosts of scripts/local-sites.sh)"; fi

## bench-10m: the managers' cycles on a catalogue of 10,000,000 files (about 10 GB of database,
## eight minutes, most of it filling); BENCH_FILES=N sets another size
bench-10m:
	@$(PG) start >/dev/null
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-bench-managers
	$$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)/ccat-bench-managers --files $(if $(filter command line,$(origin BENCH_FILES)),$(BENCH_FILES),10000000)

## bench-wan: the Chile-Cologne link alone (bench/wan.sh, as root): one rsync stream against the
## pipeline over the emulated WAN; WAN_RATE, WAN_GB, WAN_BUNDLE_MB, WAN_BOUNDS, WAN_DECISION
bench-wan:
	$(SWIFT) build $(BENCH_FLAGS) --product ccat
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-runner
	$(SWIFT) build $(BENCH_FLAGS) --product ccat-wan-emulator
	bench/wan.sh $$($(SWIFT) build $(BENCH_FLAGS) --show-bin-path)

## fuzz: libFuzzer on the parsers of outside input, FUZZ_SECONDS per target (scripts/fuzz.sh;
## CI runs 10 s each after the tests)
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## install: release binaries, schema, job-script templates, man pages, completions, examples and
## the systemd unit under $(PREFIX) (and $(DESTDIR)); docs/admin-guide.md "Installing" says what follows
install:
	$(SWIFT) build -c release --product ccat
	$(SWIFT) build -c release --product ccat-runner
	$(SWIFT) build -c release --product generate-manual
	scripts/install.sh $$($(SWIFT) build -c release --show-bin-path) $(PREFIX)

## deb: ccat-data-transfer_<version>_amd64.deb in dist/, from the same install tree (Swift runtime
## linked statically; scripts/make-deb.sh)
deb:
	@scripts/install-deps.sh package
	scripts/make-deb.sh

clean:
	$(SWIFT) package clean
