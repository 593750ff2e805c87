/*
 * log.h - one line per event on stderr, text or JSON (SPEC section 7).
 *
 * Every message passes through URL redaction, so a password that slipped
 * into a database error never reaches the terminal or a log collector.
 */
#ifndef SCHEMAGATE_LOG_H
#define SCHEMAGATE_LOG_H

#include "schemagate/config.h"

/* Optional structured fields; NULL / -1 members are omitted. */
struct sg_log_fields {
	const char *version;
	const char *name;
	const char *holder;
	const char *error;
	/* a state transition (event "transition"): JSON fields only, the text
	 * message already says them */
	const char *from, *to, *reason;
	/* a long statement's progress (event "progress"): JSON fields only;
	 * percent is a number as text ("41.2") */
	const char *phase, *wait, *blocked_by, *percent;
	int64_t duration_ms;   /* -1 = absent */
	int64_t waited_ms;     /* -1 = absent */
};
#define SG_LOG_NOFIELDS ((const struct sg_log_fields *)0)

void sg_log_init(enum sg_log_format format, enum sg_log_level level);
/* Register a secret (a password) that must never be printed; it is masked.
 * Secrets shorter than 3 bytes are not registered: they would mask
 * ordinary words; URL syntax still hides them (sg_redact). */
void sg_log_add_secret(const char *secret);
/* Forget every registered secret (tests and fuzzers run many inputs in
 * one process; the registry would otherwise only grow). */
void sg_log_forget_secrets(void);

void sg_log(enum sg_log_level level, const char *event, const struct sg_log_fields *f,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define sg_debug(ev, ...) sg_log(SG_LOG_DEBUG, ev, SG_LOG_NOFIELDS, __VA_ARGS__)
#define sg_info(ev, ...) sg_log(SG_LOG_INFO, ev, SG_LOG_NOFIELDS, __VA_ARGS__)
#define sg_warn(ev, ...) sg_log(SG_LOG_WARN, ev, SG_LOG_NOFIELDS, __VA_ARGS__)
#define sg_errorlog(ev, ...) sg_log(SG_LOG_ERROR, ev, SG_LOG_NOFIELDS, __VA_ARGS__)

/*
 * Copy text to out (size outsz, always NUL-terminated) replacing the
 * password of every URL ("scheme://user:pass@") with "***" and every
 * registered secret with "***".
 */
void sg_redact(const char *text, char *out, size_t outsz);
/* The same, malloc'd. */
char *sg_redact_alloc(const char *text);
/* Only the URL passwords (user info; with !in_text the password-like
 * query values too), by the one rule of what a URL's password is: in_text
 * finds URLs in free text (each ends at a space or a quote); !in_text
 * reads text as one URL as the user gave it, whatever bytes it holds.
 * Malloc'd. */
char *sg_mask_url_passwords(const char *text, bool in_text);

/* Write a one-line failure reason to path (or /dev/termination-log). */
void sg_write_termination_log(const char *path, const char *reason);

#endif
