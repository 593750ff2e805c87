/*
 * url.c - parse database URLs into their parts (SPEC section 2).
 *
 * Network URLs: scheme://[user[:password]@][host][:port][/database][?k=v&...]
 * with IPv6 hosts in brackets and, for PostgreSQL, libpq's list of hosts
 * (host1:port1,[::1]:port2); user, password, host, database and params
 * are percent-decoded, so a password may hold any byte except NUL. The
 * authority ends at the first '/' or '?' and the last '@' in it ends the
 * user info, as in libpq and the WHATWG URL standard; a raw '@' after it
 * is refused (see UNENCODED_USERINFO). The password may also come as
 * ?password=... (as libpq accepts it).
 * SQLite: sqlite:PATH, sqlite://RELATIVE, sqlite:///ABSOLUTE, all with an
 * optional ?query.
 *
 * Every error message carries the URL only in redacted form: a URL that
 * fails to parse is exactly the one most likely to be pasted into a bug
 * report.
 */
#include "schemagate/url.h"
#include "schemagate/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct scheme_entry {
	const char *name;
	enum sg_engine engine;
};

static const struct scheme_entry schemes[] = {
	{ "postgres", SG_ENGINE_POSTGRES },
	{ "postgresql", SG_ENGINE_POSTGRES },
	{ "mysql", SG_ENGINE_MYSQL },
	{ "mariadb", SG_ENGINE_MYSQL },
	{ "sqlite", SG_ENGINE_SQLITE },
};

const char *sg_engine_name(enum sg_engine e)
{
	switch (e) {
	case SG_ENGINE_POSTGRES:
		return "postgres";
	case SG_ENGINE_MYSQL:
		return "mysql";
	case SG_ENGINE_SQLITE:
		return "sqlite";
	case SG_ENGINE_NONE:
		break;
	}
	return "none";
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *sg_percent_decode(const char *s, size_t n)
{
	char *out = sg_malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
			free(out);
			return NULL;
		}
		int c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
		/* %00 would silently truncate the C string: refuse it */
		if (c == 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)c;
		i += 2;
	}
	out[o] = '\0';
	return out;
}

static bool is_password_key(const char *key)
{
	return strcasestr(key, "password") != NULL;
}

/*
 * Text the user gave that holds URLs, for a message: each URL runs to the
 * scheme of the next ("postgres://u:x@h,postgres://v:y@h" holds two) and
 * has its passwords masked the way this parser finds them - the user info
 * up to the last '@' of the authority, every password-like query value up
 * to the next '&' - whatever bytes they hold; then the log's redaction.
 * sg_redact alone looks for URLs in free text and must stop at bytes no
 * URL holds (a quote, a space), which a URL refused for holding one is
 * likely to contain.
 */
char *sg_url_redact_alloc(const char *text)
{
	struct sg_buf b = {0};
	const char *p = text;
	while (*p) {
		const char *sep = strstr(p, "://");
		const char *next = sep ? strstr(sep + 3, "://") : NULL;
		if (next)
			while (next > sep + 3 && (isalnum((unsigned char)next[-1]) || strchr("+-.", next[-1])))
				next--;
		size_t len = next ? (size_t)(next - p) : strlen(p);
		char *piece = sg_strndup(p, len);
		char *masked = sg_mask_url_passwords(piece, false);
		char *shown = sg_redact_alloc(masked);
		sg_buf_puts(&b, shown);
		free(shown);
		free(masked);
		free(piece);
		p += len;
	}
	if (!b.data)
		sg_buf_puts(&b, "");
	return b.data;
}

void sg_url_redact_text(const char *text, char *out, size_t outsz)
{
	char *shown = sg_url_redact_alloc(text);
	snprintf(out, outsz, "%s", shown);
	free(shown);
}

/*
 * A raw '@' after the host is refused: the user info then held a '/' or a
 * '?' ("u:p/w@h/db", "mysql://u:se@cret/x@h/db"), which ends the host part
 * for libpq and the WHATWG URL standard alike, so any reading would
 * connect to a host made of a piece of the password, and print it.
 */
#define UNENCODED_USERINFO                                                                          \
	"a raw '@' after the host: percent-encode '/', '?' and '@' in the user name and password "  \
	"(%2F, %3F, %40), and '@' in the database name and parameters"

