/*
 * common.c - errors, allocation, buffers, clocks, instance identity.
 */
#include "schemagate/common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

static void vset(struct sg_error *err, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vset(struct sg_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	/* keep messages on one line: the log is line-oriented */
	for (char *p = err->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* SPEC section 6. The only place that knows the numbers; main.c (and
 * the loop's last-resort exit) ask it. */
enum sg_exit {
	SG_EXIT_OK = 0,
	SG_EXIT_MIGRATION = 1,
	SG_EXIT_USAGE = 2,
	SG_EXIT_TIMEOUT = 3,
	SG_EXIT_INTEGRITY = 4,
	SG_EXIT_DATABASE = 5,
	SG_EXIT_PENDING = 6,
	SG_EXIT_SIGINT = 130,
	SG_EXIT_SIGTERM = 143,
};

int sg_exit_code(enum sg_outcome outcome)
{
	static const int codes[] = {
		[SG_OUTCOME_OK] = SG_EXIT_OK,
		[SG_OUTCOME_MIGRATION_FAILED] = SG_EXIT_MIGRATION,
		[SG_OUTCOME_USAGE] = SG_EXIT_USAGE,
		[SG_OUTCOME_TIMEOUT] = SG_EXIT_TIMEOUT,
		[SG_OUTCOME_INTEGRITY] = SG_EXIT_INTEGRITY,
		[SG_OUTCOME_DATABASE] = SG_EXIT_DATABASE,
		[SG_OUTCOME_PENDING] = SG_EXIT_PENDING,
		[SG_OUTCOME_INTERRUPTED] = SG_EXIT_SIGINT,
		[SG_OUTCOME_TERMINATED] = SG_EXIT_SIGTERM,
	};
	return (size_t)outcome < sizeof(codes) / sizeof(codes[0]) ? codes[outcome] : SG_EXIT_MIGRATION;
}

int sg_fail(struct sg_error *err, enum sg_outcome outcome, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vset(err, fmt, ap);
	va_end(ap);
	err->outcome = outcome;
	return -1;
}

int sg_error_prefix(struct sg_error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char prefix[SG_ERROR_MSG], old[SG_ERROR_MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* build by hand: snprintf("%s: %s") trips -Wformat-truncation */
	size_t n = strlen(prefix);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, prefix, n);
	memcpy(err->msg + n, ": ", 2);
	size_t rest = sizeof(err->msg) - n - 3;
	size_t olen = strnlen(old, rest);
	memcpy(err->msg + n + 2, old, olen);
	err->msg[n + 2 + olen] = '\0';
	return -1;
}

int sg_vfail_db(struct sg_error *err, enum sg_err_kind kind, const char *sqlstate, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	vset(err, fmt, ap);
	err->outcome = SG_OUTCOME_OK;
	err->kind = kind;
	err->cancel_requested = false;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
	return -1;
}

int sg_fail_db(struct sg_error *err, enum sg_err_kind kind, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sg_vfail_db(err, kind, sqlstate, fmt, ap);
	va_end(ap);
	return -1;
}

int sg_error_ours(struct sg_error *err)
{
	if (err && err->kind == SG_ERRK_STATEMENT)
		err->kind = SG_ERRK_PERMANENT;
	return -1;
}

int sg_fail_canceled(struct sg_error *err, bool requested, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sg_vfail_db(err, SG_ERRK_CANCELED, sqlstate, fmt, ap);
	va_end(ap);
	if (err)
		err->cancel_requested = requested;
	return -1;
}

void sg_error_clear(struct sg_error *err)
{
	memset(err, 0, sizeof(*err));
}

static void *check_alloc(void *p)
{
	if (!p) {
		fputs("schemagate: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *sg_malloc(size_t n) { return check_alloc(malloc(n ? n : 1)); }
void *sg_calloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1)); }
void *sg_realloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1)); }
char *sg_strdup(const char *s) { return s ? check_alloc(strdup(s)) : NULL; }
char *sg_strndup(const char *s, size_t n) { return check_alloc(strndup(s, n)); }

char *sg_asprintf(const char *fmt, ...)
{
	char *out = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0)
		check_alloc(NULL);
	return out;
}

