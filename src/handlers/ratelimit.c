/* ratelimit.c (handlers) — see ratelimit.h. */
#include "handlers/ratelimit.h"
#include "config/config.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/xalloc.h"
#include "http/clientkey.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/router.h"
#include "http/server.h"
#include "services/ratelimit.h"
#include "services/sessions.h"
#include "store/users.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROXIES 64

struct cidr {
	int family;
	unsigned char addr[16];
	int prefix;
};

struct limits {
	struct ratelimit *rl;
	struct rl_policy anon, user, auth, login_account, login_device;
	struct cidr proxies[MAX_PROXIES];
	int nproxies;
};

static int parse_cidr(const char *text, struct cidr *out)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		return -1;
	}
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || p < 0 || p > out->prefix)
			return -1;
		out->prefix = (int)p;
	}
	return 0;
}

static bool in_cidr(const struct cidr *c, const char *ip)
{
	unsigned char a[16];
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	if (fam != c->family || inet_pton(fam, ip, a) != 1)
		return false;
	int full = c->prefix / 8, rest = c->prefix % 8;
	if (memcmp(a, c->addr, (size_t)full) != 0)
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		return (a[full] & mask) == (c->addr[full] & mask);
	}
	return true;
}

static bool trusted(const struct limits *l, const char *ip)
{
	for (int i = 0; i < l->nproxies; i++)
		if (in_cidr(&l->proxies[i], ip))
			return true;
	return false;
}

int limits_create(const struct config *cfg, struct redis *redis, struct limits **out)
{
	char why[160];
	*out = NULL;
	struct limits *l = xcalloc(1, sizeof(*l));
	struct {
		const char *text, *name, *env;
		struct rl_policy *p;
	} pol[] = {
	    {cfg->rate_limit_anon, "anon", "TANDEM_RATE_LIMIT_ANON (--rate-limit-anon)", &l->anon},
	    {cfg->rate_limit_user, "user", "TANDEM_RATE_LIMIT_USER (--rate-limit-user)", &l->user},
	    {cfg->rate_limit_auth, "auth", "TANDEM_RATE_LIMIT_AUTH (--rate-limit-auth)", &l->auth},
	    {cfg->rate_limit_login, "login-account", "TANDEM_RATE_LIMIT_LOGIN (--rate-limit-login)",
	     &l->login_account},
	    {cfg->rate_limit_login, "login-device", "TANDEM_RATE_LIMIT_LOGIN (--rate-limit-login)",
	     &l->login_device},
	};
	for (size_t i = 0; i < sizeof(pol) / sizeof(pol[0]); i++) {
		if (rl_policy_parse(pol[i].text ? pol[i].text : "", pol[i].name, pol[i].p, why,
				    sizeof(why)) < 0) {
			fprintf(stderr, "tandem: invalid setting %s = \"%s\": %s\n", pol[i].env,
				pol[i].text ? pol[i].text : "", why);
			free(l);
			return -1;
		}
	}
	if (cfg->trusted_proxies) {
		char *list = xstrdup(cfg->trusted_proxies), *save = NULL;
		for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (l->nproxies >= MAX_PROXIES ||
			    parse_cidr(t, &l->proxies[l->nproxies]) < 0) {
				fprintf(
				    stderr,
				    "tandem: invalid setting TANDEM_TRUSTED_PROXIES "
				    "(--trusted-proxies) = \"%s\": \"%s\" is not an IP address or "
				    "CIDR (at most %d entries)\n",
				    cfg->trusted_proxies, t, MAX_PROXIES);
				free(list);
				free(l);
				return -1;
			}
			l->nproxies++;
		}
		free(list);
	}
	/* Off: no limiter, but the trusted proxies still say who the client is (the per-client
	 * caps of live channels and connections key on it). */
	if (cfg->rate_limit)
		l->rl = ratelimit_create(cfg->rate_limit_max_keys, redis);
	*out = l;
	return 0;
}

void limits_free(struct limits *l)
{
	if (!l)
		return;
	ratelimit_free(l->rl);
	free(l);
}

bool limits_trusted_peer(const struct limits *l, const char *ip)
{
	return l && l->nproxies && trusted(l, ip);
}

bool limits_on(const struct limits *l)
{
	return l && l->rl;
}

const char *client_ip(struct request *req, const struct limits *l)
{
	const char *peer = request_peer(req);
	if (!l || !l->nproxies || !trusted(l, peer))
		return peer;
	const char *xff = request_header_all(req, "X-Forwarded-For");
	if (!xff)
		return peer;
	return forwarded_client(&req->arena, l, peer, xff);
}

const char *forwarded_client(struct arena *a, const struct limits *l, const char *peer,
			     const char *xff)
{
	/* Walk from the right: entries added by our own proxies are trusted; the first one
	 * that is not is the client. Anything further left was written by the client. */
	char *list = arena_strdup(a, xff);
	const char *client = peer;
	for (;;) {
		char *comma = strrchr(list, ',');
		char *item = comma ? comma + 1 : list;
		while (*item == ' ' || *item == '\t')
			item++;
		size_t n = strlen(item);
		while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
			item[--n] = '\0';
		if (n == 0 || n > 45)
			return client;
		if (!trusted(l, item))
			return item;
		client = item;
		if (!comma)
			return client;
		*comma = '\0';
	}
}