/* The database URL a message quotes: all of the text is one URL, so a
 * "://" inside its password or a query value starts no second one (that
 * would show the password's tail as the next URL's user info; fuzz_url,
 * regressions/url/query-password-holding-a-scheme and
 * userinfo-password-holding-a-scheme). */
static void redact_database_url(const char *text, char *out, size_t outsz)
{
	char *masked = sg_mask_url_passwords(text, false);
	char *shown = sg_redact_alloc(masked);
	snprintf(out, outsz, "%s", shown);
	free(shown);
	free(masked);
}

static int url_error(struct sg_error *err, const char *text, const char *why)
{
	char red[512];
	redact_database_url(text, red, sizeof(red));
	/* in double quotes: the log's masking of "password=VALUE" ends a
	 * value at one, so the text after a ?password= at the URL's end
	 * survives it */
	return sg_fail(err, SG_OUTCOME_USAGE, "invalid database URL \"%s\": %s", red, why);
}

/* Decode s[0..n) into *out; a malformed escape fails naming the part. */
static int decode_part(const char *text, const char *s, size_t n, const char *what, char **out,
		       struct sg_error *err)
{
	*out = sg_percent_decode(s, n);
	if (!*out) {
		char why[128];
		snprintf(why, sizeof(why), "malformed %%-escape in the %s", what);
		return url_error(err, text, why);
	}
	return 0;
}

/* "k=v&k2=v2" -> url->params; empty segments ("a=1&&b=2") are skipped. */
static int parse_query(const char *text, const char *q, struct sg_url *url, struct sg_error *err)
{
	while (*q) {
		size_t seg = strcspn(q, "&");
		if (seg > 0) {
			const char *eq = memchr(q, '=', seg);
			size_t klen = eq ? (size_t)(eq - q) : seg;
			if (klen == 0)
				return url_error(err, text, "query parameter without a name");
			url->params = sg_realloc(url->params, (url->nparams + 1) * sizeof(*url->params));
			struct sg_url_param *p = &url->params[url->nparams];
			p->key = p->value = NULL;
			url->nparams++;
			if (decode_part(text, q, klen, "query parameters", &p->key, err) < 0)
				return -1;
			if (eq) {
				if (decode_part(text, eq + 1, seg - klen - 1, "query parameters", &p->value, err) < 0)
					return -1;
			} else {
				p->value = sg_strdup("");
			}
		}
		q += seg;
		if (*q == '&')
			q++;
	}
	return 0;
}

static void append_params(struct sg_buf *b, const struct sg_url *url)
{
	for (size_t i = 0; i < url->nparams; i++) {
		const struct sg_url_param *p = &url->params[i];
		sg_buf_puts(b, i == 0 ? "?" : "&");
		sg_buf_puts(b, p->key);
		sg_buf_puts(b, "=");
		sg_buf_puts(b, is_password_key(p->key) && p->value[0] ? "***" : p->value);
	}
}

static void build_redacted(struct sg_url *url)
{
	struct sg_buf b = {0};
	sg_buf_puts(&b, url->scheme);
	if (url->engine == SG_ENGINE_SQLITE) {
		sg_buf_puts(&b, ":");
		sg_buf_puts(&b, url->path);
	} else {
		sg_buf_puts(&b, "://");
		if (url->user || url->password) {
			sg_buf_puts(&b, url->user ? url->user : "");
			if (url->password)
				sg_buf_puts(&b, ":***");
			sg_buf_puts(&b, "@");
		}
		for (size_t i = 0; i < url->nhosts; i++) {
			const struct sg_url_host *h = &url->hosts[i];
			if (i > 0)
				sg_buf_puts(&b, ",");
			if (h->host && strchr(h->host, ':'))
				sg_buf_printf(&b, "[%s]", h->host);
			else if (h->host)
				sg_buf_puts(&b, h->host);
			if (h->port)
				sg_buf_printf(&b, ":%d", h->port);
		}
		if (url->database)
			sg_buf_printf(&b, "/%s", url->database);
	}
	append_params(&b, url);
	url->redacted = b.data;
}

/*
 * sqlite:PATH and sqlite://PATH are relative unless PATH starts with '/';
 * sqlite:///abs is therefore /abs. The query is split off first so
 * "sqlite:app.db?mode=ro" opens app.db.
 */
