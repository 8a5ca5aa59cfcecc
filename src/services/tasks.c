/* tasks.c — see tasks.h. */
#include "services/tasks.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/jsonw.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/access.h"
#include "services/events.h"
#include "services/paging.h"
#include "services/precondition.h"
#include "services/tx.h"
#include "services/validate.h"
#include "store/projects.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writers that lost a race re-read and re-apply their patch; bounded so nothing spins. */
#define TASK_UPDATE_RETRIES 16

static const char *const statuses[] = {"todo", "in_progress", "done", NULL};
static const char *const priorities[] = {"low", "medium", "high", "urgent", NULL};

static int priority_rank(const char *s)
{
	for (int i = 0; priorities[i]; i++)
		if (!strcmp(priorities[i], s))
			return i;
	return -1;
}

static void write_time(struct jsonw *w, int64_t ms)
{
	char buf[TIME_RFC3339_LEN];
	time_format_ms(ms, buf);
	jsonw_string(w, buf);
}

/* The API's task object (task_json() is read back from this). */
void task_write_json(struct jsonw *w, const struct task *t)
{
	jsonw_object_begin(w);
	jsonw_key(w, "id");
	jsonw_string(w, t->id);
	jsonw_key(w, "project_id");
	jsonw_string(w, t->project_id);
	jsonw_key(w, "title");
	jsonw_string(w, t->title);
	jsonw_key(w, "description");
	jsonw_string(w, t->description);
	jsonw_key(w, "status");
	jsonw_string(w, t->status);
	jsonw_key(w, "priority");
	jsonw_string(w, priorities[t->priority & 3]);
	jsonw_key(w, "assignee_id");
	jsonw_string_or_null(w, t->assignee_id);
	jsonw_key(w, "due_date");
	if (t->has_due)
		write_time(w, t->due_date);
	else
		jsonw_null(w);
	jsonw_key(w, "created_by");
	jsonw_string(w, t->created_by);
	jsonw_key(w, "created_at");
	write_time(w, t->created_at);
	jsonw_key(w, "updated_at");
	write_time(w, t->updated_at);
	jsonw_key(w, "version");
	jsonw_int(w, t->version);
	jsonw_object_end(w);
}

/*
 * The jansson value for events is read back from the writer's text, so the object is spelled
 * in one place only (events are written once per change; responses, the hot path, use the
 * text directly). The writer's strings come from stored, validated UTF-8: it always parses.
 */
json_t *task_json(const struct task *t)
{
	struct jsonw w;
	size_t len;
	jsonw_init(&w, 512);
	task_write_json(&w, t);
	char *text = jsonw_finish(&w, &len);
	json_t *o = json_loadb(text, len, 0, NULL);
	free(text);
	if (!o)
		abort();
	return o;
}

