/*
 * support.c - see fuzz.h. Built into every fuzz target.
 *
 * The oracles here are deliberately written from the standards (RFC 3629
 * table 3-7 for UTF-8, RFC 8259's grammar for JSON), not from the code in
 * src/ they check, so one mistake cannot hide in both.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- input ---------------------------------------------------------------- */

void fuzz_fields_split(struct fuzz_fields *f, const uint8_t *data, size_t size, size_t max)
{
	f->buf = malloc(size + 1);
	memcpy(f->buf, data, size);
	f->buf[size] = '\0';
	f->field = calloc(max ? max : 1, sizeof(char *));
	f->n = 0;
	size_t start = 0;
	for (size_t i = 0; i <= size && f->n < max; i++) {
		if (i < size && f->buf[i] != '\0')
			continue;
		if (f->n + 1 == max && i < size) {
			/* the last field takes the rest, NULs turned into nothing
			 * it could mistake for a terminator: they become '\1' */
			for (size_t j = i; j < size; j++)
				if (f->buf[j] == '\0')
					f->buf[j] = '\1';
			f->field[f->n++] = f->buf + start;
			break;
		}
		f->buf[i] = '\0';
		f->field[f->n++] = f->buf + start;
		start = i + 1;
	}
}

const char *fuzz_field(const struct fuzz_fields *f, size_t i)
{
	return i < f->n ? f->field[i] : "";
}

void fuzz_fields_free(struct fuzz_fields *f)
{
	free(f->buf);
	free(f->field);
	memset(f, 0, sizeof(*f));
}

/* ---- the real stderr ------------------------------------------------------ */

static int real_stderr = -1;
static int capture_fd = -1;
static int memfile_fd = -1;
static char memfile_name[64];

static void setup(void)
{
	if (real_stderr >= 0)
		return;
	real_stderr = fcntl(2, F_DUPFD_CLOEXEC, 100);
	if (real_stderr < 0)
		abort();
	/* ASan/UBSan reports must not vanish into a capture buffer */
	__sanitizer_set_report_fd((void *)(intptr_t)real_stderr);
	capture_fd = memfd_create("fuzz-stderr", MFD_CLOEXEC);
	memfile_fd = memfd_create("fuzz-file", MFD_CLOEXEC);
	if (capture_fd < 0 || memfile_fd < 0)
		abort();
	snprintf(memfile_name, sizeof(memfile_name), "/proc/self/fd/%d", memfile_fd);
}

static void write_real(const char *s, size_t n)
{
	setup();
	while (n > 0) {
		ssize_t w = write(real_stderr, s, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

void fuzz_dump(const char *label, const char *s, size_t n)
{
	size_t cap = 4 * n + strlen(label) + 8;
	char *out = malloc(cap);
	size_t o = (size_t)snprintf(out, cap, "%s: ", label);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		}
	}
	out[o++] = '\n';
	write_real(out, o);
	free(out);
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	char msg[2048];
	int n = snprintf(msg, sizeof(msg), "%s:%d: property broken: %s: ", file, line, cond);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(msg))
		n += vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg) - 1)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	write_real(msg, (size_t)n);
	abort();
}

