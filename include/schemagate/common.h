/*
 * common.h - outcomes, the error struct every layer fills, small helpers.
 *
 * Errors travel upward in a caller-supplied struct sg_error; the layer that
 * decides what to do logs it once. Only main() turns an outcome into an exit code.
 */
#ifndef SCHEMAGATE_COMMON_H
#define SCHEMAGATE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SG_VERSION "0.1.0"

/*
 * How a run ends. A module that decides (bad input, an integrity problem,
 * a deadline of schemagate's own) names the outcome; a database error is
 * only reported (kind, SQLSTATE, whether schemagate asked for a cancel)
 * and outcome.c decides what it means. Only main.c turns the final
 * outcome into an exit code (sg_exit_code, SPEC section 6).
 */
enum sg_outcome {
	SG_OUTCOME_OK = 0,             /* also: not decided yet */
	SG_OUTCOME_MIGRATION_FAILED,   /* a migration failed; its transaction rolled back */
	SG_OUTCOME_USAGE,              /* usage, configuration, migration directory */
	SG_OUTCOME_TIMEOUT,            /* connect, lock or wait deadline; --timeout; a lost lease */
	SG_OUTCOME_INTEGRITY,          /* checksum, failed/partial, missing down, strict */
	SG_OUTCOME_DATABASE,           /* auth, permission, unknown database, a pooler */
	SG_OUTCOME_PENDING,            /* verify, status --check, --dry-run: there is work to do */
	SG_OUTCOME_INTERRUPTED,        /* stopped by SIGINT, cleaned up */
	SG_OUTCOME_TERMINATED,         /* stopped by SIGTERM, cleaned up */
};

/* The exit code of an outcome (SPEC section 6). */
int sg_exit_code(enum sg_outcome outcome);

/* What happened to a database call (drivers and the modules that talk to
 * the database say this, and never what it means for the run). */
enum sg_err_kind {
	SG_ERRK_NONE = 0,
	SG_ERRK_TRANSIENT,   /* retry: refused, DNS, starting up, too many conns */
	SG_ERRK_PERMANENT,   /* do not retry: auth, unknown db, permission, a statement of schemagate's own refused */
	SG_ERRK_STATEMENT,   /* the SQL itself failed (syntax, constraint...) */
	SG_ERRK_LOCK_TIMEOUT,/* statement hit lock_timeout (PostgreSQL 55P03) */
	SG_ERRK_CANCELED,    /* canceled: by schemagate (cancel_requested) or by the server (statement_timeout, a DBA) */
	SG_ERRK_CONNECTION,  /* connection lost mid-session */
	SG_ERRK_LOCK_LOST,   /* the migration lock is no longer ours (a failed verify, a lease taken over) */
	SG_ERRK_USAGE,       /* the driver refuses the input (a URL option) */
	/* the server refused a write because it is read-only (a standby,
	 * read_only=ON; PostgreSQL 25006, MySQL 1290/1792/1836): transient,
	 * the run connects again and waits for a primary */
	SG_ERRK_READ_ONLY,
};

#define SG_ERROR_MSG 1024

struct sg_error {
	enum sg_outcome outcome;    /* decided so far; OK (0) while undecided */
	enum sg_err_kind kind;
	bool cancel_requested;      /* CANCELED: schemagate asked for it (a stop), not the server */
	char sqlstate[8];           /* SQLSTATE or engine error number, "" if none */
	char msg[SG_ERROR_MSG];     /* one line, never contains a password */
};

/* Set err (if not NULL) and return -1, so callers can `return sg_fail(...)`. */
int sg_fail(struct sg_error *err, enum sg_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix an existing message with context: "applying X: <old msg>". */
int sg_error_prefix(struct sg_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sg_error_clear(struct sg_error *err);
/* What a database call reports: kind and sqlstate (NULL = none), no
 * outcome (outcome.c decides it); cancel_requested cleared. */
int sg_fail_db(struct sg_error *err, enum sg_err_kind kind, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int sg_vfail_db(struct sg_error *err, enum sg_err_kind kind, const char *sqlstate, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* A statement schemagate runs for itself (the history, the lease, a
 * session setting) failed: not a migration's failure, whatever the
 * driver saw (STATEMENT becomes PERMANENT). Returns -1. */
int sg_error_ours(struct sg_error *err);
/* A canceled call: requested when schemagate asked for the cancel (the
 * loop stopped), not when the server did it on its own (statement_timeout,
 * pg_cancel_backend, a DBA's KILL QUERY). */
int sg_fail_canceled(struct sg_error *err, bool requested, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Allocation that aborts on out-of-memory (a 10 MB CLI has no better plan). */
void *sg_malloc(size_t n);
void *sg_calloc(size_t n, size_t size);
void *sg_realloc(void *p, size_t n);
char *sg_strdup(const char *s);
char *sg_strndup(const char *s, size_t n);
char *sg_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable string. Owner calls sg_buf_free(). */
struct sg_buf {
	char *data;
	size_t len, cap;
};
void sg_buf_append(struct sg_buf *b, const char *s, size_t n);
void sg_buf_puts(struct sg_buf *b, const char *s);
void sg_buf_printf(struct sg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sg_buf_free(struct sg_buf *b);
/* Append s as a JSON string literal (quoted, escaped; bytes that are not
 * UTF-8 become U+FFFD, so the document stays valid); NULL -> null. */
void sg_buf_json_string(struct sg_buf *b, const char *s);

/* Append name quoted with q ('"' or '`'): each dot-separated part is
 * quoted on its own ("app.t" -> "app"."t") and q is doubled inside. */
void sg_quote_ident(const char *name, char q, struct sg_buf *out);

/* A copy of s that is valid UTF-8 (invalid bytes written as \xNN) and at
 * most max bytes long (cut on a character boundary, "..." appended).
 * Malloc'd. */
char *sg_utf8_sanitize(const char *s, size_t max);
/* Is s valid UTF-8 (RFC 3629)? */
bool sg_utf8_valid(const char *s);

/* Run fn(arg) on a detached thread that starts with every signal blocked
 * (signals belong to the main thread's handlers). Returns 0 or -1 (the
 * thread did not start; arg is still the caller's). */
int sg_start_detached(void *(*fn)(void *), void *arg);

/* Read a whole file; returns malloc'd NUL-terminated contents or NULL (errno set). */
char *sg_read_file(const char *path, size_t *len_out);

/* Monotonic milliseconds. */
uint64_t sg_now_ms(void);

/* Instance identity: "$POD_NAME or hostname/pid". Static storage. */
const char *sg_instance_id(void);

#endif
