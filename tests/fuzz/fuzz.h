/*
 * fuzz.h — what the libFuzzer harnesses of tests/fuzz/ share.
 *
 * Each harness is one executable with LLVMFuzzerTestOneInput; meson builds them with
 * -Dfuzz=true (clang, ASan + UBSan, see tests/fuzz/README.md). A harness must not leak, keep
 * no state between inputs beyond what it sets up once, and check properties with
 * FUZZ_CHECK: a broken property aborts like a sanitizer finding does.
 */
#ifndef TANDEM_TESTS_FUZZ_H
#define TANDEM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct arena;
struct config;
struct db_conn;
struct error;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A property: when it does not hold, say which (through the sanitizer's report stream, which
 * libFuzzer keeps open under -close_fd_mask) and abort like a sanitizer finding.
 */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
	} while (0)

__attribute__((noreturn)) void fuzz_fail(const char *file, int line, const char *what);

/* The input as a NUL-terminated string (malloc'd; embedded NULs cut it short). */
char *fuzz_string(const uint8_t *data, size_t size);

/*
 * A database that is never there (fake_store.c): every statement fails with
 * -ERR_UNAVAILABLE, transactions begin and end. The harnesses link with
 * -Wl,--wrap=store_conn, so a service asking for its connection gets this one: whatever a
 * service checks before its first statement runs for real, and nothing needs a server.
 */
struct db_conn *fuzz_fake_conn(void);
/* Statements run on the fake connection since start-up (0: validation refused the input). */
unsigned long fuzz_fake_queries(void);

/*
 * tandem's own settings (config_load: every default, so a harness never misses a setting
 * added later) with the given flags on top, e.g. "--trusted-proxies=10.0.0.0/8". Returns
 * config_load's answer (a refusal is said on stderr); release with config_release either way.
 */
int fuzz_config(struct config *cfg, int nflags, const char *const *flags);

#endif
