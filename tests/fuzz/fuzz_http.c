/*
 * fuzz_http.c - the request parser and the listen address parser of
 * `schemagate serve` (sg_http_parse_request, sg_http_parse_address in
 * src/http.c).
 *
 * Input: byte 0 picks what is fuzzed (bit 0 set: a listen address, the
 * rest of the input up to a NUL). Otherwise bytes 1-2 are a padding
 * length (little endian, modulo 9000) and the rest is the request: with
 * a padding, a header line "X-Pad: aaa..." of that many bytes goes right
 * after the request line, so that a small mutation moves a head across
 * the 8 KiB limit.
 *
 * Properties of the request parser:
 *   - fed incrementally, under every split: each prefix of the bytes
 *     parses as incomplete or exactly as the whole (status, HTTP status,
 *     method, path, query, version, head length), as the server re-parses
 *     what it has after each read (every prefix for requests up to 1 KiB,
 *     otherwise every prefix around each line end, around the limit and
 *     at 64 places picked from the input); each prefix is a copy of
 *     exactly its length, so a read past it is an ASan report;
 *   - the verdict and the HTTP status are those of a reference parser
 *     written here from RFC 9112 as the header of http.h scopes it
 *     (request line METHOD SP TARGET SP HTTP/1.x, empty lines before it,
 *     LF or CRLF, token names, no control bytes, no folding, one Host in
 *     HTTP/1.1, origin, absolute or asterisk form, no fragment);
 *   - 431 exactly when the head (from the first byte to the end of its
 *     empty line) is longer than SG_HTTP_MAX_HEAD and at least that many
 *     bytes have arrived; incomplete only below that many bytes;
 *   - complete: the method and the path are substrings of the request
 *     line (the path of "http://host" is "/"), the query follows the
 *     path's '?', the head ends with its empty line.
 * Properties of the listen address parser: accepted exactly when the
 * reference accepts it (":PORT", IPV4:PORT, [IPV6]:PORT, PORT all
 * digits up to 65535); an accepted address printed back (inet_ntop)
 * parses to the same bytes; a refusal is exit 2 naming the address.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "schemagate/http.h"

#define MAX_PAD 9000
#define ALL_PREFIXES_UP_TO 1024

/* ---- the reference request parser ---------------------------------------- */

struct line {
	size_t b, e;     /* the line without its end: [b, e) */
	size_t next;     /* past its LF */
};

/* The line at pos in buf[0, n); false when no LF ends it. A CR right
 * before the LF is part of the line end. */
static bool ref_line(const char *buf, size_t n, size_t pos, struct line *l)
{
	const char *lf = memchr(buf + pos, '\n', n - pos);
	if (!lf)
		return false;
	l->b = pos;
	l->e = (size_t)(lf - buf);
	if (l->e > l->b && buf[l->e - 1] == '\r')
		l->e--;
	l->next = (size_t)(lf - buf) + 1;
	return true;
}

static bool tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool has_cr(const char *buf, const struct line *l)
{
	return memchr(buf + l->b, '\r', l->e - l->b) != NULL;
}

