/*
 * fuzz_request.c — what the request accessors (http/request.c) and the shared handler helpers
 * (handlers/common.c, handlers/ratelimit.c) make of a request's headers, query arguments and
 * body: request_json() (Content-Type and the JSON), If-Match and If-None-Match, the query
 * string checked against the route (request_check_query), the Link
 * target request_url_with() rebuilds from the path and arguments, and client_ip() behind
 * trusted proxies (request_peer and the joined X-Forwarded-For lines).
 *
 * libmicrohttpd is not running: MHD_lookup_connection_value, MHD_get_connection_values(_n)
 * and MHD_get_connection_info are wrapped (-Wl,--wrap) and answer from the input, the way
 * libmicrohttpd would after parsing (headers case-insensitive, arguments as decoded).
 *
 * Input, one item a line: "H name: value" a header (repeatable), "Q key=value" an argument,
 * "P /path" the path, "A address" the peer (IPv4 or IPv6), and "B" then the rest of the
 * input is the body. Properties beyond the sanitizers: request_json answers 415, 400 or 422
 * or gives an object; If-Match gives a positive version, none, or 412; the Link target is
 * plain ASCII in the URL's safe set and ends with the cursor given; the client address is the peer
 * or an entry of X-Forwarded-For; a CORS grant (http/cors.c) goes only to a listed Origin and
 * names only request headers that were asked, each once per asking.
 */
#include "fuzz.h"
#include "config/config.h"
#include "core/arena.h"
#include "core/error.h"
#include "handlers/common.h"
#include "handlers/ratelimit.h"
#include "http/cors.h"
#include "http/request.h"
#include "http/router.h"
#include "services/precondition.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ITEMS 32

struct item {
	enum MHD_ValueKind kind;
	const char *key, *value;
};

static struct item items[MAX_ITEMS];
static struct cors *cors;
static int nitems;
static struct sockaddr_storage peer;
static union MHD_ConnectionInfo peer_info;
static struct limits *limits;

const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
					       const char *key);
const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
					       const char *key)
{
	(void)c;
	for (int i = 0; i < nitems; i++)
		if (items[i].kind == kind &&
		    (kind == MHD_HEADER_KIND ? !strcasecmp(items[i].key, key)
					     : !strcmp(items[i].key, key)))
			return items[i].value;
	return NULL;
}

int __wrap_MHD_get_connection_values_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
				       MHD_KeyValueIteratorN it, void *cls);
int __wrap_MHD_get_connection_values_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
				       MHD_KeyValueIteratorN it, void *cls)
{
	(void)c;
	int n = 0;
	for (int i = 0; i < nitems; i++) {
		if (items[i].kind != kind)
			continue;
		n++;
		if (it && it(cls, kind, items[i].key, strlen(items[i].key), items[i].value,
			     items[i].value ? strlen(items[i].value) : 0) != MHD_YES)
			break;
	}
	return n;
}

/* The plain iterator is the _n one without the lengths. */
struct plain_it {
	MHD_KeyValueIterator it;
	void *cls;
};

static enum MHD_Result plain_each(void *cls, enum MHD_ValueKind kind, const char *key,
				  size_t key_size, const char *value, size_t value_size)
{
	struct plain_it *p = cls;
	(void)key_size;
	(void)value_size;
	return p->it ? p->it(p->cls, kind, key, value) : MHD_YES;
}

int __wrap_MHD_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
				     MHD_KeyValueIterator it, void *cls);
int __wrap_MHD_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
				     MHD_KeyValueIterator it, void *cls)
{
	struct plain_it p = {it, cls};
	return __wrap_MHD_get_connection_values_n(c, kind, plain_each, &p);
}

const union MHD_ConnectionInfo *__wrap_MHD_get_connection_info(struct MHD_Connection *c,
							       enum MHD_ConnectionInfoType t, ...);
const union MHD_ConnectionInfo *__wrap_MHD_get_connection_info(struct MHD_Connection *c,
							       enum MHD_ConnectionInfoType t, ...)
{
	(void)c;
	if (t != MHD_CONNECTION_INFO_CLIENT_ADDRESS)
		return NULL;
	peer_info.client_addr = (struct sockaddr *)&peer;
	return &peer_info;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static const char *const flags[] = {
	    "--rate-limit=on", "--rate-limit-anon=60/min", "--rate-limit-user=600/min",
	    "--rate-limit-max-keys=16", "--trusted-proxies=127.0.0.1, 10.0.0.0/8, ::1, fd00::/8"};
	struct config cfg;
	char why[320];
	/* A harness that cannot set up must not run as if it had. */
	if (fuzz_config(&cfg, sizeof(flags) / sizeof(flags[0]), flags) < 0 ||
	    cors_create("http://127.0.0.1:5173, https://app.example.com", &cors, why, sizeof(why)) <
		0 ||
	    limits_create(&cfg, NULL, &limits) < 0)
		abort();
	config_release(&cfg); /* limits keeps what it needs */
	return 0;
}

static bool url_safe(const char *s)
{
	for (; *s; s++)
		if (!strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~,%/?&=",
			*s))
			return false;
	return true;
}