static const struct field_spec task_fields[] = {
    {"title", FIELD_STRING, true, false, 1, 200, NULL},
    {"description", FIELD_STRING, false, true, 0, 10000, NULL},
    {"status", FIELD_ENUM, false, false, 0, 0, statuses},
    {"priority", FIELD_ENUM, false, false, 0, 0, priorities},
    {"assignee_id", FIELD_UUID, false, true, 0, 0, NULL},
    {"due_date", FIELD_TIMESTAMP, false, true, 0, 0, NULL},
    {"id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"project_id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"created_by", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"created_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"updated_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"version", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NTASK_FIELDS (sizeof(task_fields) / sizeof(task_fields[0]))

/* RFC 3339 in UTC shows the years 0001 to 9999 only: a due date that its offset moves
 * outside would be shown as another instant, or as one this API rejects. */
#define DUE_MIN_MS (-62135596800000LL) /* 0001-01-01T00:00:00.000Z */
#define DUE_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* rc of validate_object(), made a validation failure when due_date is out of range. */
static int check_due_range(json_t *body, int rc, struct error *err)
{
	json_t *v = json_object_get(body, "due_date");
	int64_t ms;
	if (json_is_string(v) && time_parse_rfc3339(json_string_value(v), &ms) == 0 &&
	    (ms < DUE_MIN_MS || ms > DUE_MAX_MS)) {
		error_field(err, "due_date", "out_of_range",
			    "must fall in the years 0001 to 9999 once converted to UTC");
		return -ERR_VALIDATION_FAILED;
	}
	return rc;
}

/* Apply the (validated) body onto t: absent = unchanged, null = cleared. */
static void apply_patch(struct arena *a, struct task *t, json_t *body)
{
	json_t *v;
	if ((v = json_object_get(body, "title")))
		t->title = json_string_value(v);
	if ((v = json_object_get(body, "description")))
		t->description = json_is_null(v) ? "" : json_string_value(v);
	if ((v = json_object_get(body, "status")))
		t->status = json_string_value(v);
	if ((v = json_object_get(body, "priority")))
		t->priority = priority_rank(json_string_value(v));
	if ((v = json_object_get(body, "assignee_id"))) {
		if (json_is_null(v)) {
			t->assignee_id = NULL;
		} else {
			char *id = arena_alloc(a, UUID_STR_LEN);
			uuid_normalize(json_string_value(v), id);
			t->assignee_id = id;
		}
	}
	if ((v = json_object_get(body, "due_date"))) {
		t->has_due = !json_is_null(v);
		t->due_date = 0;
		if (t->has_due)
			time_parse_rfc3339(json_string_value(v), &t->due_date);
	}
}

/*
 * An assignee must be able to change the task: a member or the owner of its project. A viewer
 * (read-only) or a stranger is refused with the same message; demoting a member to viewer
 * unassigns them (member_update), so no task keeps an assignee who cannot act on it.
 */
static int check_assignee(struct db_conn *c, struct arena *a, const struct task *t,
			  struct error *err)
{
	const char *role;
	if (!t->assignee_id)
		return 0;
	int rc = store_member_role(c, a, t->project_id, t->assignee_id, &role, err);
	if (rc < 0)
		return rc;
	if (!role || !strcmp(role, "viewer")) {
		error_field(err, "assignee_id", role ? "viewer_cannot_be_assigned" : "not_a_member",
			    "must be a member or the owner of the task's project (a viewer "
			    "cannot change tasks)");
		return -ERR_VALIDATION_FAILED;
	}
	return 0;
}

int task_create(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		json_t *body, struct task *out, struct error *err)
{
	char id[UUID_STR_LEN];
	int rc;

	if ((rc = check_due_range(body, validate_object(body, task_fields, NTASK_FIELDS, err),
				  err)) < 0)
		return rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id, ACCESS_WRITE_TASKS, NULL, err)) < 0)
		return rc;
	uuid_v7(id);
	int64_t now = time_now_ms();
	*out = (struct task){.id = arena_strdup(a, id),
			     .project_id = project_id,
			     .title = "",
			     .description = "",
			     .status = "todo",
			     .priority = 1,
			     .created_by = me->id,
			     .created_at = now,
			     .updated_at = now,
			     .version = 1};
	apply_patch(a, out, body);
	if ((rc = check_assignee(c, a, out, err)) < 0 || (rc = store_task_insert(c, out, err)) < 0)
		goto out;
	rc = events_append(c, a, project_id, "task.created", me->id, arena_json(a, task_json(out)),
			   err);
out:
	return tx_finish(c, rc, err);
}

/* The task if the caller may do `action` on it; 404 for non-members, as if it did not exist. */
static int load(struct db_conn *c, struct arena *a, const struct user *me, const char *id,
		enum access_action action, struct task *out, struct error *err)
{
	if (!uuid_valid(id))
		return error_set(err, ERR_NOT_FOUND, "no such task");
	int rc = store_task_get_for(c, a, id, me->id, out, err);
	if (rc < 0)
		return rc;
	rc = access_check(out->role, action, err);
	if (rc == -ERR_NOT_FOUND)
		return error_set(err, ERR_NOT_FOUND, "no such task");
	return rc;
}

/*
 * load() inside a write transaction: the task's project is locked first (see
 * store_project_lock), then the task and the caller's role are read under that lock.
 */
static int load_for_write(struct db_conn *c, struct arena *a, const struct user *me, const char *id,
			  struct task *out, struct error *err)
{
	int rc = load(c, a, me, id, ACCESS_READ, out, err);
	if (rc < 0)
		return rc;
	if ((rc = store_project_lock(c, out->project_id, err)) < 0)
		return rc;
	return load(c, a, me, id, ACCESS_WRITE_TASKS, out, err);
}

