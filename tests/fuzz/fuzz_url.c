/*
 * fuzz_url.c - database URLs (src/url.c) and their redaction (src/log.c).
 *
 * Input: fields separated by NUL bytes.
 *   0   a URL as written, any bytes;
 *   1   control bytes for a URL built from parts: scheme, where the
 *       password goes, how the parts are percent-encoded, which parts
 *       exist, the port, the case of each hex digit;
 *   2.. user, password, host, database, extra query key and value.
 *
 * Properties, for the URL as written:
 *   - sg_url_parse returns 0 or -1; a failure is exit 2 with a one-line
 *     message and leaves nothing allocated; a success has a redacted form
 *     starting with the scheme, a port in range, a path only for SQLite;
 *   - once the URL's secrets are registered (sg_url_register_secrets, as
 *     config.c does), no output - sg_redact, the text and JSON log lines
 *     (also decoded), the termination log - contains the password or any
 *     password-like query value, unless it is also a public part of the
 *     URL or of the fixed text around it.
 * For the URL built from parts (RFC 3986 minimal percent-encoding, or
 * every byte encoded in upper, lower or mixed-case hex; the password in
 * the user info, in ?password= or in ?sslpassword=):
 *   - it parses, and every part decodes back to exactly what was encoded;
 *   - the redacted URL and sg_redact's output are the same as for the
 *     same URL with the password "x", before any secret is registered:
 *     URL syntax alone hides a password of any length; the same for the
 *     error message of the URL made invalid by a port out of range;
 *   - after registration nothing printed contains the password or the
 *     text it was written as.
 * For the same URL with the password pasted raw into the user info (no
 * percent-encoding: "p@ss:w/ord"): it parses to exactly that password, or
 * it is refused (exit 2) and no piece of the password shows in the
 * message (see pasted()).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "outputs.h"
#include "schemagate/common.h"
#include "schemagate/log.h"
#include "schemagate/url.h"

/* The wording of the refusal of a raw '@' after the host (url.c) */
#define UNENCODED_WORDING                                                                           \
	"a raw '@' after the host: percent-encode '/', '?' and '@' in the user name and password "  \
	"(%2F, %3F, %40), and '@' in the database name and parameters"

/* Passwords shorter than this are not registered (log.c MIN_SECRET_LEN):
 * only URL syntax hides them. */
#define MIN_SECRET_LEN 3

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_outputs_init();
	return 0;
}

/* ---- is a string public? -------------------------------------------------- */

static bool in(const char *hay, const char *s)
{
	return hay && strstr(hay, s) != NULL;
}

/* s shows up in the URL's non-secret parts, alone or put together as the
 * redacted URL ("postgres:/"): printing it is no leak. (That the redacted
 * URL never shows the password is checked on the URLs built from parts.) */
static bool is_public(const struct sg_url *url, const char *s)
{
	if (in(url->redacted, s) || in(url->scheme, s) || in(url->user, s) || in(url->host, s) || in(url->database, s) ||
	    in(url->path, s))
		return true;
	for (size_t i = 0; i < url->nparams; i++) {
		if (in(url->params[i].key, s))
			return true;
		if (!strcasestr(url->params[i].key, "password") && in(url->params[i].value, s))
			return true;
	}
	return false;
}

/* Is s worth searching for? Long enough to be registered, and not a
 * string the fixed text of a log line shows anyway ("ERR", "***"). */
static bool searchable(const char *s, const struct fuzz_outputs *skeleton)
{
	return s && strlen(s) >= MIN_SECRET_LEN && !strchr(s, '*') && !fuzz_outputs_contain(skeleton, s);
}

/* ---- the URL as written --------------------------------------------------- */

static void check_parsed(const char *text, const struct sg_url *url)
{
	FUZZ_CHECK(url->redacted && url->scheme && url->engine != SG_ENGINE_NONE, "incomplete URL");
	FUZZ_CHECK(strncmp(url->redacted, url->scheme, strlen(url->scheme)) == 0,
		   "the redacted URL does not start with the scheme");
	FUZZ_CHECK(url->port >= 0 && url->port <= 65535, "port %d", url->port);
	if (url->engine == SG_ENGINE_SQLITE)
		FUZZ_CHECK(url->path && url->path[0] && !url->password && !url->host && !url->user,
			   "a SQLite URL has a path and nothing else");
	else
		FUZZ_CHECK(url->path == NULL, "a network URL has no path");
	for (size_t i = 0; i < url->nparams; i++)
		FUZZ_CHECK(url->params[i].key && url->params[i].key[0] && url->params[i].value,
			   "query parameter %zu", i);
	(void)text;
}