static int parse_sqlite(const char *text, const char *rest, struct sg_url *url, struct sg_error *err)
{
	if (strncmp(rest, "//", 2) == 0)
		rest += 2;
	size_t plen = strcspn(rest, "?");
	if (plen == 0)
		return url_error(err, text, "the SQLite file path is empty");
	if (decode_part(text, rest, plen, "path", &url->path, err) < 0)
		return -1;
	if (rest[plen] == '?' && parse_query(text, rest + plen + 1, url, err) < 0)
		return -1;
	return 0;
}

static int parse_port(const char *text, const char *s, size_t n, int *port, struct sg_error *err)
{
	if (n == 0 || n > 5)
		return url_error(err, text, "the port must be a number from 1 to 65535");
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return url_error(err, text, "the port must be a number from 1 to 65535");
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return url_error(err, text, "the port must be a number from 1 to 65535");
	*port = v;
	return 0;
}

/* host[:port] or [v6]:port, n bytes at s. */
static int parse_hostport(const char *text, const char *s, size_t n, struct sg_url_host *h,
			  struct sg_error *err)
{
	const char *port = NULL;
	size_t hlen;
	const char *host = s;
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return url_error(err, text, "unterminated '[' in the IPv6 host");
		host = s + 1;
		hlen = (size_t)(close - host);
		const char *after = close + 1;
		if (after < s + n) {
			if (*after != ':')
				return url_error(err, text, "unexpected characters after the IPv6 host");
			port = after + 1;
		}
		if (hlen == 0)
			return url_error(err, text, "empty IPv6 host");
	} else {
		const char *colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon)
			port = colon + 1;
	}
	if (port && parse_port(text, port, (size_t)(s + n - port), &h->port, err) < 0)
		return -1;
	if (hlen > 0 && decode_part(text, host, hlen, "host", &h->host, err) < 0)
		return -1;
	return 0;
}

/*
 * The host part: one host[:port], or libpq's list host1:port1,host2:port2
 * (PostgreSQL only; libpq tries them in order, target_session_attrs
 * choosing among them). url->host and url->port are the first entry's.
 */
static int parse_hosts(const char *text, const char *s, size_t n, struct sg_url *url, struct sg_error *err)
{
	const char *end = s + n;
	for (const char *p = s;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		if (comma && url->engine != SG_ENGINE_POSTGRES)
			return url_error(err, text, "a list of hosts is a PostgreSQL (libpq) feature");
		if ((comma || url->nhosts > 0) && stop == p)
			return url_error(err, text, "an empty entry in the list of hosts");
		url->hosts = sg_realloc(url->hosts, (url->nhosts + 1) * sizeof(*url->hosts));
		struct sg_url_host *h = &url->hosts[url->nhosts++];
		h->host = NULL;
		h->port = 0;
		if (parse_hostport(text, p, (size_t)(stop - p), h, err) < 0)
			return -1;
		if (!comma)
			break;
		p = comma + 1;
	}
	url->host = url->hosts[0].host ? sg_strdup(url->hosts[0].host) : NULL;
	url->port = url->hosts[0].port;
	return 0;
}

/* scheme://[user[:password]@][host][:port][/database][?query] after "scheme:". */
static int parse_network(const char *text, const char *rest, struct sg_url *url, struct sg_error *err)
{
	if (strncmp(rest, "//", 2) != 0)
		return url_error(err, text, "expected '//' after the scheme");
	rest += 2;
	size_t alen = strcspn(rest, "/?");
	/* The last '@' ends the userinfo, so a raw '@' in a password still works. */
	const char *at = NULL;
	for (const char *p = rest; p < rest + alen; p++)
		if (*p == '@')
			at = p;
	const char *hp = rest;
	if (at) {
		size_t ulen = (size_t)(at - rest);
		const char *colon = memchr(rest, ':', ulen);
		size_t namelen = colon ? (size_t)(colon - rest) : ulen;
		if (namelen > 0 && decode_part(text, rest, namelen, "user name", &url->user, err) < 0)
			return -1;
		if (colon && decode_part(text, colon + 1, ulen - namelen - 1, "password", &url->password, err) < 0)
			return -1;
		hp = at + 1;
	}
	const char *p = rest + alen;
	if (strchr(p, '@'))
		return url_error(err, text, UNENCODED_USERINFO);
	if (parse_hosts(text, hp, (size_t)(rest + alen - hp), url, err) < 0)
		return -1;
	if (*p == '/') {
		p++;
		size_t dlen = strcspn(p, "?");
		if (dlen > 0 && decode_part(text, p, dlen, "database name", &url->database, err) < 0)
			return -1;
		p += dlen;
	}
	if (*p == '?' && parse_query(text, p + 1, url, err) < 0)
		return -1;
	return 0;
}