/* The task's version as it is now, for the ETag of a 412 after a lost race; 0 if gone. */
static int64_t current_version(struct db_conn *c, struct arena *a, const struct user *me,
			       const char *id)
{
	struct task now;
	struct error ignored = {0};
	int rc = load(c, a, me, id, ACCESS_READ, &now, &ignored);
	error_release(&ignored);
	return rc < 0 ? 0 : now.version;
}

int task_get(struct store *st, struct arena *a, const struct user *me, const char *id,
	     struct task *out, struct error *err)
{
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	return load(c, a, me, id, ACCESS_READ, out, err);
}

/* {field: [old, new]} for every field that differs. New reference. */
static json_t *changes(const struct task *o, const struct task *n)
{
	json_t *ch = json_object(), *a = task_json(o), *b = task_json(n);
	static const char *const fields[] = {"title",	    "description", "status", "priority",
					     "assignee_id", "due_date",	   NULL};
	for (int i = 0; fields[i]; i++) {
		json_t *x = json_object_get(a, fields[i]), *y = json_object_get(b, fields[i]);
		if (!json_equal(x, y))
			json_object_set_new(ch, fields[i], json_pack("[OO]", x, y));
	}
	json_decref(a);
	json_decref(b);
	return ch;
}

/*
 * One attempt at an update, in its own transaction. *lost_race: another writer committed
 * between our read and our write (rolled back; the caller re-reads and re-applies).
 */
static int update_once(struct db_conn *c, struct arena *a, const struct user *me, const char *id,
		       json_t *body, struct precondition *pre, struct task *out, bool *lost_race,
		       struct error *err)
{
	struct task old;
	bool updated = false;
	int rc;

	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = load_for_write(c, a, me, id, &old, err)) < 0)
		goto out;
	if (!precondition_met(pre, old.version)) {
		rc = precondition_fail(pre, "task", old.version, err);
		goto out;
	}
	*out = old;
	apply_patch(a, out, body);
	json_t *ch = arena_json(a, changes(&old, out));
	if (json_object_size(ch) == 0)
		goto out; /* nothing changes: no new version, no event */
	/* Only a new assignee is checked: a PATCH of the title keeps whoever was assigned. */
	if (json_object_get(ch, "assignee_id") && (rc = check_assignee(c, a, out, err)) < 0)
		goto out;
	out->updated_at = time_now_ms();
	if ((rc = store_task_update(c, out, old.version, &updated, err)) < 0)
		goto out;
	if (!updated) {
		*lost_race = true;
		rc = precondition_fail(
		    pre, "task", precondition_strict(pre) ? current_version(c, a, me, id) : 0, err);
		goto out;
	}
	out->version = old.version + 1;
	json_t *data = arena_json(a, task_json(out));
	json_object_set(data, "changes", ch);
	rc = events_append(c, a, out->project_id, "task.updated", me->id, data, err);
out:
	return tx_finish(c, rc, err);
}

int task_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		json_t *body, struct precondition *pre, struct task *out, struct error *err)
{
	struct field_spec specs[NTASK_FIELDS];
	int rc;

	memcpy(specs, task_fields, sizeof(specs));
	specs[0].required = false;
	if ((rc = check_due_range(body, validate_object(body, specs, NTASK_FIELDS, err), err)) < 0)
		return rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	for (int attempt = 0; attempt < TASK_UPDATE_RETRIES; attempt++) {
		bool lost_race = false;
		rc = update_once(c, a, me, id, body, pre, out, &lost_race, err);
		/* Without If-Match a lost race is no failure: re-read and re-apply our fields. */
		if (!lost_race || precondition_strict(pre))
			return rc;
		error_release(err);
	}
	return error_set(err, ERR_UNAVAILABLE, "task %s is too contended; retry", id);
}

/* One attempt at a delete, in its own transaction; *lost_race as for update_once(). */
static int delete_once(struct db_conn *c, struct arena *a, const struct user *me, const char *id,
		       struct precondition *pre, bool *lost_race, struct error *err)
{
	struct task t;
	bool deleted;
	int rc;

	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = load_for_write(c, a, me, id, &t, err)) < 0)
		goto out;
	if (!precondition_met(pre, t.version)) {
		rc = precondition_fail(pre, "task", t.version, err);
		goto out;
	}
	if ((rc = store_task_delete(c, id, t.version, &deleted, err)) < 0)
		goto out;
	if (!deleted) {
		/* A writer committed in between: re-read, so that the event holds the version
		 * really deleted. */
		*lost_race = true;
		rc = precondition_fail(
		    pre, "task", precondition_strict(pre) ? current_version(c, a, me, id) : 0, err);
		goto out;
	}
	rc = events_append(c, a, t.project_id, "task.deleted", me->id, arena_json(a, task_json(&t)),
			   err);
