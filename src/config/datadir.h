/*
 * datadir.h — start-up work on the data directory (TANDEM_DATA_DIR): creating it when
 * something lives there, and the JWT secret kept in it when TANDEM_JWT_SECRET is not set.
 * Called from main.c before anything serves; prints one line to stderr on failure.
 */
#ifndef TANDEM_CONFIG_DATADIR_H
#define TANDEM_CONFIG_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define DATADIR_SECRET_MAX 256

/*
 * Create the data directory (mode 0700) when something will live in it: the SQLite database,
 * or (when the command needs the JWT key: `with_secret`) the generated secret file. Returns 0
 * or -1.
 */
int datadir_ensure(const struct config *cfg, bool with_secret);

/*
 * The JWT signing key: cfg->jwt_secret, or the file cfg->jwt_secret_file (which must exist),
 * or <data_dir>/jwt.secret, generated (256 random bits,
 * mode 0600, O_EXCL so two instances starting at once agree) when missing. At least 32 bytes.
 * Returns 0 with the key in out[0..*len), or -1.
 */
int datadir_jwt_secret(const struct config *cfg, unsigned char out[DATADIR_SECRET_MAX],
		       size_t *len);

#endif