/* Does public text show s, as written or as a text log prints it (control
 * bytes as spaces: "`:a\x19pd" later in the URL prints as the password
 * "`:a pd")? */
static bool shows(const char *public_text, const char *s)
{
	if (strstr(public_text, s))
		return true;
	char *printed = strdup(public_text);
	for (char *p = printed; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	bool found = strstr(printed, s) != NULL;
	free(printed);
	return found;
}

/* A refused URL: the message names the problem and, by URL syntax alone
 * (nothing is registered for a URL that does not parse), hides what the
 * URL holds as its password. */
static void check_refused(const char *text, const struct sg_error *err, const struct fuzz_outputs *skeleton)
{
	FUZZ_CHECK(err->outcome == SG_OUTCOME_USAGE, "outcome %d", (int)err->outcome);
	FUZZ_CHECK(err->msg[0] && !strpbrk(err->msg, "\r\n"), "not a one-line message: %s", err->msg);
	size_t at, wlen;
	if (!fuzz_url_password_span(text, &at, &wlen))
		return;
	char *written = strndup(text + at, wlen);
	/* The text without the password, and the message for the same URL
	 * with a filler instead of it: what the message may show anyway
	 * ("tgr" is in the wording "postgresql"). A password that is itself
	 * the reason (a bad %-escape) may make the filler's message another
	 * one; the wording of that reason is then the fixed text. */
	char *rest = malloc(strlen(text) + 1);
	memcpy(rest, text, at);
	strcpy(rest + at, text + at + wlen);
	char *filled = strdup(text);
	memset(filled + at, 'x', wlen);
	struct sg_url url;
	struct sg_error ferr = {0};
	const char *filler_msg = "malformed %-escape in the password";
	if (sg_url_parse(filled, &url, &ferr) == 0)
		sg_url_free(&url);
	else
		filler_msg = ferr.msg;
	if (searchable(written, skeleton) && !shows(rest, written) && !shows(filler_msg, written) &&
	    !strstr("malformed %-escape in the password", written)) {
		struct fuzz_outputs o;
		fuzz_outputs_collect(&o, err->msg, NULL);
		fuzz_outputs_assert_hidden(&o, written, "password as written (refused URL)", text);
		fuzz_outputs_free(&o);
	}
	free(filled);
	free(rest);
	free(written);
}

static void as_written(const char *text, const struct fuzz_outputs *skeleton)
{
	struct sg_url url;
	struct sg_error err = {0};
	sg_log_forget_secrets();
	int rc = sg_url_parse(text, &url, &err);
	FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
	if (rc < 0) {
		FUZZ_CHECK(!url.scheme && !url.redacted && !url.params && !url.password, "a failed parse kept parts");
		check_refused(text, &err, skeleton);
		return;
	}
	check_parsed(text, &url);

	sg_url_register_secrets(&url);
	struct fuzz_outputs o;
	fuzz_outputs_collect(&o, text, url.redacted);
	if (searchable(url.password, skeleton) && !is_public(&url, url.password))
		fuzz_outputs_assert_hidden(&o, url.password, "password", text);
	for (size_t i = 0; i < url.nparams; i++) {
		const char *v = url.params[i].value;
		if (strcasestr(url.params[i].key, "password") && searchable(v, skeleton) && !is_public(&url, v))
			fuzz_outputs_assert_hidden(&o, v, "password-like query value", text);
	}
	fuzz_outputs_free(&o);
	sg_url_free(&url);
	sg_log_forget_secrets();
}

/* ---- a URL built from parts ------------------------------------------------ */

/* IN_USERINFO_RAW: the password pasted into the user info as it is, no
 * percent-encoding at all ("p@ss:w/ord", "se@cret/xyz") */
enum carrier { IN_USERINFO, IN_QUERY, IN_SSLPASSWORD, IN_USERINFO_RAW, NCARRIERS };
enum encoding { ENC_RFC, ENC_UPPER, ENC_LOWER, ENC_MIXED, NENCODINGS };
/* RFC 3986: what each part may hold without percent-encoding */
enum part { P_USER, P_PASSWORD, P_HOST, P_DATABASE, P_QUERY };

static bool rfc_allows(enum part part, unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
		return c != '\0';   /* unreserved */
	bool sub_delim = c && strchr("!$&'()*+,;=", c);
	switch (part) {
	case P_USER:
		return sub_delim;
	case P_PASSWORD:
		return sub_delim || c == ':';
	case P_HOST:
		/* ',' separates libpq's list of hosts */
		return sub_delim && c != ',';
	/* RFC 3986 allows a raw '@' after the host; schemagate refuses it
	 * there (it is most often a password that held a '/' or a '?'), so
	 * these URLs write it %40 */
	case P_DATABASE:
		return sub_delim || c == ':' || c == '/';
	case P_QUERY:
		/* '&' and '=' separate parameters: encoded */
		return (sub_delim && c != '&' && c != '=') || c == ':' || c == '/' || c == '?';
	}
	return false;
}

struct builder {
	enum encoding enc;
	const unsigned char *case_bits;   /* ENC_MIXED: one bit per encoded byte */
	size_t ncase_bits;
	size_t nencoded;
};

static void encode(struct builder *b, struct sg_buf *out, enum part part, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (b->enc == ENC_RFC && rfc_allows(part, *p)) {
			sg_buf_append(out, (const char *)p, 1);
			continue;
		}
		bool upper = b->enc == ENC_UPPER || b->enc == ENC_RFC;
		if (b->enc == ENC_MIXED && b->ncase_bits > 0) {
			size_t k = b->nencoded % (b->ncase_bits * 8);
			upper = (b->case_bits[k / 8] >> (k % 8)) & 1;
		}
		b->nencoded++;
		sg_buf_printf(out, upper ? "%%%02X" : "%%%02x", *p);
	}
}

