/*
 * log.h — structured logging: one JSON object per line on stderr.
 *
 * Thread-safe: each line is formatted in a local buffer and written with one write(2).
 */
#ifndef TANDEM_CORE_LOG_H
#define TANDEM_CORE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn", "error" or "off"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

/*
 * Log `msg` with optional extra fields given as a new JSON object (stolen; may be NULL).
 * `msg` is a plain string, not a format.
 */
struct json_t;
void log_json(enum log_level level, const char *msg, struct json_t *fields);

/* printf-style convenience without extra fields. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write an already formatted JSON object as one line (used by the access log). */
void log_line(const char *json, unsigned long len);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