/*
 * libpq and psql accept the password as ?password=...; it is the URL's
 * password like any other, so it moves out of the parameters into
 * url->password: every driver, and every secret registration, sees one
 * password. Two passwords (user info and query, or the query twice) are
 * refused rather than one silently chosen.
 */
static int take_query_password(const char *text, struct sg_url *url, struct sg_error *err)
{
	size_t i = 0;
	while (i < url->nparams) {
		struct sg_url_param *p = &url->params[i];
		if (strcmp(p->key, "password") != 0) {
			i++;
			continue;
		}
		if (url->password)
			return url_error(err, text,
					 "the password is given twice (in the user info and as the password "
					 "parameter, or as two password parameters); give it once");
		url->password = p->value;
		free(p->key);
		memmove(p, p + 1, (url->nparams - i - 1) * sizeof(*p));
		url->nparams--;
	}
	return 0;
}

static const struct scheme_entry *find_scheme(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].name) == n && strncasecmp(schemes[i].name, s, n) == 0)
			return &schemes[i];
	return NULL;
}

int sg_url_parse(const char *text, struct sg_url *url, struct sg_error *err)
{
	memset(url, 0, sizeof(*url));
	if (!text || !*text)
		return sg_fail(err, SG_OUTCOME_USAGE, "the database URL is empty");
	size_t slen = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	if (slen == 0 || text[slen] != ':')
		return url_error(err, text,
				 "expected scheme://... (postgres, postgresql, mysql, mariadb) or sqlite:PATH");
	const struct scheme_entry *se = find_scheme(text, slen);
	if (!se) {
		char red[512];
		redact_database_url(text, red, sizeof(red));
		return sg_fail(err, SG_OUTCOME_USAGE,
			       "unsupported database URL scheme '%.*s' in '%s' "
			       "(use postgres://, postgresql://, mysql://, mariadb:// or sqlite:PATH)",
			       (int)(slen > 32 ? 32 : slen), text, red);
	}
	url->engine = se->engine;
	url->scheme = sg_strndup(text, slen);
	for (char *c = url->scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);

	const char *rest = text + slen + 1;
	int rc = se->engine == SG_ENGINE_SQLITE ? parse_sqlite(text, rest, url, err)
						: parse_network(text, rest, url, err);
	if (rc < 0) {
		sg_url_free(url);
		return -1;
	}
	/* the redacted form shows the password where it was written */
	build_redacted(url);
	if (se->engine != SG_ENGINE_SQLITE && take_query_password(text, url, err) < 0) {
		sg_url_free(url);
		return -1;
	}
	return 0;
}

void sg_url_free(struct sg_url *url)
{
	if (!url)
		return;
	free(url->scheme);
	free(url->user);
	free(url->password);
	free(url->host);
	for (size_t i = 0; i < url->nhosts; i++)
		free(url->hosts[i].host);
	free(url->hosts);
	free(url->database);
	free(url->path);
	for (size_t i = 0; i < url->nparams; i++) {
		free(url->params[i].key);
		free(url->params[i].value);
	}
	free(url->params);
	free(url->redacted);
	memset(url, 0, sizeof(*url));
}

const char *sg_url_param(const struct sg_url *url, const char *key)
{
	/* Last one wins, as in libpq conninfo and most query-string readers. */
	const char *found = NULL;
	for (size_t i = 0; i < url->nparams; i++)
		if (strcmp(url->params[i].key, key) == 0)
			found = url->params[i].value;
	return found;
}

void sg_url_register_secrets(const struct sg_url *url)
{
	sg_log_add_secret(url->password);
	for (size_t i = 0; i < url->nparams; i++)
		if (is_password_key(url->params[i].key))
			sg_log_add_secret(url->params[i].value);
}