struct parts {
	const char *scheme, *user, *password, *host, *database, *key, *value;
	enum carrier carrier;
	bool ipv6;
	int port;              /* 0: none */
};

/* The URL text; *written gets the password as written (malloc'd). */
static char *build(const struct parts *pt, struct builder b, const char *password, char **written)
{
	struct sg_buf u = {0}, w = {0};
	/* its own copy of the case bits: the other parts must be written the
	 * same whatever the password's length */
	struct builder bp = b;
	bool userinfo = pt->carrier == IN_USERINFO || pt->carrier == IN_USERINFO_RAW;
	if (pt->carrier == IN_USERINFO_RAW)
		sg_buf_puts(&w, password);
	else
		encode(&bp, &w, pt->carrier == IN_USERINFO ? P_PASSWORD : P_QUERY, password);
	sg_buf_printf(&u, "%s://", pt->scheme);
	if (pt->user || userinfo) {
		if (pt->user)
			encode(&b, &u, P_USER, pt->user);
		if (userinfo)
			sg_buf_printf(&u, ":%s", w.data ? w.data : "");
		sg_buf_puts(&u, "@");
	}
	sg_buf_puts(&u, pt->ipv6 ? "[" : "");
	encode(&b, &u, P_HOST, pt->host);
	sg_buf_puts(&u, pt->ipv6 ? "]" : "");
	if (pt->port)
		sg_buf_printf(&u, ":%d", pt->port);
	if (pt->database) {
		sg_buf_puts(&u, "/");
		encode(&b, &u, P_DATABASE, pt->database);
	}
	char sep = '?';
	if (pt->key) {
		sg_buf_printf(&u, "%c", sep);
		encode(&b, &u, P_QUERY, pt->key);
		sg_buf_puts(&u, "=");
		encode(&b, &u, P_QUERY, pt->value);
		sep = '&';
	}
	if (!userinfo)
		sg_buf_printf(&u, "%c%s=%s", sep, pt->carrier == IN_QUERY ? "password" : "sslpassword",
			      w.data ? w.data : "");
	*written = w.data ? w.data : sg_strdup("");
	return u.data;
}

static void assert_same(const char *a, const char *b, const char *what, const char *url)
{
	if (strcmp(a, b) == 0)
		return;
	fuzz_dump("URL", url, strlen(url));
	fuzz_dump("with the password", a, strlen(a));
	fuzz_dump("with the password \"x\"", b, strlen(b));
	FUZZ_CHECK(false, "the %s depends on the password", what);
}

