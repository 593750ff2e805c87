/*
 * log.c - one line per event on stderr, as text or JSON (SPEC section 7),
 * and the redaction every printed byte passes through.
 *
 * Many schemagate processes often share one terminal or one log stream (a
 * compose file with replicas, kubectl logs -f on a Job), so each event is
 * assembled in memory and handed to the kernel with a single write(2):
 * lines from different processes never interleave mid-line.
 */
#include "schemagate/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Shorter secrets would mask ordinary words and numbers everywhere. */
#define MIN_SECRET_LEN 3
/* Kubernetes reads at most 4096 bytes of the termination log. */
#define TERMINATION_LOG_MAX 4096

static enum sg_log_format log_format = SG_LOG_TEXT;
static enum sg_log_level log_level = SG_LOG_INFO;

/* Registered secrets, longest first so a secret that contains another is
 * masked whole rather than leaving its tail visible. */
static char **secrets;
static size_t nsecrets;

void sg_log_init(enum sg_log_format format, enum sg_log_level level)
{
	log_format = format;
	log_level = level;
}

static void add_one_secret(const char *s)
{
	size_t len = strlen(s);
	if (len < MIN_SECRET_LEN)
		return;
	for (size_t i = 0; i < nsecrets; i++)
		if (strcmp(secrets[i], s) == 0)
			return;
	secrets = sg_realloc(secrets, (nsecrets + 1) * sizeof(*secrets));
	size_t pos = 0;
	while (pos < nsecrets && strlen(secrets[pos]) >= len)
		pos++;
	memmove(&secrets[pos + 1], &secrets[pos], (nsecrets - pos) * sizeof(*secrets));
	secrets[pos] = sg_strdup(s);
	nsecrets++;
}

/* RFC 3986 unreserved characters pass through percent-encoding as is. */
static bool is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void add_encoded_secret(const char *secret, bool upper)
{
	struct sg_buf enc = {0};
	for (const unsigned char *p = (const unsigned char *)secret; *p; p++) {
		if (is_unreserved(*p))
			sg_buf_append(&enc, (const char *)p, 1);
		else
			sg_buf_printf(&enc, upper ? "%%%02X" : "%%%02x", *p);
	}
	if (enc.data && strcmp(enc.data, secret) != 0)
		add_one_secret(enc.data);
	sg_buf_free(&enc);
}

void sg_log_add_secret(const char *secret)
{
	if (!secret)
		return;
	add_one_secret(secret);
	/* The same password may also appear percent-encoded inside a URL,
	 * with either case of hex digits. */
	add_encoded_secret(secret, true);
	add_encoded_secret(secret, false);
}

void sg_log_forget_secrets(void)
{
	for (size_t i = 0; i < nsecrets; i++) {
		explicit_bzero(secrets[i], strlen(secrets[i]));
		free(secrets[i]);
	}
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
}

/* ---- redaction ---------------------------------------------------------- */

static char *mask_secrets(const char *text)
{
	struct sg_buf b = {0};
	const char *p = text;
	while (*p) {
		size_t i, matched = 0;
		for (i = 0; i < nsecrets; i++) {
			size_t len = strlen(secrets[i]);
			if (strncmp(p, secrets[i], len) == 0) {
				matched = len;
				break;
			}
		}
		if (matched) {
			sg_buf_puts(&b, "***");
			p += matched;
		} else {
			sg_buf_append(&b, p, 1);
			p++;
		}
	}
	if (!b.data)
		b.data = sg_strdup("");
	return b.data;
}

/* Where a URL written inside free text ends: at bytes no URL holds.
 * Not at '\'', which RFC 3986 allows in a password (a sub-delim): a URL
 * quoted as '...' in a message still has its password masked, since the
 * user info ends at its own '@'. */
static bool ends_url_token(char c)
{
	return c == '\0' || isspace((unsigned char)c) || c == '"' || c == '<' || c == '>' || c == '`';
}

/* Last '@' in [from, to), NULL if none. */
static const char *last_at(const char *from, const char *to)
{
	const char *at = NULL;
	for (const char *p = from; p < to; p++)
		if (*p == '@')
			at = p;
	return at;
}

