# A thin wrapper: the real work is in scripts/ (see README.md).
#   make run [ARGS="--listen 127.0.0.1:9090"]   install what is missing, build, serve
#   make test                                    everything scripts/test runs
#   make build                                   build/tandem only
#   make bench                                   bench/run (reports numbers, never fails the build;
#                                                settings: bench/README.md)
#   make fuzz [FUZZ_TIME=300] [HARNESS="bodies query"]
#                                                the libFuzzer harnesses of tests/fuzz, long
#                                                (FUZZ_TIME seconds each); what they find is kept
#                                                in build-fuzz/corpus/ for the next run
#   make format                                  clang-format -i over src/, tests/unit/, tests/fuzz/

ARGS ?=
FUZZ_TIME ?= 300
HARNESS ?=
FORMAT_FILES = $(shell find src tests/unit tests/fuzz -type f \( -name '*.c' -o -name '*.h' \) | sort)

.PHONY: all run test build bench fuzz format clean

all: build

run:
	./scripts/run $(ARGS)

test:
	./scripts/test

build:
	./scripts/deps run
	@if [ -f build/build.ninja ]; then :; else meson setup build --buildtype=debugoptimized; fi
	ninja -C build

bench:
	./scripts/deps test
	bench/run

fuzz:
	./scripts/deps test
	FUZZ_TIME=$(FUZZ_TIME) FUZZ_CORPUS=$(CURDIR)/build-fuzz/corpus ./scripts/fuzz $(HARNESS)

format:
	clang-format -i $(FORMAT_FILES)

clean:
	rm -rf build build-asan build-fuzz
