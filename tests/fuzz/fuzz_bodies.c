/*
 * fuzz_bodies.c — the JSON request bodies: the fuzzer's bytes go through jansson exactly as
 * request_json() reads a body (duplicates refused, a non-object refused before any service
 * sees it), then through every service that takes a body: register, login, refresh, logout,
 * password change, profile patch, project create / patch, member add / patch, task create /
 * patch.
 *
 * No database: store_conn is wrapped (fake_store.c), so each service runs its validation for
 * real and then meets a store whose every statement fails. What validation and storage do
 * together (a member found by e-mail, an assignee who must be a member) is out of reach here;
 * the e2e suite covers it. Properties checked beyond the sanitizers: every call fails with a
 * known error kind that matches its return code and leaves no transaction open, a validation
 * failure names at least one field or says why, and a body that reached the database has the
 * required fields, of the right type and length.
 */
#include "fuzz.h"
#include "core/arena.h"
#include "core/error.h"
#include "services/accounts.h"
#include "services/auth.h"
#include "services/members.h"
#include "services/projects.h"
#include "services/sessions.h"
#include "services/tasks.h"
#include "services/validate.h"
#include "store/db.h"
#include "store/users.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char PROJECT[] = "01900000-0000-7000-8000-000000000001";
static const char TASK[] = "01900000-0000-7000-8000-000000000002";
static const char OTHER[] = "01900000-0000-7000-8000-000000000003";

static struct auth au;
static struct user me;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memset(&au, 0, sizeof(au));
	memset(au.key.secret, 'k', 32);
	au.key.len = 32;
	au.access_ttl_s = 900;
	au.refresh_ttl_s = 86400;
	au.bcrypt_cost = 4;
	/* Not a bcrypt hash: password_verify() says no at once (no 2^cost rounds per input). */
	snprintf(au.dummy_hash, sizeof(au.dummy_hash), "%s", "*0");
	me = (struct user){.id = OTHER,
			   .username = "alice",
			   .email = "alice@example.com",
			   .display_name = "Alice",
			   .password_hash = "*0",
			   .is_active = true,
			   .token_version = 1,
			   .version = 1};
	return 0;
}

/* A string member of at least min and at most max code points. */
static bool has_string(json_t *body, const char *key, size_t min, size_t max)
{
	const char *s = json_string_value(json_object_get(body, key));
	if (!s)
		return false;
	size_t n = utf8_length(s);
	return n >= min && n <= max;
}

/*
 * One service call's outcome. `reached`: the call ran a statement, so validation let the
 * body through.
 */
static void check(int rc, struct error *err, bool reached, bool body_ok, const char *call)
{
	FUZZ_CHECK(rc < 0); /* no statement ever succeeds here */
	FUZZ_CHECK(-rc > ERR_OK && -rc < ERR__COUNT);
	FUZZ_CHECK(err->kind == -rc);
	/* Every transaction begun was ended (tx_finish): the connection is reusable. */
	FUZZ_CHECK(fuzz_fake_conn()->tx_depth == 0);
	if (rc == -ERR_VALIDATION_FAILED)
		FUZZ_CHECK(error_field_count(err) > 0 || err->detail[0]);
	if (reached && !body_ok)
		fuzz_fail(__FILE__, __LINE__, call); /* validation let a bad body through */
	error_release(err);
}

#define CALL(expr, body_ok)                                                                        \
	do {                                                                                       \
		unsigned long before = fuzz_fake_queries();                                        \
		int rc_ = (expr);                                                                  \
		check(rc_, &err, fuzz_fake_queries() != before, (body_ok), #expr);                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body =
	    json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!body)
		return 0;
	if (!json_is_object(body)) {
		json_decref(body);
		return 0; /* request_json() answers 422 before any service */
	}

	struct arena a;
	struct error err = ERROR_INIT;
	struct session sess;
	struct user u;
	struct project p;
	struct member m;
	struct task t;
	arena_init(&a);

	CALL(auth_register(&au, NULL, &a, body, &sess, &err),
	     has_string(body, "email", 3, 254) && has_string(body, "username", 3, 32) &&
		 has_string(body, "password", 8, 128) &&
		 valid_email(json_string_value(json_object_get(body, "email"))));
	CALL(auth_login(&au, NULL, &a, body, NULL, &sess, &err),
	     has_string(body, "login", 1, 254) && has_string(body, "password", 1, 1024) &&
		 (!json_object_get(body, "device_token") ||
		  has_string(body, "device_token", 1, 512)));
	CALL(auth_refresh(&au, NULL, &a, body, &sess, &err),
	     has_string(body, "refresh_token", 1, 512));
	CALL(auth_logout(&au, NULL, &a, body, &err), has_string(body, "refresh_token", 1, 512));
	CALL(auth_change_password(&au, NULL, &a, &me, body, &err),
	     has_string(body, "current_password", 1, 1024) &&
		 has_string(body, "new_password", 8, 128));
	CALL(auth_update_profile(NULL, &a, &me, body, &u, &err),
	     !json_object_get(body, "password") && !json_object_get(body, "is_admin"));
	CALL(project_create(NULL, &a, &me, body, &p, &err), has_string(body, "name", 1, 100));
	CALL(project_update(NULL, &a, &me, PROJECT, body, NULL, &p, &err),
	     !json_object_get(body, "owner_id"));
	CALL(member_add(NULL, &a, &me, PROJECT, body, &m, &err),
	     !!json_object_get(body, "user_id") + !!json_object_get(body, "username") +
		     !!json_object_get(body, "email") ==
		 1);
	CALL(member_update(NULL, &a, &me, PROJECT, OTHER, body, &m, &err),
	     json_is_string(json_object_get(body, "role")));
	CALL(task_create(NULL, &a, &me, PROJECT, body, &t, &err),
	     has_string(body, "title", 1, 200));
	CALL(task_update(NULL, &a, &me, TASK, body, NULL, &t, &err),
	     !json_object_get(body, "version") && !json_object_get(body, "project_id"));

	arena_release(&a);
	json_decref(body);
	return 0;
}