/*
 * Where the password of the URL whose authority starts at start ends: the
 * '@' closing the user info, as the parser finds it (the last '@' before
 * the first '/' or '?'), so a query value holding '@' or "://" is left to
 * mask_password_pairs. A password holding a raw '/' or '?' is not valid
 * in a URL and the parser misreads it, but it must not be printed either:
 * when the authority is "user:..." rather than "host:port" or "[v6]",
 * the user info runs to the last '@' of the token - masking too much is
 * the safe way to be wrong.
 */
static const char *userinfo_end(const char *start, const char *end)
{
	const char *auth_end = start + strcspn(start, "/?");
	if (auth_end > end)
		auth_end = end;
	const char *at = last_at(start, auth_end);
	if (at || *start == '[')
		return at;
	const char *colon = memchr(start, ':', (size_t)(auth_end - start));
	if (!colon)
		return NULL;
	size_t digits = strspn(colon + 1, "0123456789");
	if (digits > 0 && colon + 1 + digits == auth_end)
		return NULL;   /* host:port */
	return last_at(auth_end, end);
}

/* Does key name a password ("password", "sslpassword", "PGPASSWORD")? */
static bool is_password_key(const char *key, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i++)
		if (strncasecmp(key + i, "password", 8) == 0)
			return true;
	return false;
}

/*
 * The one URL-password masker: scheme://user:password@host ->
 * scheme://user:***@host. In free text (in_text) a URL ends at the first
 * byte no URL holds, and its query is left to mask_password_pairs; a URL
 * as the user gave it (!in_text) runs to the end of text, whatever bytes
 * it holds, and every password-like query value is masked up to its '&'.
 */
char *sg_mask_url_passwords(const char *text, bool in_text)
{
	struct sg_buf b = {0};
	const char *p = text;
	const char *sep;
	while ((sep = strstr(p, "://")) != NULL) {
		const char *start = sep + 3;
		const char *end = start;
		if (in_text)
			while (!ends_url_token(*end))
				end++;
		else
			end += strlen(start);
		const char *auth_end = start + strcspn(start, "/?");
		if (!in_text && auth_end < end && memchr(auth_end, '@', (size_t)(end - auth_end))) {
			/* a raw '@' after the host: the URL parser refuses it
			 * (url.c, UNENCODED_USERINFO), and where its password ends
			 * is anyone's guess, so nothing after the scheme shows */
			sg_buf_append(&b, p, (size_t)(start - p));
			sg_buf_puts(&b, "***");
			p = end;
			continue;
		}
		const char *at = userinfo_end(start, end);
		const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
		if (colon && colon + 1 < at) {
			sg_buf_append(&b, p, (size_t)(colon + 1 - p));
			sg_buf_puts(&b, "***");
			p = at;
		}
		const char *from = p > start ? p : start;   /* past the user info */
		const char *q = in_text ? NULL : memchr(from, '?', (size_t)(end - from));
		while (q) {
			const char *seg = q + 1;
			size_t seglen = strcspn(seg, "&");
			const char *eq = memchr(seg, '=', seglen);
			if (eq && is_password_key(seg, (size_t)(eq - seg)) && eq + 1 < seg + seglen) {
				sg_buf_append(&b, p, (size_t)(eq + 1 - p));
				sg_buf_puts(&b, "***");
				p = seg + seglen;
			}
			q = seg[seglen] ? seg + seglen : NULL;
		}
		sg_buf_append(&b, p, (size_t)(end - p));
		p = end;
	}
	sg_buf_puts(&b, p);
	return b.data;
}

/* Length of a quoted value starting at q (a quote char), with \-escapes. */
static size_t quoted_len(const char *q)
{
	const char *p = q + 1;
	while (*p && *p != *q) {
		if (*p == '\\' && p[1])
			p++;
		p++;
	}
	return (size_t)(p - q) + (*p ? 1 : 0);
}

/*
 * password=VALUE in conninfo strings ("host=x password='a b'"), URL query
 * strings ("?password=x&y=1") and environment dumps ("PGPASSWORD=x"). Any
 * key ending in "password" counts, so sslpassword is covered too.
 */