out:
	return tx_finish(c, rc, err);
}

int task_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct precondition *pre, struct error *err)
{
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	for (int attempt = 0; attempt < TASK_UPDATE_RETRIES; attempt++) {
		bool lost_race = false;
		rc = delete_once(c, a, me, id, pre, &lost_race, err);
		if (!lost_race || precondition_strict(pre))
			return rc;
		error_release(err);
	}
	return error_set(err, ERR_UNAVAILABLE, "task %s is too contended; retry", id);
}

int task_unassign_member(struct db_conn *c, struct arena *a, const char *project_id,
			 const char *user_id, const char *actor_id, struct error *err)
{
	struct task *tasks;
	int n, rc;
	if ((rc = store_task_unassign(c, a, project_id, user_id, time_now_ms(), &tasks, &n, err)) <
	    0)
		return rc;
	for (int i = 0; i < n; i++) {
		json_t *data = arena_json(a, task_json(&tasks[i]));
		json_object_set_new(data, "changes",
				    json_pack("{s:[s,n]}", "assignee_id", user_id));
		if ((rc = events_append(c, a, project_id, "task.updated", actor_id, data, err)) < 0)
			return rc;
	}
	return 0;
}

/* ---- listing ---- */

/* A client's value quoted in a message (cut to 40 characters). */
#define QUOTED(buf, s) error_quote(buf, sizeof(buf), s, 40)

/* "a, b, c": the choices, for messages. */
static const char *choice_list(char *buf, size_t len, const char *const *choices)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; choices[i] && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", choices[i]);
		if (w > 0)
			used += (size_t)w;
	}
	return buf;
}

