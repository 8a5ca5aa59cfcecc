# A thin wrapper: the real work is in scripts/ (see README.md).
#   make run [ARGS="--listen 127.0.0.1:9090"]   install what is missing, build, serve
#   make test                                    everything scripts/test runs
#   make build                                   build/tandem only
#   make bench                                   bench/run (reports numbers, never fails the build;
#                                                settings: bench/README.md)
#   make format                                  clang-format -i over src/ and tests/unit/

ARGS ?=
FORMAT_FILES = $(shell find src tests/unit -type f \( -name '*.c' -o -name '*.h' \) | sort)

.PHONY: all run test build bench format clean

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

format:
	clang-format -i $(FORMAT_FILES)

clean:
	rm -rf build build-asan