bool fuzz_contains(const char *hay, size_t n, const char *needle)
{
	return *needle && memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void append(char **out, size_t *o, const char *s, size_t n)
{
	memcpy(*out + *o, s, n);
	*o += n;
}

bool fuzz_url_password_span(const char *text, size_t *at, size_t *len)
{
	const char *sep = strstr(text, "://");
	if (!sep)
		return false;
	const char *start = sep + 3;
	const char *auth_end = start + strcspn(start, "/?");
	const char *end = NULL;
	for (const char *c = start; c < auth_end; c++)
		if (*c == '@')
			end = c;
	const char *colon = end ? memchr(start, ':', (size_t)(end - start)) : NULL;
	if (!colon)
		return false;
	*at = (size_t)(colon + 1 - text);
	*len = (size_t)(end - colon - 1);
	return true;
}

char *fuzz_mask_url_passwords(const char *text)
{
	/* "***" replaces at least one byte, at most twice: room enough */
	char *out = malloc(strlen(text) + 8);
	size_t o = 0;
	const char *p = text;
	const char *sep = strstr(text, "://");
	if (sep) {
		size_t at, len;
		if (fuzz_url_password_span(text, &at, &len)) {
			append(&out, &o, p, at);
			append(&out, &o, "***", 3);
			p = text + at + len;
		}
		const char *auth_end = sep + 3 + strcspn(sep + 3, "/?");
		for (const char *q = strchr(auth_end, '?'); q;) {
			const char *seg = q + 1;
			size_t seglen = strcspn(seg, "&");
			const char *eq = memchr(seg, '=', seglen);
			if (eq) {
				char *key = strndup(seg, (size_t)(eq - seg));
				if (strcasestr(key, "password")) {
					out = realloc(out, o + (size_t)(eq + 1 - p) + strlen(eq) + 8);
					append(&out, &o, p, (size_t)(eq + 1 - p));
					append(&out, &o, "***", 3);
					p = seg + seglen;
				}
				free(key);
			}
			q = seg[seglen] ? seg + seglen : NULL;
		}
	}
	out = realloc(out, o + strlen(p) + 1);
	strcpy(out + o, p);
	return out;
}

/* ---- capturing ------------------------------------------------------------ */

static char *take_all(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		abort();
	char *buf = malloc((size_t)size + 1);
	size_t got = 0;
	while (got < (size_t)size) {
		ssize_t r = pread(fd, buf + got, (size_t)size - got, (off_t)got);
		if (r <= 0)
			abort();
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	if (len)
		*len = got;
	return buf;
}

void fuzz_stderr_begin(void)
{
	setup();
	fflush(stderr);
	if (dup2(capture_fd, 2) < 0)
		abort();
}

char *fuzz_stderr_end(size_t *len)
{
	fflush(stderr);
	if (dup2(real_stderr, 2) < 0)
		abort();
	return take_all(capture_fd, len);
}

const char *fuzz_memfile_path(void)
{
	setup();
	return memfile_name;
}

char *fuzz_memfile_take(size_t *len)
{
	setup();
	return take_all(memfile_fd, len);
}

/* ---- UTF-8 (RFC 3629, Unicode table 3-7) ---------------------------------- */

/* Length of the well-formed sequence at s (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;
	if (c <= 0x7f)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c == 0xe0)
		len = 3, lo = 0xa0;
	else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
		len = 3;
	else if (c == 0xed)
		len = 3, hi = 0x9f;   /* no UTF-16 surrogates */
	else if (c == 0xf0)
		len = 4, lo = 0x90;
	else if (c >= 0xf1 && c <= 0xf3)
		len = 4;
	else if (c == 0xf4)
		len = 4, hi = 0x8f;   /* nothing past U+10FFFF */
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

size_t fuzz_utf8_seq(const char *s, size_t n)
{
	return n ? utf8_seq((const unsigned char *)s, n) : 0;
}

bool fuzz_utf8_valid(const char *s, size_t n, size_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			if (bad)
				*bad = i;
			return false;
		}
		i += len;
	}
	return true;
}

/* ---- JSON (RFC 8259) ------------------------------------------------------ */

struct reader {
	const char *s;
	size_t n, i;
	const char *why;
	char whybuf[128];
	int depth;
};

static bool problem(struct reader *r, const char *what)
{
	if (!r->why) {
		snprintf(r->whybuf, sizeof(r->whybuf), "byte %zu: %s", r->i, what);
		r->why = r->whybuf;
	}
	return false;
}

static void skip_ws(struct reader *r)
{
	while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
		r->i++;
}

static int hex4(struct reader *r)
{
	if (r->n - r->i < 4)
		return -1;
	int v = 0;
	for (int k = 0; k < 4; k++) {
		char c = r->s[r->i + (size_t)k];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	r->i += 4;
	return v;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | (cp >> 6));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xe0 | (cp >> 12));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xf0 | (cp >> 18));
		out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* A string at r->i (the opening quote); decoded into *out when out != NULL. */
static bool read_string(struct reader *r, char **out, size_t *outlen)
{
	r->i++;   /* the quote */
	/* a decoded string is never longer than its escaped form */
	char *buf = out ? malloc(r->n - r->i + 1) : NULL;
	size_t o = 0;
	for (;;) {
		if (r->i >= r->n) {
			free(buf);
			return problem(r, "unterminated string");
		}
		unsigned char c = (unsigned char)r->s[r->i];
		if (c == '"') {
			r->i++;
			break;
		}
		if (c < 0x20) {
			free(buf);
			return problem(r, "raw control character in a string");
		}
		if (c != '\\') {
			size_t len = utf8_seq((const unsigned char *)r->s + r->i, r->n - r->i);
			if (len == 0) {
				free(buf);
				return problem(r, "invalid UTF-8 in a string");
			}
			if (buf)
				memcpy(buf + o, r->s + r->i, len);
			o += len;
			r->i += len;
			continue;
		}
		r->i++;
		if (r->i >= r->n) {
			free(buf);
			return problem(r, "unterminated escape");
		}
		char e = r->s[r->i++];
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e != '\0' && simple) {
			static const char decoded[] = "\"\\/\b\f\n\r\t";
			if (buf)
				buf[o] = decoded[simple - "\"\\/bfnrt"];
			o++;
			continue;
		}
		if (e != 'u') {
			free(buf);
			return problem(r, "unknown escape");
		}
		int cp = hex4(r);
		if (cp < 0) {
			free(buf);
			return problem(r, "bad \\u escape");
		}
		if (cp >= 0xdc00 && cp <= 0xdfff) {
			free(buf);
			return problem(r, "unpaired low surrogate");
		}
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (r->n - r->i < 6 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u') {
				free(buf);
				return problem(r, "unpaired high surrogate");
			}
			r->i += 2;
			int lo = hex4(r);
			if (lo < 0xdc00 || lo > 0xdfff) {
				free(buf);
				return problem(r, "high surrogate without a low one");
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (buf) {
			put_utf8(buf, &o, (uint32_t)cp);
		} else {
			o += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		}
	}
	if (out) {
		buf[o] = '\0';
		*out = buf;
		*outlen = o;
	}
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool read_number(struct reader *r)
{
	if (r->s[r->i] == '-')
		r->i++;
	if (r->i >= r->n || !is_digit(r->s[r->i]))
		return problem(r, "bad number");
	if (r->s[r->i] == '0')
		r->i++;
	else
		while (r->i < r->n && is_digit(r->s[r->i]))
			r->i++;
	if (r->i < r->n && r->s[r->i] == '.') {
		r->i++;
		if (r->i >= r->n || !is_digit(r->s[r->i]))
			return problem(r, "bad fraction");
		while (r->i < r->n && is_digit(r->s[r->i]))
			r->i++;
	}
	if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
		r->i++;
		if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-'))
			r->i++;
		if (r->i >= r->n || !is_digit(r->s[r->i]))
			return problem(r, "bad exponent");
		while (r->i < r->n && is_digit(r->s[r->i]))
			r->i++;
	}
	return true;
}