static void assert_decoded(const char *got, const char *want, const char *what, const char *url)
{
	if (want == NULL ? got == NULL : (got != NULL && strcmp(got, want) == 0))
		return;
	fuzz_dump("URL", url, strlen(url));
	fuzz_dump("expected", want ? want : "(none)", want ? strlen(want) : 6);
	fuzz_dump("parsed", got ? got : "(none)", got ? strlen(got) : 6);
	FUZZ_CHECK(false, "the %s does not decode back", what);
}

static char *redact(const char *text)
{
	size_t cap = 3 * strlen(text) + 64;
	char *r = malloc(cap);
	sg_redact(text, r, cap);
	return r;
}

/* The message of the same URL with a port out of range. */
static char *bad_port_message(const struct parts *pt, struct builder b, const char *password)
{
	struct parts bad = *pt;
	bad.port = 99999;
	char *written;
	char *text = build(&bad, b, password, &written);
	struct sg_url url;
	struct sg_error err = {0};
	int rc = sg_url_parse(text, &url, &err);
	FUZZ_CHECK(rc == -1, "port 99999 accepted in %s", text);
	free(text);
	free(written);
	return strdup(err.msg);
}

/*
 * A password pasted without percent-encoding: the URL parses with exactly
 * that password (unless it holds a '%', which may read as an escape) and
 * the other parts, or it is refused with exit 2 - and then no piece of
 * the password (split where URL syntax could cut it: '@', '/', '?', ':',
 * '#', ',', '[', ']') shows in the message, unless the rest of the URL
 * or the message for a filler password shows it anyway.
 */
static void pasted(const struct parts *pt, struct builder b, const struct fuzz_outputs *skeleton)
{
	char *written;
	char *text = build(pt, b, pt->password, &written);
	struct sg_url url;
	struct sg_error err = {0};
	sg_log_forget_secrets();
	if (sg_url_parse(text, &url, &err) == 0) {
		if (!strchr(pt->password, '%')) {
			assert_decoded(url.password, pt->password, "pasted password", text);
			assert_decoded(url.user, pt->user, "user", text);
			assert_decoded(url.host, pt->host, "host", text);
			assert_decoded(url.database, pt->database, "database", text);
		}
		sg_url_free(&url);
		free(text);
		free(written);
		return;
	}
	FUZZ_CHECK(err.outcome == SG_OUTCOME_USAGE, "outcome %d", (int)err.outcome);
	/* what the message shows for the same URL with a filler password */
	size_t plen = strlen(pt->password);
	char *filler = malloc(plen + 1);
	memset(filler, 'x', plen);
	filler[plen] = '\0';
	struct parts fpt = *pt;
	fpt.password = filler;
	char *fwritten;
	char *ftext = build(&fpt, b, filler, &fwritten);
	struct sg_error ferr = {0};
	if (sg_url_parse(ftext, &url, &ferr) == 0)
		sg_url_free(&url);
	char *piece = strdup(pt->password);
	for (char *tok = strtok(piece, "@/?:#,[]"); tok; tok = strtok(NULL, "@/?:#,[]")) {
		if (!searchable(tok, skeleton) || shows(ftext, tok) || shows(ferr.msg, tok) ||
		    strstr(UNENCODED_WORDING, tok))
			continue;
		if (strstr(err.msg, tok)) {
			fuzz_dump("URL", text, strlen(text));
			fuzz_dump("piece", tok, strlen(tok));
			FUZZ_CHECK(false, "a piece of a pasted password shows in the message: %s", err.msg);
		}
	}
	free(piece);
	free(ftext);
	free(fwritten);
	free(filler);
	free(text);
	free(written);
}