/* Verdict and HTTP status: 0 incomplete, 200 complete, else the error. */
static int ref_parse(const char *buf, size_t len)
{
	size_t n = len < SG_HTTP_MAX_HEAD ? len : SG_HTTP_MAX_HEAD;
	int too_large = len >= SG_HTTP_MAX_HEAD ? 431 : 0;
	struct line l;
	size_t pos = 0;
	for (;;) {
		if (!ref_line(buf, n, pos, &l))
			return too_large;
		if (l.e > l.b)
			break;
		pos = l.next;
	}
	if (has_cr(buf, &l))
		return 400;
	/* METHOD SP TARGET SP VERSION */
	const char *s = buf + l.b;
	size_t ln = l.e - l.b;
	const char *sp1 = memchr(s, ' ', ln);
	if (!sp1)
		return 400;
	const char *sp2 = memchr(sp1 + 1, ' ', ln - (size_t)(sp1 + 1 - s));
	if (!sp2 || sp1 == s)
		return 400;
	for (const char *c = s; c < sp1; c++)
		if (!tchar((unsigned char)*c))
			return 400;
	const char *t = sp1 + 1;
	size_t tn = (size_t)(sp2 - t);
	if (tn == 0)
		return 400;
	for (size_t i = 0; i < tn; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f || t[i] == '#')
			return 400;
	bool origin = t[0] == '/';
	bool asterisk = tn == 1 && t[0] == '*';
	bool absolute = (tn > 7 && strncasecmp(t, "http://", 7) == 0) || (tn > 8 && strncasecmp(t, "https://", 8) == 0);
	if (!origin && !asterisk && !absolute)
		return 400;
	const char *v = sp2 + 1;
	size_t vn = ln - (size_t)(v - s);
	if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) || v[6] != '.' ||
	    !isdigit((unsigned char)v[7]))
		return 400;
	if (v[5] != '1')
		return 505;
	int hosts = 0;
	pos = l.next;
	for (;;) {
		if (!ref_line(buf, n, pos, &l))
			return too_large;
		if (has_cr(buf, &l))
			return 400;
		if (l.e == l.b)
			break;
		const char *h = buf + l.b;
		size_t hn = l.e - l.b;
		if (h[0] == ' ' || h[0] == '\t')
			return 400;
		const char *colon = memchr(h, ':', hn);
		if (!colon || colon == h)
			return 400;
		for (const char *c = h; c < colon; c++)
			if (!tchar((unsigned char)*c))
				return 400;
		for (const char *c = colon + 1; c < h + hn; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return 400;
		hosts += colon - h == 4 && strncasecmp(h, "host", 4) == 0;
		pos = l.next;
	}
	if (hosts > 1 || (hosts == 0 && v[7] != '0'))
		return 400;
	return 200;
}

/* Where the head ends (past the LF of its empty line), counting from the
 * first byte; SIZE_MAX when it does not end in buf. */
static size_t ref_head_end(const char *buf, size_t len)
{
	struct line l;
	size_t pos = 0;
	bool request_line = false;
	while (ref_line(buf, len, pos, &l)) {
		if (l.e > l.b || has_cr(buf, &l))
			request_line = true;
		else if (request_line)
			return l.next;
		pos = l.next;
	}
	return SIZE_MAX;
}

/* ---- the parser under test ------------------------------------------------- */

struct outcome {
	enum sg_http_parse_status st;
	int status;
	/* offsets into the buffer; SIZE_MAX for a path outside it ("/") */
	size_t method_at, method_len, path_at, path_len, query_at, query_len, head_len;
	int method, minor;
};

static size_t offset_in(const char *p, const char *buf, size_t len)
{
	return p && p >= buf && p < buf + len ? (size_t)(p - buf) : SIZE_MAX;
}

/* Parse a copy of exactly n bytes of data. */
static struct outcome parse_copy(const char *data, size_t n)
{
	char *copy = malloc(n ? n : 1);
	memcpy(copy, data, n);
	struct sg_http_request req;
	struct outcome o = {0};
	o.st = sg_http_parse_request(copy, n, &req);
	if (o.st == SG_HTTP_INVALID) {
		o.status = req.status;
		FUZZ_CHECK(req.error && req.error[0] && !strchr(req.error, '\n'), "an invalid request without a reason");
	} else if (o.st == SG_HTTP_COMPLETE) {
		o.status = 200;
		o.method = req.method;
		o.minor = req.minor_version;
		o.method_at = offset_in(req.method_text, copy, n);
		o.method_len = req.method_len;
		o.path_at = offset_in(req.path, copy, n);
		o.path_len = req.path_len;
		if (o.path_at == SIZE_MAX)
			FUZZ_CHECK(req.path_len == 1 && req.path[0] == '/', "the path points outside the request");
		else
			FUZZ_CHECK(o.path_at + o.path_len <= n, "the path runs past the request");
		o.query_at = req.query ? offset_in(req.query, copy, n) : SIZE_MAX;
		o.query_len = req.query_len;
		if (req.query)
			FUZZ_CHECK(o.query_at != SIZE_MAX && o.query_at + o.query_len <= n && copy[o.query_at - 1] == '?',
				   "the query is not what follows a '?' of the request");
		o.head_len = req.head_len;
		FUZZ_CHECK(o.method_at != SIZE_MAX && o.method_at + o.method_len <= o.head_len,
			   "the method is not a substring of the head");
	}
	free(copy);
	return o;
}