/* Split a comma-separated list; each item must be one of `choices`. */
static int parse_choices(const char *field, const char *s, const char *const *choices, int *idx,
			 int max, int *n, struct error *err)
{
	*n = 0;
	const char *p = s;
	while (1) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int found = -1;
		for (int i = 0; choices[i]; i++)
			if (strlen(choices[i]) == len && !strncmp(choices[i], p, len))
				found = i;
		if (found < 0) {
			char item[256], qb[200], list[128];
			snprintf(item, sizeof(item), "%.*s", (int)(len < 200 ? len : 200), p);
			error_field(err, field, "invalid_choice", "'%s' is not one of %s",
				    QUOTED(qb, item), choice_list(list, sizeof(list), choices));
			return -ERR_VALIDATION_FAILED;
		}
		bool dup = false;
		for (int i = 0; i < *n; i++)
			dup |= idx[i] == found;
		if (!dup && *n < max)
			idx[(*n)++] = found;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int parse_time(const char *field, const char *s, bool *has, int64_t *out, struct error *err)
{
	char qb[200];
	if (!s)
		return 0;
	if (time_parse_rfc3339(s, out) < 0) {
		/* An unencoded '+01:00' arrives as ' 01:00': say why, it is a common slip. */
		if (strchr(s, ' '))
			error_field(err, field, "invalid",
				    "'%s' is not an RFC 3339 date-time: a '+' in a query string "
				    "means a space: write it as %%2B",
				    QUOTED(qb, s));
		else
			error_field(
			    err, field, "invalid",
			    "'%s' is not an RFC 3339 date-time such as 2024-01-15T14:30:00Z",
			    QUOTED(qb, s));
		return -ERR_VALIDATION_FAILED;
	}
	*has = true;
	return 0;
}

static const char *const sort_names[] = {"created_at", "updated_at", "due_date", "priority", NULL};

static int parse_sort(const char *s, struct task_filter *f, struct error *err)
{
	f->nsort = 0;
	if (!s || !*s)
		s = "-created_at";
	const char *p = s;
	while (1) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		bool desc = len > 0 && *p == '-';
		const char *name = desc ? p + 1 : p;
		size_t nl = desc ? len - 1 : len;
		int found = -1;
		for (int i = 0; sort_names[i]; i++)
			if (strlen(sort_names[i]) == nl && !strncmp(sort_names[i], name, nl))
				found = i;
		for (int i = 0; i < f->nsort && found >= 0; i++)
			if ((int)f->sort[i].key == found)
				found = -2;
		if (found < 0 || f->nsort >= TASK_MAX_SORT) {
			char item[256], qb[200];
			snprintf(item, sizeof(item), "%.*s", (int)(len < 200 ? len : 200), p);
			error_field(
			    err, "sort", "invalid",
			    "'%s' is %s: sort by created_at, updated_at, due_date, priority, "
			    "each at most once, optionally prefixed with '-'",
			    QUOTED(qb, item), found == -2 ? "given twice" : "not a sort key");
			return -ERR_VALIDATION_FAILED;
		}
		f->sort[f->nsort++] = (struct task_sort){(enum task_sort_key)found, desc};
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

/* The canonical text of the sort ("-created_at,priority"). */
static const char *sort_text(struct arena *a, const struct task_filter *f)
{
	char buf[128];
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < f->nsort; i++) {
		int w = snprintf(buf + used, sizeof(buf) - used, "%s%s%s", i ? "," : "",
				 f->sort[i].desc ? "-" : "", sort_names[f->sort[i].key]);
		if (w > 0)
			used += (size_t)w;
	}
	return arena_strdup(a, buf);
}

/*
 * What a cursor is bound to (see core/cursor.h): the list — one project's tasks, or the
 * caller's tasks across projects — and the whole query in a canonical text, so that the same
 * filters written another way (status=done,todo or status=todo&status=done, a due date with
 * another offset, "me" or the caller's id) are one query, and any other filter or sort is
 * another. The page size is not part of it.
 */
static const char *list_name(struct arena *a, const struct user *me, const char *project_id)
{
	return project_id ? arena_printf(a, "tasks:%s", project_id)
			  : arena_printf(a, "tasks:all:%s", me->id);
}

static const char *query_text(struct arena *a, const struct task_filter *f, bool in_project)
{
	char st[64] = "", pr[64] = "";
	size_t su = 0, pu = 0;
	/* Lists in the order of their choices, whatever order the client wrote. */
	for (int i = 0; statuses[i]; i++)
		for (int j = 0; j < f->nstatuses; j++)
			if (!strcmp(f->statuses[j], statuses[i]))
				su += (size_t)snprintf(st + su, sizeof(st) - su, "%s%s",
						       su ? "," : "", statuses[i]);
	for (int i = 0; priorities[i]; i++)
		for (int j = 0; j < f->npriorities; j++)
			if (f->priorities[j] == i)
				pu += (size_t)snprintf(pr + pu, sizeof(pr) - pu, "%s%s",
						       pu ? "," : "", priorities[i]);
	const char *words = "";
	for (int i = 0; i < f->nwords; i++)
		words = arena_printf(a, "%s%s%s", words, i ? " " : "", f->words[i]);
	return arena_printf(
	    a,
	    "project_id=%s&status=%s&priority=%s&assignee_id=%s&due_before=%s&due_after=%s&"
	    "updated_since=%s&q=%s&sort=%s",
	    !in_project && f->project_id ? f->project_id : "", st, pr,
	    f->assignee_none ? "none"
	    : f->assignee_id ? f->assignee_id
			     : "",
	    f->has_due_before ? arena_printf(a, "%lld", (long long)f->due_before) : "",
	    f->has_due_after ? arena_printf(a, "%lld", (long long)f->due_after) : "",
	    f->has_updated_since ? arena_printf(a, "%lld", (long long)f->updated_since) : "", words,
	    sort_text(a, f));
}

static int parse_words(struct arena *a, const char *q, struct task_filter *f, struct error *err)
{
	if (!q)
		return 0;
	if (utf8_length(q) > 200) {
		error_field(err, "q", "too_long", "at most 200 characters");
		return -ERR_VALIDATION_FAILED;
	}
	char *copy = arena_strdup_lower(a, q);
	char *save = NULL;
	for (char *w = strtok_r(copy, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (f->nwords >= TASK_MAX_WORDS) {
			error_field(err, "q", "too_many_words", "at most %d words", TASK_MAX_WORDS);
			return -ERR_VALIDATION_FAILED;
		}
		f->words[f->nwords++] = w;
	}
	return 0;
}

/* Cursor keys must have the types the sort implies, and end with a task id. */
static bool cursor_keys_valid(const struct task_filter *f, json_t *keys)
{
	for (int i = 0; i < f->nsort; i++) {
		json_t *v = json_array_get(keys, (size_t)i);
		if (!json_is_integer(v) && !(f->sort[i].key == TASK_SORT_DUE && json_is_null(v)))
			return false;
	}
	json_t *id = json_array_get(keys, (size_t)f->nsort);
	if (!json_is_string(id) || !uuid_valid(json_string_value(id)))
		return false;
	return true;
}

int task_list(struct store *st, struct arena *a, const struct user *me, const struct task_query *q,
	      bool in_project, struct task_page *out, struct error *err)
{
	struct task_filter f;
	struct task *items;
	int count, rc, idx[4], n;
	char qb[200];

	memset(&f, 0, sizeof(f));
	f.member_id = me->id;
	paging_limit(q->limit, &f.limit, err);
	if (q->status && parse_choices("status", q->status, statuses, idx, 3, &n, err) == 0) {
		for (int i = 0; i < n; i++)
			f.statuses[i] = statuses[idx[i]];
		f.nstatuses = n;
	}
	if (q->priority &&
	    parse_choices("priority", q->priority, priorities, f.priorities, 4, &n, err) == 0)
		f.npriorities = n;
	if (q->assignee_id) {
		if (!strcmp(q->assignee_id, "me")) {
			f.assignee_id = me->id;
		} else if (!strcmp(q->assignee_id, "none")) {
			f.assignee_none = true;
		} else {
			char *id = arena_alloc(a, UUID_STR_LEN);
			if (uuid_normalize(q->assignee_id, id))
				f.assignee_id = id;
			else
				error_field(err, "assignee_id", "invalid",
					    "'%s' is not a user id (a UUID), me or none",
					    QUOTED(qb, q->assignee_id));
		}
	}
	parse_time("due_before", q->due_before, &f.has_due_before, &f.due_before, err);
	parse_time("due_after", q->due_after, &f.has_due_after, &f.due_after, err);
	parse_time("updated_since", q->updated_since, &f.has_updated_since, &f.updated_since, err);
	parse_words(a, q->q, &f, err);
	parse_sort(q->sort, &f, err);
	if (!in_project && q->project_id) {
		char *id = arena_alloc(a, UUID_STR_LEN);
		if (uuid_normalize(q->project_id, id))
			f.project_id = id;
		else
			error_field(err, "project_id", "invalid",
				    "'%s' is not a project id (a UUID)", QUOTED(qb, q->project_id));
	}
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;
	struct paging pg = {.scope = list_name(a, me, in_project ? q->project_id : NULL),
			    .query = query_text(a, &f, in_project),
			    .limit = f.limit};
	if ((rc = paging_cursor(&pg, a, q->cursor, (size_t)f.nsort + 1, err)) < 0)
		return rc;
	if (pg.after && !cursor_keys_valid(&f, pg.after))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	f.after = pg.after;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if (in_project) {
		if ((rc = access_project(c, a, q->project_id, me->id, ACCESS_READ, NULL, err)) < 0)
			return rc;
		f.project_id = q->project_id;
	} else if (f.project_id) {
		/* Filtering on a project the caller cannot see yields nothing, like any other. */
		const char *role;
		if ((rc = store_member_role(c, a, f.project_id, me->id, &role, err)) < 0)
			return rc;
		if (!role)
			f.project_id = "00000000-0000-0000-0000-000000000000";
	}
	f.limit = paging_fetch(&pg);
	if ((rc = store_task_list(c, a, &f, &items, &count, err)) < 0)
		return rc;
	struct jsonw w;
	char *data;
	int shown = paging_shown(&pg, count);
	/* About 400 bytes a task without a long description; the writer grows past that. */
	jsonw_init(&w, (size_t)shown * 512 + 16);
	jsonw_array_begin(&w);
	for (int i = 0; i < shown; i++)
		task_write_json(&w, &items[i]);
	jsonw_array_end(&w);
	data = jsonw_finish(&w, &out->len);
	/* The page lives in the arena: see the ownership rule in services/paging.h. */
	arena_defer(a, free, data);
	out->data = data;
	out->next_cursor =
	    paging_more(&pg, count)
		? paging_next(&pg, a, store_task_cursor_keys(&f, &items[pg.limit - 1]))
		: NULL;
	return 0;
}