/*
 * A ROUTE_SENSITIVE request that costs a bcrypt (a current password to check) or answers
 * whether an e-mail address is registered (an e-mail change, a member added by e-mail): with
 * a stolen access token, the general per-user rate would let one guess a password or probe
 * addresses hundreds of times a minute.
 */
static bool sensitive(struct request *req)
{
	if (!req->route || !(req->route->flags & ROUTE_SENSITIVE) || !req->body_len)
		return false;
	json_t *j = json_loadb(req->body, req->body_len, 0, NULL);
	bool yes = json_object_get(j, "current_password") || json_object_get(j, "email");
	json_decref(j);
	return yes;
}

/*
 * The RateLimit fields for the bucket `r` shows (draft-ietf-httpapi-ratelimit-headers):
 * RateLimit-Policy states its real burst and refill window (rl_policy_quota/_window_s),
 * RateLimit what is left of it now and when it is full again; a refusal adds Retry-After and
 * names the policy for the problem body. Replaces fields set before for this request.
 */
static void limit_headers(struct request *req, const struct rl_result *r)
{
	const struct rl_policy *p = r->policy;
	reply_header_set(req, "RateLimit-Policy",
			 arena_printf(&req->arena, "\"%s\";q=%lld;w=%lld", p->name,
				      (long long)rl_policy_quota(p),
				      (long long)rl_policy_window_s(p)));
	reply_header_set(req, "RateLimit",
			 arena_printf(&req->arena, "\"%s\";r=%lld;t=%lld", p->name,
				      (long long)r->remaining, (long long)r->reset_s));
	req->limit_shown = r;
	if (r->allowed)
		return;
	reply_header_set(req, "Retry-After",
			 arena_printf(&req->arena, "%lld", (long long)r->retry_after_s));
	req->limit_policy = p->name;
}

int handlers_rate_limit(struct request *req)
{
	struct limits *l = req->app->limits;
	struct rl_key keys[3];
	struct rl_result *r = arena_alloc(&req->arena, sizeof(*r));
	int n = 0;
	bool strict = false;

	if (!l || !l->rl || (req->route && (req->route->flags & ROUTE_UNLIMITED)))
		return 0;
	/* Per-IP buckets key on client_key(): one IPv6 client holds a whole /64. */
	char ip[CLIENT_KEY_LEN];
	client_key(client_ip(req, l), ip);
	if (req->route && (req->route->flags & ROUTE_AUTH_LIMIT)) {
		/* Every attempt from the address. A login's account is limited on failures only,
		 * once the name is resolved (handlers_login_limit). */
		strict = true;
		keys[n++] = (struct rl_key){&l->auth, arena_printf(&req->arena, "ip:%s", ip)};
	} else if (req->user && sensitive(req)) {
		/* The general bucket too, so that these requests still count there. */
		strict = true;
		keys[n++] =
		    (struct rl_key){&l->user, arena_printf(&req->arena, "user:%s", req->user->id)};
		keys[n++] =
		    (struct rl_key){&l->auth, arena_printf(&req->arena, "user:%s", req->user->id)};
		keys[n++] = (struct rl_key){&l->auth, arena_printf(&req->arena, "ip:%s", ip)};
	} else if (req->user) {
		keys[n++] =
		    (struct rl_key){&l->user, arena_printf(&req->arena, "user:%s", req->user->id)};
	} else {
		keys[n++] = (struct rl_key){&l->anon, arena_printf(&req->arena, "ip:%s", ip)};
	}
	ratelimit_check(l->rl, keys, n, strict, r);
	if (!r->policy)
		r->policy = keys[0].policy;
	limit_headers(req, r);
	if (r->allowed)
		return 0;
	return error_set(&req->err, ERR_RATE_LIMITED, "too many requests; retry in %lld s",
			 (long long)r->retry_after_s);
}

void handlers_login_limit(struct request *req, struct login_limit *lim, struct rl_result *res)
{
	struct limits *l = req->app->limits;
	memset(lim, 0, sizeof(*lim));
	memset(res, 0, sizeof(*res));
	lim->result = res;
	if (!l || !l->rl)
		return;
	lim->rl = l->rl;
	lim->account = &l->login_account;
	lim->device = &l->login_device;
}

void handlers_login_limited(struct request *req, const struct login_limit *lim)
{
	const struct rl_result *r = lim->result, *shown = req->limit_shown;
	if (!lim->checked || !r->policy)
		return;
	/* A success gave its token back: the fields keep showing the address's bucket. */
	if (!r->allowed ||
	    (lim->kept && (!shown || r->remaining < shown->remaining ||
			   (r->remaining == shown->remaining && r->reset_s > shown->reset_s))))
		limit_headers(req, r);
}
