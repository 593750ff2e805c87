/*
 * fuzz_log.c - the log writer (src/log.c) and the JSON string writer of
 * machine output (sg_buf_json_string, src/common.c).
 *
 * Input: fields separated by NUL bytes.
 *   0   control bytes: format and levels, which fields exist, the
 *       duration and wait in milliseconds;
 *   1   event, 2 message, 3 version, 4 name, 5 holder, 6 error: any bytes;
 *   7   a secret to register, if not empty.
 *
 * Properties:
 *   - below the log level nothing is written; otherwise exactly one line;
 *   - JSON: the line is valid UTF-8 and exactly one JSON object (a strict
 *     RFC 8259 reader, tests/fuzz/support.c) with no key twice: ts (UTC,
 *     millisecond precision), level (the one logged), event, instance,
 *     msg, and version, name, holder, error, duration_ms, waited_ms
 *     exactly when given; every string decodes to the redacted value
 *     with each byte that is not UTF-8 replaced by U+FFFD, and numbers
 *     are the values given;
 *   - text: no control byte but the final newline, the timestamp first,
 *     then the level;
 *   - a registered secret shows in no line (as searched in outputs.c:
 *     raw text, decoded JSON values), unless the line would show it
 *     with every copy of it masked (made of other bytes: see
 *     coincidence());
 *   - sg_buf_json_string writes one valid JSON string, in valid UTF-8,
 *     that decodes to the input with bytes that are not UTF-8 replaced.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "outputs.h"
#include "schemagate/common.h"
#include "schemagate/log.h"

#define MIN_SECRET_LEN 3


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_outputs_init();
	return 0;
}

/* s with every byte that does not start a UTF-8 sequence replaced by
 * U+FFFD, one replacement per byte. Malloc'd. */
