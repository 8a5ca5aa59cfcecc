/* log.c — see log.h. */
#include "core/log.h"
#include "core/timeutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int current_level = LOG_INFO; /* an int: enums may be unsigned */
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return (enum log_level)current_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_OFF; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_line(const char *json, unsigned long len)
{
	/* One write per line keeps lines whole when threads log at once. */
	char stackbuf[2048];
	char *buf = len + 1 <= sizeof(stackbuf) ? stackbuf : malloc(len + 1);
	if (!buf)
		return;
	memcpy(buf, json, len);
	buf[len] = '\n';
	ssize_t off = 0;
	while ((size_t)off < len + 1) {
		ssize_t n = write(STDERR_FILENO, buf + off, len + 1 - (size_t)off);
		if (n <= 0)
			break;
		off += n;
	}
	if (buf != stackbuf)
		free(buf);
}

void log_json(enum log_level level, const char *msg, json_t *fields)
{
	if ((int)level < current_level || level >= LOG_OFF) {
		json_decref(fields);
		return;
	}
	char ts[TIME_RFC3339_LEN];
	time_format_ms(time_now_ms(), ts);
	json_t *o = json_pack("{s:s, s:s, s:s}", "time", ts, "level", names[level], "msg", msg);
	if (fields) {
		json_object_update_missing(o, fields);
		json_decref(fields);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	if (s) {
		log_line(s, strlen(s));
		free(s);
	}
	json_decref(o);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if ((int)level < current_level)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_json(level, buf, NULL);
}