static bool same_outcome(const struct outcome *a, const struct outcome *b)
{
	return a->st == b->st && a->status == b->status && a->method_at == b->method_at &&
	       a->method_len == b->method_len && a->path_at == b->path_at && a->path_len == b->path_len &&
	       a->query_at == b->query_at && a->query_len == b->query_len && a->head_len == b->head_len &&
	       a->method == b->method && a->minor == b->minor;
}

static void check_prefix(const char *buf, size_t len, size_t k, const struct outcome *whole)
{
	if (k > len)
		return;
	struct outcome o = parse_copy(buf, k);
	if (o.st == SG_HTTP_INCOMPLETE)
		return;
	if (!same_outcome(&o, whole))
		fuzz_dump("request", buf, len);
	FUZZ_CHECK(same_outcome(&o, whole), "the first %zu of %zu bytes parse as %d/%d, the whole as %d/%d", k, len,
		   o.st, o.status, whole->st, whole->status);
}

static void check_request(const char *buf, size_t len)
{
	struct outcome whole = parse_copy(buf, len);
	int want = ref_parse(buf, len);
	if (whole.status != want)
		fuzz_dump("request", buf, len);
	FUZZ_CHECK(whole.status == want, "status %d, the reference says %d", whole.status, want);

	size_t head = ref_head_end(buf, len);
	if (whole.status == 431 || (head != SIZE_MAX && head > SG_HTTP_MAX_HEAD) ||
	    (head == SIZE_MAX && len >= SG_HTTP_MAX_HEAD))
		FUZZ_CHECK(whole.st == SG_HTTP_INVALID && len >= SG_HTTP_MAX_HEAD,
			   "a head of %zu bytes (%zu arrived): %d/%d", head, len, whole.st, whole.status);
	if (head != SIZE_MAX && head <= SG_HTTP_MAX_HEAD)
		FUZZ_CHECK(whole.status != 431, "431 for a head of %zu bytes", head);
	if (whole.st == SG_HTTP_INCOMPLETE)
		FUZZ_CHECK(len < SG_HTTP_MAX_HEAD, "still incomplete after %zu bytes", len);
	if (whole.st == SG_HTTP_COMPLETE) {
		FUZZ_CHECK(whole.head_len == head, "head_len %zu, the head ends at %zu", whole.head_len, head);
		FUZZ_CHECK(buf[head - 1] == '\n', "the head does not end with a line end");
		static const char *const methods[] = {"GET", "HEAD"};
		bool named = whole.method != SG_HTTP_OTHER;
		FUZZ_CHECK(!named || (whole.method_len == strlen(methods[whole.method]) &&
				      memcmp(buf + whole.method_at, methods[whole.method], whole.method_len) == 0),
			   "method %d is not what the request line says", whole.method);
		if (whole.path_at != SIZE_MAX)
			for (size_t i = 0; i < whole.path_len; i++)
				FUZZ_CHECK(buf[whole.path_at + i] != '?' && buf[whole.path_at + i] != ' ' &&
					   whole.path_at + i < head, "the path holds '?' or a blank or runs past the head");
	}

	/* every split: each prefix is incomplete or the whole */
	if (len <= ALL_PREFIXES_UP_TO) {
		for (size_t k = 0; k < len; k++)
			check_prefix(buf, len, k, &whole);
		return;
	}
	for (size_t k = SG_HTTP_MAX_HEAD - 3; k <= SG_HTTP_MAX_HEAD + 3; k++)
		check_prefix(buf, len, k, &whole);
	for (const char *lf = memchr(buf, '\n', len); lf; lf = memchr(lf + 1, '\n', len - (size_t)(lf + 1 - buf))) {
		size_t at = (size_t)(lf - buf);
		for (size_t k = at > 2 ? at - 2 : 0; k <= at + 2; k++)
			check_prefix(buf, len, k, &whole);
		if (lf + 1 >= buf + len)
			break;
	}
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len && i < 64; i++)
		h = (h ^ (unsigned char)buf[i]) * 16777619u;
	for (int i = 0; i < 64; i++) {
		h = h * 1103515245u + 12345u;
		check_prefix(buf, len, h % len, &whole);
	}
}