static char *sanitize(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t seq = fuzz_utf8_seq(s + i, n - i);
		if (seq) {
			memcpy(out + o, s + i, seq);
			o += seq;
			i += seq;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

static char *redacted(const char *s)
{
	size_t cap = 3 * strlen(s) + 64;
	char *r = malloc(cap);
	sg_redact(s, r, cap);
	return r;
}

static void expect_string(const struct fuzz_json_object *obj, const char *key, const char *given, bool redact,
			  const char *line, size_t len)
{
	const struct fuzz_json_member *m = fuzz_json_get(obj, key);
	if (!given) {
		FUZZ_CHECK(m == NULL, "\"%s\" present though not given", key);
		return;
	}
	FUZZ_CHECK(m && m->is_string, "\"%s\" missing or not a string", key);
	char *r = redact ? redacted(given) : strdup(given);
	size_t want_len;
	char *want = sanitize(r, &want_len);
	if (m->value_len != want_len || memcmp(m->value, want, want_len) != 0) {
		fuzz_dump("line", line, len);
		fuzz_dump("given", given, strlen(given));
		fuzz_dump("expected", want, want_len);
		fuzz_dump("decoded", m->value, m->value_len);
		FUZZ_CHECK(false, "\"%s\" does not decode to the redacted value", key);
	}
	free(want);
	free(r);
}

static void expect_number(const struct fuzz_json_object *obj, const char *key, int64_t value)
{
	const struct fuzz_json_member *m = fuzz_json_get(obj, key);
	if (value < 0) {
		FUZZ_CHECK(m == NULL, "\"%s\" present for a negative value", key);
		return;
	}
	char want[32];
	snprintf(want, sizeof(want), "%" PRId64, value);
	FUZZ_CHECK(m && !m->is_string && strcmp(m->value, want) == 0, "\"%s\" is %s, not %s", key,
		   m && m->value ? m->value : "(none)", want);
}

static bool is_timestamp(const char *s, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (n != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return false;
	return true;
}

static const char *const level_names[] = { "debug", "info", "warn", "error" };

static void check_json(const char *line, size_t len, enum sg_log_level level, const char *event,
		       const char *msg, const struct sg_log_fields *f)
{
	size_t bad;
	if (!fuzz_utf8_valid(line, len, &bad)) {
		fuzz_dump("line", line, len);
		FUZZ_CHECK(false, "the JSON line is not UTF-8 at byte %zu", bad);
	}
	struct fuzz_json_object obj;
	const char *why = fuzz_json_check(line, len, &obj);
	if (why)
		fuzz_dump("line", line, len);
	FUZZ_CHECK(why == NULL, "not one JSON value: %s", why);
	FUZZ_CHECK(line[0] == '{', "not an object");
	static const char *const known[] = { "ts",   "level",  "event", "instance", "msg",	   "version",
					     "name", "holder", "error", "duration_ms", "waited_ms" };
	for (size_t i = 0; i < obj.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			ok |= strcmp(obj.member[i].key, known[k]) == 0;
		FUZZ_CHECK(ok, "unknown key \"%s\"", obj.member[i].key);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(obj.member[i].key, obj.member[j].key) != 0, "key \"%s\" twice",
				   obj.member[i].key);
	}
	const struct fuzz_json_member *ts = fuzz_json_get(&obj, "ts");
	FUZZ_CHECK(ts && ts->is_string && is_timestamp(ts->value, ts->value_len), "bad ts");
	const struct fuzz_json_member *lv = fuzz_json_get(&obj, "level");
	FUZZ_CHECK(lv && lv->is_string && strcmp(lv->value, level_names[level]) == 0, "level is not %s",
		   level_names[level]);
	expect_string(&obj, "event", event ? event : "log", true, line, len);
	expect_string(&obj, "instance", sg_instance_id(), true, line, len);
	expect_string(&obj, "msg", msg, true, line, len);
	expect_string(&obj, "version", f->version, true, line, len);
	expect_string(&obj, "name", f->name, true, line, len);
	expect_string(&obj, "holder", f->holder, true, line, len);
	expect_string(&obj, "error", f->error, true, line, len);
	expect_number(&obj, "duration_ms", f->duration_ms);
	expect_number(&obj, "waited_ms", f->waited_ms);
	fuzz_json_free(&obj);
}

static void check_text(const char *line, size_t len, enum sg_log_level level)
{
	for (size_t i = 0; i + 1 < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			fuzz_dump("line", line, len);
		FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control byte 0x%02x at %zu in a text line", c, i);
	}
	FUZZ_CHECK(len >= 30 && is_timestamp(line, 24) && line[24] == ' ', "no timestamp first");
	char upper[8];
	snprintf(upper, sizeof(upper), "%s", level_names[level]);
	for (char *c = upper; *c; c++)
		*c = (char)(*c - 'a' + 'A');
	FUZZ_CHECK(strncmp(line + 25, upper, strlen(upper)) == 0, "level is not %s", upper);
}

static int64_t read_i64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

static void check_json_string_writer(const char *s)
{
	struct sg_buf b = {0};
	sg_buf_json_string(&b, s);
	size_t bad;
	if (!fuzz_utf8_valid(b.data, b.len, &bad)) {
		fuzz_dump("written", b.data, b.len);
		FUZZ_CHECK(false, "sg_buf_json_string wrote bytes that are not UTF-8 at %zu", bad);
	}
	/* as the one member of an object, to reuse the decoding reader */
	struct sg_buf doc = {0};
	sg_buf_puts(&doc, "{\"k\":");
	sg_buf_append(&doc, b.data, b.len);
	sg_buf_puts(&doc, "}");
	struct fuzz_json_object obj;
	const char *why = fuzz_json_check(doc.data, doc.len, &obj);
	if (why)
		fuzz_dump("written", b.data, b.len);
	FUZZ_CHECK(why == NULL, "sg_buf_json_string wrote invalid JSON: %s", why);
	size_t want_len;
	char *want = sanitize(s, &want_len);
	const struct fuzz_json_member *m = fuzz_json_get(&obj, "k");
	FUZZ_CHECK(m && m->is_string && m->value_len == want_len && memcmp(m->value, want, want_len) == 0,
		   "sg_buf_json_string does not decode back");
	free(want);
	fuzz_json_free(&obj);
	sg_buf_free(&doc);
	sg_buf_free(&b);
}

/*
 * Do the outputs show secret even once every copy of it in value is
 * masked? Then what they show is made of other bytes, not the secret:
 * control bytes print as spaces and a line ends in a newline, so masking
 * "a b\n" in "a b\na\vb" leaves "***a\vb", printed "***a b\n". The
 * secret is registered on entry and on return.
 */
static bool coincidence(const char *value, const char *secret)
{
	size_t size = 4 * strlen(value) + 64;
	char *masked = malloc(size);
	sg_redact(value, masked, size);
	sg_log_forget_secrets();
	struct fuzz_outputs o;
	fuzz_outputs_collect(&o, masked, NULL);
	bool shown = fuzz_outputs_contain(&o, secret);
	fuzz_outputs_free(&o);
	sg_log_add_secret(secret);
	free(masked);
	return shown;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	fuzz_fields_split(&f, data, size, 8);
	unsigned char ctl[20] = { 0 };
	const char *c = fuzz_field(&f, 0);
	memcpy(ctl, c, strlen(c) < sizeof(ctl) ? strlen(c) : sizeof(ctl));

	enum sg_log_format format = (ctl[0] & 1) ? SG_LOG_JSON : SG_LOG_TEXT;
	enum sg_log_level level = (enum sg_log_level)((ctl[0] >> 1) % 4);
	enum sg_log_level threshold = (enum sg_log_level)((ctl[0] >> 3) % 5);
	unsigned present = ctl[1];
	const char *event = (present & 1) ? fuzz_field(&f, 1) : NULL;
	const char *msg = fuzz_field(&f, 2);
	struct sg_log_fields fields = {
		.version = (present & 2) ? fuzz_field(&f, 3) : NULL,
		.name = (present & 4) ? fuzz_field(&f, 4) : NULL,
		.holder = (present & 8) ? fuzz_field(&f, 5) : NULL,
		.error = (present & 16) ? fuzz_field(&f, 6) : NULL,
		.duration_ms = (present & 32) ? read_i64(ctl + 2) : -1,
		.waited_ms = (present & 64) ? read_i64(ctl + 10) : -1,
	};
	const char *secret = fuzz_field(&f, 7);

	sg_log_forget_secrets();
	struct fuzz_outputs skeleton;
	fuzz_outputs_collect(&skeleton, "", NULL);
	if (*secret)
		sg_log_add_secret(secret);

	sg_log_init(format, threshold);
	fuzz_stderr_begin();
	sg_log(level, event, (present & 128) ? SG_LOG_NOFIELDS : &fields, "%s", msg);
	size_t len;
	char *line = fuzz_stderr_end(&len);
	if (level < threshold || threshold == SG_LOG_QUIET) {
		FUZZ_CHECK(len == 0, "a %s line was written below the %s threshold", level_names[level],
			   threshold == SG_LOG_QUIET ? "quiet" : level_names[threshold]);
	} else {
		FUZZ_CHECK(len > 0 && line[len - 1] == '\n' && !memchr(line, '\n', len - 1), "not exactly one line");
		static const struct sg_log_fields none = { .duration_ms = -1, .waited_ms = -1 };
		if (format == SG_LOG_JSON)
			check_json(line, len - 1, level, event, msg, (present & 128) ? &none : &fields);
		else
			check_text(line, len - 1, level);
	}
	free(line);

	/* the registered secret, in everything these values can reach */
	if (strlen(secret) >= MIN_SECRET_LEN && !strchr(secret, '*') && !fuzz_outputs_contain(&skeleton, secret)) {
		const char *values[] = { event, msg, fields.version, fields.name, fields.holder, fields.error };
		for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
			if (!values[i] || coincidence(values[i], secret))
				continue;
			struct fuzz_outputs o;
			fuzz_outputs_collect(&o, values[i], NULL);
			fuzz_outputs_assert_hidden(&o, secret, "registered secret", values[i]);
			fuzz_outputs_free(&o);
		}
	}
	fuzz_outputs_free(&skeleton);

	for (size_t i = 1; i < 7; i++)
		check_json_string_writer(fuzz_field(&f, i));
	sg_log_forget_secrets();
	fuzz_fields_free(&f);
	return 0;
}
