/*
 * fuzz_ratelimit.c — the rate-limit settings and the client address behind proxies: the
 * policy parser (services/ratelimit.c, TANDEM_RATE_LIMIT_*), the trusted-proxy list
 * (handlers/ratelimit.c, TANDEM_TRUSTED_PROXIES) and the X-Forwarded-For walk (a client's
 * header, the part an attacker writes).
 *
 * Input, one per line: a policy, a proxy list, the TCP peer, the X-Forwarded-For value.
 * Properties beyond the sanitizers: an accepted policy is within its documented ranges and
 * its fresh bucket lets a first request through with burst - 1 left; a refused setting says
 * why; the client found is the peer or one entry of the header, never longer than an
 * address.
 */
#include "fuzz.h"
#include "config/config.h"
#include "core/arena.h"
#include "handlers/ratelimit.h"
#include "services/ratelimit.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static char *next_line(char **p)
{
	char *s = *p;
	if (!s)
		return NULL;
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = NULL;
	}
	return s;
}

static void policy(const char *text)
{
	struct rl_policy p;
	struct rl_result r;
	char why[160];
	why[0] = '\0';
	if (rl_policy_parse(text, "fuzz", &p, why, sizeof(why)) < 0) {
		FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
		return;
	}
	FUZZ_CHECK(p.count >= 1 && p.count <= 1000000000);
	FUZZ_CHECK(p.period_s >= 1 && p.period_s <= 86400);
	FUZZ_CHECK(p.burst >= 1 && p.burst <= 1000000000);
	FUZZ_CHECK(!strcmp(p.name, "fuzz"));
	int64_t now = 1765000000000, tat = rl_gcra_step(&p, 0, now, &r);
	FUZZ_CHECK(r.allowed && r.remaining == p.burst - 1 && tat > now);
	/* A second request at once: allowed exactly when the burst leaves room. */
	rl_gcra_step(&p, tat, now, &r);
	FUZZ_CHECK(r.allowed == (p.burst > 1));
	FUZZ_CHECK(r.remaining >= 0 && r.reset_s >= 0);
	if (!r.allowed)
		FUZZ_CHECK(r.retry_after_s >= 1);
}

static void forwarded(const char *proxies, const char *peer, const char *xff)
{
	struct config cfg;
	struct limits *l = NULL;
	const char *flags[] = {"--rate-limit=on", "--rate-limit-anon=60/min",
			       "--rate-limit-user=600/min,burst=100", "--rate-limit-max-keys=16",
			       NULL};
	int nflags = 4;
	char *trusted = NULL;
	if (proxies && asprintf(&trusted, "--trusted-proxies=%s", proxies) > 0)
		flags[nflags++] = trusted;
	int rc = fuzz_config(&cfg, nflags, flags);
	if (rc == 0)
		rc = limits_create(&cfg, NULL, &l);
	config_release(&cfg);
	free(trusted);
	if (rc < 0)
		return; /* refused, with a message on stderr */
	FUZZ_CHECK(l != NULL);
	if (peer && xff) {
		struct arena a;
		arena_init(&a);
		const char *ip = forwarded_client(&a, l, peer, xff);
		FUZZ_CHECK(ip != NULL);
		if (ip != peer) {
			FUZZ_CHECK(strlen(ip) <= 45 && strstr(xff, ip) != NULL);
			FUZZ_CHECK(!strchr(ip, ',') && ip[0] != ' ' && ip[0] != '\t');
		}
		arena_release(&a);
	}
	limits_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size), *p = text;
	const char *pol = next_line(&p), *proxies = next_line(&p), *peer = next_line(&p),
		   *xff = next_line(&p);
	policy(pol);
	if (proxies)
		forwarded(proxies, peer, xff);
	free(text);
	return 0;
}
