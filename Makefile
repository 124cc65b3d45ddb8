# Dossier — plain Make. `make` builds every process and the CLI; `make run` starts
# the supervisor on the embedded default; `make test` runs unit and end-to-end tests.
# SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/.

CC      ?= cc
PKGS    := libczmq libzmq msgpack jansson sqlite3 libh2o-evloop rdkafka libmongoc-1.0 libbson-1.0 libcurl libmicrohttpd
CONFIG  ?= config/dossier.cfg

ifeq ($(SANITIZE),1)
BUILD   := build-san
OPT     := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
OPT     := -O2
endif
BIN     := $(BUILD)/bin

CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror -MMD -MP \
           -Icommon -Idomain -DH2O_USE_LIBUV=0 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += $(OPT)
LDLIBS  += -Wl,--as-needed $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lssl -lcrypto -lz -lpthread -lm

# The shared library code: envelope codec, logging, config, ids (common/) and the
# pure domain (domain/): aggregates, state machines, validation, rules.
LIB_SRC   := $(wildcard common/*.c domain/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)

# One folder per process. Each folder's main.c is the entry point; its other files
# are linked into that process and into the unit tests.
ACTORS    := store handler projector notifier gateway ingest scheduler
PROC_DIRS := broker supervisor cli $(addprefix actors/,$(ACTORS))
proc_bin   = $(BIN)/$(if $(filter cli,$(1)),dossier,dossier-$(notdir $(1)))
proc_objs  = $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
PROC_BINS := $(foreach d,$(PROC_DIRS),$(call proc_bin,$(d)))
# A unit test tests/unit/test_<module>_*.c links the library plus the non-main
# objects of the process folder its <module> names (test_store_x -> actors/store).
test_module = $(word 2,$(subst _, ,$(notdir $(1))))
module_dir  = $(or $(filter %/$(1),$(PROC_DIRS)),$(if $(filter projection,$(1)),actors/projector),$(filter $(1),$(PROC_DIRS)))
unit_deps   = $(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(foreach d,$(call module_dir,$(call test_module,$(1))),$(wildcard $(d)/*.c))))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit e2e clean valgrind lint
all: $(PROC_BINS) $(UNIT_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The gateway embeds the REST API's description with .incbin (actors/gateway/openapi.c).
$(BUILD)/actors/gateway/openapi.o: schemas/openapi.json

$(BUILD)/libdossier.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

define PROC_RULE
$(call proc_bin,$(1)): $(call proc_objs,$(1)) $(BUILD)/libdossier.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(PROC_DIRS),$(eval $(call PROC_RULE,$(d))))

define UNIT_RULE
$(BUILD)/tests/$(1): tests/unit/$(1).c $(call unit_deps,$(1)) $(BUILD)/libdossier.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$(filter %.c %.o %.a,$$^) $$(LDLIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC:tests/unit/%.c=%),$(eval $(call UNIT_RULE,$(t))))

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	DOSSIER_BIN_DIR=$(CURDIR)/$(BIN) exec $(BIN)/dossier-supervisor --config $(CONFIG)

unit: all
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Sanitizer reports of every process (children included) go to files; any file fails the run.
SAN_DIR := $(CURDIR)/$(BUILD)/san-reports
e2e: all
	@scripts/kafka.sh fetch
	@rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)
	DOSSIER_BIN_DIR=$(CURDIR)/$(BIN) ASAN_OPTIONS=log_path=$(SAN_DIR)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_DIR)/ubsan python3 -m pytest -q tests/e2e
	@if [ -n "$$(ls -A $(SAN_DIR))" ]; then echo "sanitizer reports:"; cat $(SAN_DIR)/*; exit 1; fi

test: deps
	@scripts/ferretdb.sh build     # the MongoDB wire server of the tests, into .cache/ (once)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

valgrind: all
	@set -e; for t in $(UNIT_BINS); do valgrind -q --leak-check=full --error-exitcode=1 $$t; done

# Benchmarks (bench/README.md): the C limits and tools build into $(BUILD)/bench/, then
# bench/run.py starts Dossier like the e2e harness and measures. BENCH_ARGS="--quick" etc.
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
.PHONY: bench bench-tools
$(BUILD)/bench/%: bench/%.c $(BUILD)/libdossier.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdossier.a $(LDLIBS)

bench-tools: $(PROC_BINS) $(BENCH_BINS)

bench: deps
	@$(MAKE) --no-print-directory bench-tools
	DOSSIER_BIN_DIR=$(CURDIR)/$(BIN) DOSSIER_BENCH_DIR=$(CURDIR)/$(BUILD)/bench python3 bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