static char *mask_password_pairs(const char *text)
{
	struct sg_buf b = {0};
	const char *p = text;
	const char *hit;
	while ((hit = strcasestr(p, "password")) != NULL) {
		const char *v = hit + strlen("password");
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=') {
			sg_buf_append(&b, p, (size_t)(v - p));
			p = v;
			continue;
		}
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		/* A conninfo value may be quoted ('a b'); a URL query value may
		 * merely start with a quote ('x'y): mask the quoted part and
		 * whatever follows it up to a separator. Not up to a '\'': a
		 * query value may hold one. */
		size_t vlen = 0;
		if (*v == '\'' || *v == '"')
			vlen = quoted_len(v);
		vlen += strcspn(v + vlen, " \t\r\n&\"");
		sg_buf_append(&b, p, (size_t)(v - p));
		if (vlen > 0)
			sg_buf_puts(&b, "***");
		p = v + vlen;
	}
	sg_buf_puts(&b, p);
	return b.data;
}

/*
 * Malloc'd redacted copy of text. URL syntax first: a registered secret
 * may itself hold "://" or '@' (or match part of the scheme), and
 * masking it first would break the syntax that finds the password as
 * written, percent-encoding and all.
 */
char *sg_redact_alloc(const char *text)
{
	char *a = sg_mask_url_passwords(text ? text : "", true);
	char *b = mask_password_pairs(a);
	free(a);
	char *c = mask_secrets(b);
	free(b);
	return c;
}

void sg_redact(const char *text, char *out, size_t outsz)
{
	if (!out || outsz == 0)
		return;
	char *r = sg_redact_alloc(text);
	snprintf(out, outsz, "%s", r);
	free(r);
}

/* ---- formatting --------------------------------------------------------- */

static const char *level_name(enum sg_log_level level)
{
	switch (level) {
	case SG_LOG_DEBUG:
		return "debug";
	case SG_LOG_INFO:
		return "info";
	case SG_LOG_WARN:
		return "warn";
	case SG_LOG_ERROR:
	case SG_LOG_QUIET:
		break;
	}
	return "error";
}

static void put_timestamp(struct sg_buf *b)
{
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	sg_buf_printf(b, "%s.%03ldZ", when, ts.tv_nsec / 1000000L);
}

/* Text mode: one line, so line breaks and terminal control bytes from a
 * database error message become spaces. */
static void put_text_n(struct sg_buf *b, const char *s, size_t n)
{
	for (const char *p = s; p < s + n; p++) {
		unsigned char c = (unsigned char)*p;
		char out = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
		sg_buf_append(b, &out, 1);
	}
}

static void put_text(struct sg_buf *b, const char *s)
{
	put_text_n(b, s, strlen(s));
}

static void json_field(struct sg_buf *b, const char *key, const char *value)
{
	if (!value)
		return;
	sg_buf_printf(b, ",\"%s\":", key);
	char *r = sg_redact_alloc(value);
	sg_buf_json_string(b, r);
	free(r);
}

static void text_field(struct sg_buf *b, bool *first, const char *key, const char *value)
{
	if (!value)
		return;
	sg_buf_puts(b, *first ? " (" : " ");
	*first = false;
	sg_buf_printf(b, "%s=", key);
	char *r = sg_redact_alloc(value);
	bool quote = r[0] == '\0' || strpbrk(r, " \t\r\n\"") != NULL;
	if (!quote) {
		put_text(b, r);
	} else {
		sg_buf_puts(b, "\"");
		for (const char *p = r; *p; p++) {
			if (*p == '"' || *p == '\\')
				sg_buf_puts(b, "\\");
			put_text_n(b, p, 1);
		}
		sg_buf_puts(b, "\"");
	}
	free(r);
}

static void format_json(struct sg_buf *b, enum sg_log_level level, const char *event,
			const struct sg_log_fields *f, const char *msg)
{
	sg_buf_puts(b, "{\"ts\":\"");
	put_timestamp(b);
	sg_buf_printf(b, "\",\"level\":\"%s\"", level_name(level));
	json_field(b, "event", event ? event : "log");
	json_field(b, "instance", sg_instance_id());
	json_field(b, "msg", msg);
	if (f) {
		json_field(b, "version", f->version);
		json_field(b, "name", f->name);
		json_field(b, "holder", f->holder);
		json_field(b, "error", f->error);
		json_field(b, "from", f->from);
		json_field(b, "to", f->to);
		json_field(b, "reason", f->reason);
		json_field(b, "phase", f->phase);
		json_field(b, "wait", f->wait);
		json_field(b, "blocked_by", f->blocked_by);
		if (f->percent)
			sg_buf_printf(b, ",\"percent\":%s", f->percent);
		if (f->duration_ms >= 0)
			sg_buf_printf(b, ",\"duration_ms\":%lld", (long long)f->duration_ms);
		if (f->waited_ms >= 0)
			sg_buf_printf(b, ",\"waited_ms\":%lld", (long long)f->waited_ms);
	}
	sg_buf_puts(b, "}\n");
}