void sg_buf_append(struct sg_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = sg_realloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void sg_buf_puts(struct sg_buf *b, const char *s) { sg_buf_append(b, s, strlen(s)); }

/* Formatted straight into the buffer's free space; a second pass only
 * when it does not fit. */
void sg_buf_printf(struct sg_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		check_alloc(NULL);
	if ((size_t)n >= room) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		b->data = sg_realloc(b->data, cap);
		b->cap = cap;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void sg_buf_free(struct sg_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Length of a valid UTF-8 sequence at s, or 0 if the bytes are not one. */
static size_t utf8_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;   /* also stops at the NUL terminator */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Bytes that are not valid UTF-8 become U+FFFD: a file name or a server
 * message in another encoding must not make the document unreadable. */
void sg_buf_json_string(struct sg_buf *b, const char *s)
{
	if (!s) {
		sg_buf_puts(b, "null");
		return;
	}
	sg_buf_puts(b, "\"");
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			sg_buf_append(b, esc, 2);
			p++;
		} else if (c == '\n') {
			sg_buf_puts(b, "\\n");
			p++;
		} else if (c == '\r') {
			sg_buf_puts(b, "\\r");
			p++;
		} else if (c == '\t') {
			sg_buf_puts(b, "\\t");
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			sg_buf_printf(b, "\\u%04x", c);
			p++;
		} else {
			size_t n = utf8_len(p);
			if (n == 0) {
				sg_buf_puts(b, "\\ufffd");
				p++;
			} else {
				sg_buf_append(b, (const char *)p, n);
				p += n;
			}
		}
	}
	sg_buf_puts(b, "\"");
}

void sg_quote_ident(const char *name, char q, struct sg_buf *out)
{
	for (const char *p = name;; p++) {
		sg_buf_append(out, &q, 1);
		for (; *p && *p != '.'; p++) {
			if (*p == q)
				sg_buf_append(out, &q, 1);
			sg_buf_append(out, p, 1);
		}
		sg_buf_append(out, &q, 1);
		if (!*p)
			break;
		sg_buf_append(out, ".", 1);
	}
}

char *sg_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct sg_buf b = {0};
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sg_buf_append(&b, chunk, n);
	int failed = ferror(f);
	int saved = errno;
	fclose(f);
	if (failed) {
		sg_buf_free(&b);
		errno = saved;
		return NULL;
	}
	if (!b.data)
		b.data = sg_strdup("");
	if (len_out)
		*len_out = b.len;
	return b.data;
}

uint64_t sg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *sg_instance_id(void)
{
	static char id[300];
	if (!id[0]) {
		const char *pod = getenv("POD_NAME");
		char host[256] = "unknown";
		if (pod && *pod)
			snprintf(host, sizeof(host), "%s", pod);
		else
			gethostname(host, sizeof(host) - 1);
		/* Containers run as pid 1 and compose replicas may share a
		 * hostname: a random tag keeps two processes distinct. */
		unsigned char tag[3] = {0};
		if (getrandom(tag, sizeof(tag), 0) != (ssize_t)sizeof(tag)) {
			uint64_t t = sg_now_ms() ^ ((uint64_t)getpid() << 20);
			memcpy(tag, &t, sizeof(tag));
		}
		snprintf(id, sizeof(id), "%s/%ld/%02x%02x%02x", host, (long)getpid(), tag[0], tag[1], tag[2]);
	}
	return id;
}

bool sg_utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_len(p);
		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

char *sg_utf8_sanitize(const char *s, size_t max)
{
	struct sg_buf b = {0};
	const unsigned char *p = (const unsigned char *)s;
	if (max < 8)
		max = 8;
	while (*p) {
		size_t n = utf8_len(p);
		char esc[8];
		const char *piece = (const char *)p;
		size_t len = n;
		if (n == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			piece = esc;
			len = 4;
			n = 1;
		}
		if (b.len + len > max - 3) {
			sg_buf_puts(&b, "...");
			break;
		}
		sg_buf_append(&b, piece, len);
		p += n;
	}
	if (!b.data)
		sg_buf_puts(&b, "");
	return b.data;
}

int sg_start_detached(void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int rc = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0 ? 0 : -1;
}