static bool read_value(struct reader *r, struct fuzz_json_object *obj);

static bool read_literal(struct reader *r, const char *word)
{
	size_t len = strlen(word);
	if (r->n - r->i < len || memcmp(r->s + r->i, word, len) != 0)
		return problem(r, "unexpected character");
	r->i += len;
	return true;
}

/* An object or array at r->i; members of an object go to obj when not NULL. */
static bool read_container(struct reader *r, struct fuzz_json_object *obj)
{
	char close = r->s[r->i] == '{' ? '}' : ']';
	if (++r->depth > 64)
		return problem(r, "nested too deep");
	r->i++;
	skip_ws(r);
	if (r->i < r->n && r->s[r->i] == close) {
		r->i++;
		r->depth--;
		return true;
	}
	for (;;) {
		struct fuzz_json_member m = {0};
		if (close == '}') {
			if (r->i >= r->n || r->s[r->i] != '"')
				return problem(r, "expected a member name");
			size_t klen;
			if (!read_string(r, obj ? &m.key : NULL, &klen))
				return false;
			skip_ws(r);
			if (r->i >= r->n || r->s[r->i] != ':') {
				free(m.key);
				return problem(r, "expected ':'");
			}
			r->i++;
			skip_ws(r);
		}
		size_t vstart = r->i;
		bool is_string = r->i < r->n && r->s[r->i] == '"';
		if (obj && close == '}' && is_string) {
			if (!read_string(r, &m.value, &m.value_len)) {
				free(m.key);
				return false;
			}
			m.is_string = true;
		} else if (!read_value(r, NULL)) {
			free(m.key);
			return false;
		} else if (obj && close == '}' && r->s[vstart] != '{' && r->s[vstart] != '[') {
			m.value = strndup(r->s + vstart, r->i - vstart);
			m.value_len = r->i - vstart;
		}
		if (obj && close == '}') {
			obj->member = realloc(obj->member, (obj->n + 1) * sizeof(*obj->member));
			obj->member[obj->n++] = m;
		}
		skip_ws(r);
		if (r->i < r->n && r->s[r->i] == ',') {
			r->i++;
			skip_ws(r);
			continue;
		}
		if (r->i < r->n && r->s[r->i] == close) {
			r->i++;
			r->depth--;
			return true;
		}
		return problem(r, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool read_value(struct reader *r, struct fuzz_json_object *obj)
{
	if (r->i >= r->n)
		return problem(r, "expected a value");
	switch (r->s[r->i]) {
	case '{':
		return read_container(r, obj);
	case '[':
		return read_container(r, NULL);
	case '"':
		return read_string(r, NULL, NULL);
	case 't':
		return read_literal(r, "true");
	case 'f':
		return read_literal(r, "false");
	case 'n':
		return read_literal(r, "null");
	default:
		return read_number(r);
	}
}

const char *fuzz_json_check(const char *text, size_t n, struct fuzz_json_object *obj)
{
	static char why[128];
	struct reader r = { .s = text, .n = n };
	if (obj)
		memset(obj, 0, sizeof(*obj));
	skip_ws(&r);
	bool ok = read_value(&r, obj);
	if (ok) {
		skip_ws(&r);
		if (r.i != r.n)
			ok = problem(&r, "text after the value");
	}
	if (ok)
		return NULL;
	snprintf(why, sizeof(why), "%s", r.why);
	if (obj)
		fuzz_json_free(obj);
	return why;
}

const struct fuzz_json_member *fuzz_json_get(const struct fuzz_json_object *obj, const char *key)
{
	for (size_t i = 0; i < obj->n; i++)
		if (obj->member[i].key && strcmp(obj->member[i].key, key) == 0)
			return &obj->member[i];
	return NULL;
}

void fuzz_json_free(struct fuzz_json_object *obj)
{
	for (size_t i = 0; i < obj->n; i++) {
		free(obj->member[i].key);
		free(obj->member[i].value);
	}
	free(obj->member);
	memset(obj, 0, sizeof(*obj));
}
