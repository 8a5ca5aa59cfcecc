/* datadir.c — see datadir.h. */
#include "config/datadir.h"
#include "config/config.h"
#include "core/arena.h"
#include "core/base64url.h"
#include "core/log.h"
#include "core/random.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE "jwt.secret"

int datadir_ensure(const struct config *cfg, bool with_secret)
{
	const char *url = config_database_url(cfg);
	bool sqlite = !strncmp(url, "sqlite:", 7);
	if (!sqlite && (cfg->jwt_secret || cfg->jwt_secret_file || !with_secret))
		return 0; /* nothing of ours lives there */
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr,
			"tandem: invalid setting TANDEM_DATA_DIR (--data-dir) = \"%s\": %s\n",
			cfg->data_dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Write a new secret to path unless another process got there first. */
static int generate(const char *path)
{
	unsigned char raw[32];
	struct arena a;
	int rc = 0;

	arena_init(&a);
	random_bytes(raw, sizeof(raw));
	const char *text = base64url_encode(&a, raw, sizeof(raw)); /* 43 url-safe characters */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		size_t n = strlen(text);
		bool ok =
		    write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
		close(fd);
		if (!ok) {
			fprintf(stderr, "tandem: cannot write the JWT secret \"%s\": %s\n", path,
				strerror(errno));
			rc = -1;
		} else {
			log_json(LOG_INFO,
				 "generated a JWT secret (set TANDEM_JWT_SECRET to share one "
				 "between instances)",
				 json_pack("{s:s}", "path", path));
		}
	} else if (errno != EEXIST) {
		fprintf(stderr, "tandem: cannot create the JWT secret \"%s\": %s\n", path,
			strerror(errno));
		rc = -1;
	}
	arena_release(&a);
	return rc;
}

/* The key in `path`: at least 32 bytes once trailing white space is dropped. `generate`:
 * create it first when missing (the data directory's own file). */
static int read_secret_file(const char *path, bool generate_missing, unsigned char *out,
			    size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && generate_missing) {
		if (generate(path) < 0)
			return -1;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		fprintf(stderr, "tandem: cannot read the JWT secret \"%s\": %s\n", path,
			strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		if (generate_missing) {
			log_warn("the JWT secret %s is readable by others; restricting it to mode "
				 "0600",
				 path);
			fchmod(fd, 0600);
		} else {
			log_warn("the JWT secret file %s is readable by others (mode %03o)", path,
				 (unsigned)(st.st_mode & 0777));
		}
	}
	/* One byte more than a key may have, to tell a key that is too long. */
	unsigned char buf[DATADIR_SECRET_MAX + 2];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	while (n > 0 && isspace(buf[n - 1]))
		n--;
	if (n < 32 || n > DATADIR_SECRET_MAX) {
		fprintf(stderr, "tandem: the JWT secret in \"%s\" is %s\n", path,
			n < 32 ? "shorter than 32 bytes" : "longer than 256 bytes");
		memset(buf, 0, sizeof(buf));
		return -1;
	}
	memcpy(out, buf, (size_t)n);
	memset(buf, 0, sizeof(buf));
	*len = (size_t)n;
	return 0;
}

int datadir_jwt_secret(const struct config *cfg, unsigned char out[DATADIR_SECRET_MAX], size_t *len)
{
	if (cfg->jwt_secret_file)
		return read_secret_file(cfg->jwt_secret_file, false, out, len);
	if (!cfg->jwt_secret) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, SECRET_FILE);
		return read_secret_file(path, true, out, len);
	}
	size_t n = strlen(cfg->jwt_secret);
	if (n > DATADIR_SECRET_MAX) {
		fprintf(stderr, "tandem: invalid setting TANDEM_JWT_SECRET (--jwt-secret): "
				"longer than 256 bytes\n");
		return -1;
	}
	memcpy(out, cfg->jwt_secret, n);
	*len = n;
	return 0;
}