/* ---- listen addresses ------------------------------------------------------ */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* The reference: accepted, and the port. */
static bool ref_address(const char *text, unsigned long *port)
{
	const char *colon = strrchr(text, ':');
	if (!colon || !all_digits(colon + 1))
		return false;
	const char *p = colon + 1;
	while (*p == '0' && p[1])
		p++;
	if (strlen(p) > 5 || (*port = strtoul(p, NULL, 10)) > 65535)
		return false;
	size_t hn = (size_t)(colon - text);
	char *host = strndup(text, hn);
	bool ok;
	unsigned char addr[16];
	if (hn == 0)
		ok = true;
	else if (host[0] == '[')
		ok = hn >= 3 && host[hn - 1] == ']' && (host[hn - 1] = '\0', inet_pton(AF_INET6, host + 1, addr) == 1);
	else
		ok = inet_pton(AF_INET, host, addr) == 1;
	free(host);
	return ok;
}

static void check_address(const char *text)
{
	struct sockaddr_storage a;
	struct sg_error err = {0};
	int rc = sg_http_parse_address(text, &a, &err);
	unsigned long port = 0;
	bool want = ref_address(text, &port);
	FUZZ_CHECK((rc == 0) == want, "'%s': %s, the reference %s", text, rc == 0 ? "accepted" : err.msg,
		   want ? "accepts it" : "refuses it");
	if (rc != 0) {
		FUZZ_CHECK(err.outcome == SG_OUTCOME_USAGE && strncmp(err.msg, "listen address '", 16) == 0,
			   "refused with outcome %d: %s", (int)err.outcome, err.msg);
		return;
	}
	char host[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 16];
	if (a.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a;
		FUZZ_CHECK(ntohs(in->sin_port) == port, "port %u, want %lu", ntohs(in->sin_port), port);
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(again, sizeof(again), "%s:%lu", host, port);
	} else {
		FUZZ_CHECK(a.ss_family == AF_INET6, "family %d", a.ss_family);
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a;
		FUZZ_CHECK(ntohs(in6->sin6_port) == port, "port %u, want %lu", ntohs(in6->sin6_port), port);
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(again, sizeof(again), "[%s]:%lu", host, port);
	}
	struct sockaddr_storage b;
	FUZZ_CHECK(sg_http_parse_address(again, &b, &err) == 0 && memcmp(&a, &b, sizeof(a)) == 0,
		   "'%s' printed back as '%s' does not parse to the same address", text, again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		char *text = strndup((const char *)data + 1, size - 1);
		check_address(text);
		free(text);
		return 0;
	}
	if (size < 3)
		return 0;
	size_t pad = (size_t)(data[1] | data[2] << 8) % MAX_PAD;
	const char *req = (const char *)data + 3;
	size_t n = size - 3;
	char *buf = malloc(n + pad + 16);
	size_t len = 0;
	if (pad) {
		const char *lf = memchr(req, '\n', n);
		size_t first = lf ? (size_t)(lf - req) + 1 : n;
		memcpy(buf, req, first);
		len = first;
		memcpy(buf + len, "X-Pad: ", 7);
		len += 7;
		memset(buf + len, 'a', pad);
		len += pad;
		memcpy(buf + len, "\r\n", 2);
		len += 2;
		memcpy(buf + len, req + first, n - first);
		len += n - first;
	} else {
		memcpy(buf, req, n);
		len = n;
	}
	check_request(buf, len);
	free(buf);
	return 0;
}