static void run(struct request *req)
{
	json_t *body;
	struct precondition pre;
	int rc = request_json(req, &body);
	if (rc == 0)
		FUZZ_CHECK(json_is_object(body));
	else
		FUZZ_CHECK(rc == -ERR_UNSUPPORTED_MEDIA_TYPE || rc == -ERR_MALFORMED_JSON ||
			   rc == -ERR_VALIDATION_FAILED);
	error_release(&req->err);

	if_match(req, &pre);
	FUZZ_CHECK(request_header(req, "If-Match") || pre.any);
	FUZZ_CHECK(!pre.any || (!pre.nversions && !pre.weak && !pre.malformed));
	FUZZ_CHECK(pre.nversions >= 0 && pre.nversions <= PRECONDITION_MAX_VERSIONS);
	for (int i = 0; i < pre.nversions; i++)
		FUZZ_CHECK(pre.versions[i] > 0);
	/* A condition that is not "any" names a version or says why it cannot match. */
	FUZZ_CHECK(pre.any || pre.nversions || pre.weak || pre.malformed);
	(void)if_none_match(req, 3);

	const char *url = request_url_with(req, "cursor", "abc.DEF-_");
	FUZZ_CHECK(url_safe(url));
	size_t n = strlen(url);
	FUZZ_CHECK(n >= 16 && !strcmp(url + n - 16, "cursor=abc.DEF-_"));

	/* The query string against the route's parameters (GET /v1/tasks unless P says another
	 * path): refused as unknown or invalid, or every argument's name reads back a value. */
	char methods[128];
	if (router_match(req, "GET", req->path, methods, sizeof(methods)) == ROUTER_FOUND) {
		rc = request_check_query(req);
		FUZZ_CHECK(rc == 0 || rc == -ERR_UNKNOWN_PARAMETER || rc == -ERR_VALIDATION_FAILED);
		FUZZ_CHECK(rc == 0 || req->err.kind == -rc);
		for (int i = 0; rc == 0 && i < nitems; i++)
			if (items[i].kind == MHD_GET_ARGUMENT_KIND &&
			    (items[i].key[0] || items[i].value)) /* not an empty segment */
				FUZZ_CHECK(request_query(req, items[i].key) != NULL);
		error_release(&req->err);
	}

	const char *ip = client_ip(req, limits);
	FUZZ_CHECK(ip && *ip);
	const char *xff = request_header_all(req, "X-Forwarded-For");
	if (xff && strcmp(ip, request_peer(req)) != 0)
		FUZZ_CHECK(strstr(xff, ip) != NULL);

	const char *origin = request_header(req, "Origin");
	const char *granted = cors_allow_origin(cors, origin);
	if (granted)
		FUZZ_CHECK(!strcmp(granted, origin) &&
			   (!strcmp(origin, "http://127.0.0.1:5173") ||
			    !strcmp(origin, "https://app.example.com")));
	const char *asked = request_header(req, "Access-Control-Request-Headers");
	char allow[256];
	if (cors_allow_headers(asked, allow, sizeof(allow)) == 0) {
		/* every name granted was asked (in any case) */
		for (const char *p = allow; *p;) {
			size_t len = strcspn(p, ",");
			char name[64];
			FUZZ_CHECK(len > 0 && len < sizeof(name));
			memcpy(name, p, len);
			name[len] = '\0';
			FUZZ_CHECK(asked && strcasestr(asked, name));
			p += len;
			while (*p == ',' || *p == ' ')
				p++;
		}
		FUZZ_CHECK(asked || !allow[0]);
	}
	(void)cors_method_listed("GET, PATCH, DELETE", request_header(req, "X-Method"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	struct request req;
	memset(&req, 0, sizeof(req));
	arena_init(&req.arena);
	req.conn = (struct MHD_Connection *)&req; /* never dereferenced: the wraps answer */
	req.path = "/v1/tasks";
	req.method = "GET";
	nitems = 0;
	memset(&peer, 0, sizeof(peer));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&peer;
	v4->sin_family = AF_INET;
	v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	for (char *p = text; p && *p;) {
		char *nl = strchr(p, '\n');
		if (p[0] == 'B') {
			req.body = p + 1;
			req.body_len = strlen(p + 1); /* the rest, newlines and all */
			break;
		}
		if (nl)
			*nl = '\0';
		char *arg = p[0] && p[1] == ' ' ? p + 2 : NULL;
		if (arg && p[0] == 'H' && nitems < MAX_ITEMS) {
			char *colon = strchr(arg, ':');
			if (colon) {
				*colon = '\0';
				const char *v = colon + 1;
				while (*v == ' ')
					v++;
				items[nitems++] = (struct item){MHD_HEADER_KIND, arg, v};
			}
		} else if (arg && p[0] == 'Q' && nitems < MAX_ITEMS) {
			char *eq = strchr(arg, '=');
			if (eq)
				*eq = '\0';
			items[nitems++] =
			    (struct item){MHD_GET_ARGUMENT_KIND, arg, eq ? eq + 1 : NULL};
		} else if (arg && p[0] == 'P') {
			req.path = arg;
		} else if (arg && p[0] == 'A') {
			struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&peer;
			struct in6_addr a6;
			struct in_addr a4;
			if (inet_pton(AF_INET, arg, &a4) == 1) {
				v4->sin_addr = a4;
			} else if (inet_pton(AF_INET6, arg, &a6) == 1) {
				memset(&peer, 0, sizeof(peer));
				v6->sin6_family = AF_INET6;
				v6->sin6_addr = a6;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	run(&req);
	error_release(&req.err);
	arena_release(&req.arena);
	free(text);
	return 0;
}