/* 2026-11-21T13:30:52.123Z INFO  event: message (version=0003 name=x duration_ms=12) */
static void format_text(struct sg_buf *b, enum sg_log_level level, const char *event,
			const struct sg_log_fields *f, const char *msg)
{
	char upper[8];
	snprintf(upper, sizeof(upper), "%s", level_name(level));
	for (char *c = upper; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	put_timestamp(b);
	sg_buf_printf(b, " %-5s ", upper);
	struct sg_buf rest = {0};
	if (event && *event) {
		put_text(&rest, event);
		sg_buf_puts(&rest, ": ");
	}
	char *r = sg_redact_alloc(msg);
	put_text(&rest, r);
	free(r);
	if (f) {
		bool first = true;
		char num[32];
		text_field(&rest, &first, "version", f->version);
		text_field(&rest, &first, "name", f->name);
		text_field(&rest, &first, "holder", f->holder);
		text_field(&rest, &first, "error", f->error);
		if (f->duration_ms >= 0) {
			snprintf(num, sizeof(num), "%lld", (long long)f->duration_ms);
			text_field(&rest, &first, "duration_ms", num);
		}
		if (f->waited_ms >= 0) {
			snprintf(num, sizeof(num), "%lld", (long long)f->waited_ms);
			text_field(&rest, &first, "waited_ms", num);
		}
		if (!first)
			sg_buf_puts(&rest, ")");
	}
	/* Mask the secrets once more in what is printed: a control byte
	 * turned into a space, or a quote escaped, can spell one that the
	 * raw text did not hold. */
	char *masked = mask_secrets(rest.data ? rest.data : "");
	sg_buf_puts(b, masked);
	free(masked);
	sg_buf_free(&rest);
	sg_buf_puts(b, "\n");
}

/* A pipe write of up to PIPE_BUF bytes is atomic; the loop only matters
 * for longer lines or an interrupted call. */
static void write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

void sg_log(enum sg_log_level level, const char *event, const struct sg_log_fields *f,
	    const char *fmt, ...)
{
	if (level < log_level || log_level == SG_LOG_QUIET)
		return;
	int saved_errno = errno;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);

	struct sg_buf line = {0};
	if (log_format == SG_LOG_JSON) {
		format_json(&line, level, event, f, msg ? msg : "");
	} else {
		/* the JSON path redacts the event name too; text must match */
		char *ev = event ? sg_redact_alloc(event) : NULL;
		format_text(&line, level, ev, f, msg ? msg : "");
		free(ev);
	}
	write_all(STDERR_FILENO, line.data, line.len);
	sg_buf_free(&line);
	free(msg);
	errno = saved_errno;
}

void sg_write_termination_log(const char *path, const char *reason)
{
	int fd;
	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	} else {
		/* Outside Kubernetes the file does not exist; never create it. */
		if (access("/dev/termination-log", W_OK) != 0)
			return;
		fd = open("/dev/termination-log", O_WRONLY | O_TRUNC | O_CLOEXEC);
	}
	if (fd < 0)
		return;
	char *r = sg_redact_alloc(reason);
	struct sg_buf b = {0};
	put_text(&b, r);
	free(r);
	/* as in format_text: what is printed must not spell a secret */
	char *masked = mask_secrets(b.data ? b.data : "");
	sg_buf_free(&b);
	sg_buf_puts(&b, masked);
	free(masked);
	if (b.len > TERMINATION_LOG_MAX - 1)
		b.len = TERMINATION_LOG_MAX - 1;
	sg_buf_append(&b, "\n", 1);
	write_all(fd, b.data, b.len);
	sg_buf_free(&b);
	close(fd);
}