static void built(const struct fuzz_fields *f, const struct fuzz_outputs *skeleton)
{
	static const char *const schemes[] = { "postgres", "postgresql", "mysql", "mariadb", "PostgreSQL" };
	const unsigned char *c = (const unsigned char *)fuzz_field(f, 1);
	size_t nc = strlen((const char *)c);
	unsigned char ctl[8] = { 0 };
	memcpy(ctl, c, nc < sizeof(ctl) ? nc : sizeof(ctl));
	const char *password = fuzz_field(f, 3);
	if (!*password)
		return;

	struct parts pt = {
		.scheme = schemes[ctl[0] % 5],
		.carrier = (enum carrier)(ctl[1] % NCARRIERS),
		.user = (ctl[3] & 1) && *fuzz_field(f, 2) ? fuzz_field(f, 2) : NULL,
		.password = password,
		.host = *fuzz_field(f, 4) ? fuzz_field(f, 4) : "h",
		.database = (ctl[3] & 4) && *fuzz_field(f, 5) ? fuzz_field(f, 5) : NULL,
		.ipv6 = (ctl[3] & 8) != 0,
		.port = (ctl[3] & 2) ? 1 + (ctl[4] << 8 | ctl[5]) % 65535 : 0,
	};
	/* an extra parameter, unless it is itself a password */
	if ((ctl[3] & 16) && *fuzz_field(f, 6) && !strcasestr(fuzz_field(f, 6), "password")) {
		pt.key = fuzz_field(f, 6);
		pt.value = fuzz_field(f, 7);
	}
	struct builder b = {
		.enc = (enum encoding)(ctl[2] % NENCODINGS),
		.case_bits = c + (nc > 6 ? 6 : nc),
		.ncase_bits = nc > 6 ? nc - 6 : 0,
	};

	if (pt.carrier == IN_USERINFO_RAW) {
		pasted(&pt, b, skeleton);
		return;
	}
	char *written, *written_x;
	char *text = build(&pt, b, password, &written);
	char *text_x = build(&pt, b, "x", &written_x);
	sg_log_forget_secrets();

	struct sg_url url, url_x;
	struct sg_error err = {0};
	if (sg_url_parse(text, &url, &err) != 0) {
		fuzz_dump("URL", text, strlen(text));
		FUZZ_CHECK(false, "a well-formed URL is refused: %s", err.msg);
	}
	FUZZ_CHECK(sg_url_parse(text_x, &url_x, &err) == 0, "%s", err.msg);

	/* every part decodes back */
	assert_decoded(url.user, pt.user, "user", text);
	assert_decoded(url.host, pt.host, "host", text);
	assert_decoded(url.database, pt.database, "database", text);
	if (pt.key)
		assert_decoded(sg_url_param(&url, pt.key), pt.value, "query value", text);
	if (pt.carrier == IN_SSLPASSWORD)
		assert_decoded(sg_url_param(&url, "sslpassword"), password, "sslpassword", text);
	else
		assert_decoded(url.password, password, "password", text);
	FUZZ_CHECK(url.port == pt.port, "port %d, not %d", url.port, pt.port);

	/* URL syntax alone hides a password of any length */
	assert_same(url.redacted, url_x.redacted, "redacted URL", text);
	char *r = redact(text), *r_x = redact(text_x);
	assert_same(r, r_x, "output of sg_redact", text);
	free(r);
	free(r_x);
	char *m = bad_port_message(&pt, b, password), *m_x = bad_port_message(&pt, b, "x");
	assert_same(m, m_x, "message for a bad port", text);

	/* and once registered, nothing printed shows it - unless what the
	 * same URL with the password "x" prints shows it anyway: public
	 * text next to the log's own punctuation (a host ending in "%0D",
	 * then the ")" closing the fields, spells the password "%0D)") */
	struct fuzz_outputs o, o_x;
	fuzz_outputs_collect(&o_x, text_x, url_x.redacted);
	sg_url_register_secrets(&url);
	fuzz_outputs_collect(&o, text, url.redacted);
	if (searchable(password, skeleton) && !is_public(&url, password) && !fuzz_outputs_contain(&o_x, password))
		fuzz_outputs_assert_hidden(&o, password, "password", text);
	if (searchable(written, skeleton) && !in(text_x, written) && !is_public(&url, written) &&
	    !fuzz_outputs_contain(&o_x, written))
		fuzz_outputs_assert_hidden(&o, written, "password as written", text);
	fuzz_outputs_free(&o);
	fuzz_outputs_free(&o_x);

	free(m);
	free(m_x);
	sg_url_free(&url);
	sg_url_free(&url_x);
	free(text);
	free(text_x);
	free(written);
	free(written_x);
	sg_log_forget_secrets();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	fuzz_fields_split(&f, data, size, 8);
	/* the fixed text of the outputs: what any secret may coincide with */
	struct fuzz_outputs skeleton;
	sg_log_forget_secrets();
	fuzz_outputs_collect(&skeleton, "", NULL);

	as_written(fuzz_field(&f, 0), &skeleton);
	built(&f, &skeleton);

	fuzz_outputs_free(&skeleton);
	fuzz_fields_free(&f);
	return 0;
}
