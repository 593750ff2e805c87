/*
 * outputs.c - see outputs.h.
 */
#include "outputs.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "schemagate/log.h"

/* "2026-11-21T13:30:52.123Z" */
#define TS_LEN 24

void fuzz_outputs_init(void)
{
	/* quotes, a backslash and a byte that is not UTF-8: the instance
	 * goes through the same escaping as every other value */
	setenv("POD_NAME", "fuzz-pod\"\\\xff", 1);
}

static void add(struct fuzz_outputs *o, const char *what, char *text, size_t len)
{
	FUZZ_CHECK(o->n < FUZZ_MAX_OUTPUTS, "too many outputs");
	o->is_json[o->n] = strcmp(what, "decoded JSON value") == 0;
	o->what[o->n] = what;
	o->text[o->n] = text;
	o->len[o->n] = len;
	o->n++;
}

/* Replace the timestamp at p with a fixed one (it must look like one). */
static void blank_timestamp(char *p, size_t avail)
{
	FUZZ_CHECK(avail >= TS_LEN && p[4] == '-' && p[10] == 'T' && p[TS_LEN - 1] == 'Z',
		   "a log line does not start with its timestamp");
	memcpy(p, "0000-00-00T00:00:00.000Z", TS_LEN);
}

static char *log_line(enum sg_log_format format, const char *text, const char *redacted_url, size_t *len)
{
	sg_log_init(format, SG_LOG_DEBUG);
	struct sg_log_fields f = {
		.error = text,
		.holder = redacted_url ? redacted_url : text,
		.duration_ms = -1,
		.waited_ms = -1,
	};
	fuzz_stderr_begin();
	sg_log(SG_LOG_ERROR, "connect", &f, "connecting to %s", text);
	char *line = fuzz_stderr_end(len);
	FUZZ_CHECK(*len > 0 && line[*len - 1] == '\n' && memchr(line, '\n', *len - 1) == NULL,
		   "a log line is not exactly one line");
	if (format == SG_LOG_TEXT)
		blank_timestamp(line, *len);
	else if (*len > 8 && strncmp(line, "{\"ts\":\"", 7) == 0)
		blank_timestamp(line + 7, *len - 7);
	return line;
}

void fuzz_outputs_collect(struct fuzz_outputs *o, const char *text, const char *redacted_url)
{
	memset(o, 0, sizeof(*o));
	size_t n = strlen(text) + (redacted_url ? strlen(redacted_url) : 0);
	/* a mask "***" replaces at least one byte: at most three times longer */
	size_t cap = 3 * n + 64;
	char *r = malloc(cap);
	sg_redact(text, r, cap);
	add(o, "sg_redact", r, strlen(r));
	if (redacted_url) {
		r = malloc(cap);
		sg_redact(redacted_url, r, cap);
		add(o, "sg_redact(redacted URL)", r, strlen(r));
		add(o, "redacted URL", strdup(redacted_url), strlen(redacted_url));
	}

	size_t len;
	char *line = log_line(SG_LOG_TEXT, text, redacted_url, &len);
	add(o, "text log line", line, len);

	line = log_line(SG_LOG_JSON, text, redacted_url, &len);
	struct fuzz_json_object obj;
	const char *why = fuzz_json_check(line, len, &obj);
	if (why)
		fuzz_dump("json line", line, len);
	FUZZ_CHECK(why == NULL, "the JSON log line is not valid JSON: %s", why);
	/* search the decoded values, not the line: escaping could hide a
	 * secret ("a\"b") or spell one ("\ufffd" + "ie" holds "die") */
	free(line);
	for (size_t i = 0; i < obj.n; i++) {
		if (!obj.member[i].is_string || strcmp(obj.member[i].key, "ts") == 0)
			continue;
		add(o, "decoded JSON value", obj.member[i].value, obj.member[i].value_len);
		obj.member[i].value = NULL;
	}
	fuzz_json_free(&obj);

	sg_write_termination_log(fuzz_memfile_path(), text);
	line = fuzz_memfile_take(&len);
	add(o, "termination log", line, len);
}

bool fuzz_outputs_contain(const struct fuzz_outputs *o, const char *s)
{
	for (size_t i = 0; i < o->n; i++)
		if (fuzz_contains(o->text[i], o->len[i], s))
			return true;
	return false;
}

void fuzz_outputs_assert_hidden(const struct fuzz_outputs *o, const char *secret, const char *label,
				const char *input)
{
	/* JSON values are valid UTF-8, every undecodable byte written as
	 * U+FFFD: a secret that is not UTF-8 can never show there verbatim
	 * (a byte search would match the first byte of a U+FFFD), and one
	 * that holds U+FFFD is spelled by any undecodable byte ("x\xffab"
	 * shows "x\ufffdab") without anything of it being printed. The text
	 * outputs, built by the same redaction, still show such a secret raw
	 * if it leaks. */
	bool searchable = fuzz_utf8_valid(secret, strlen(secret), NULL) && !strstr(secret, "\xef\xbf\xbd");
	for (size_t i = 0; i < o->n; i++) {
		if (o->is_json[i] && !searchable)
			continue;
		if (!fuzz_contains(o->text[i], o->len[i], secret))
			continue;
		fuzz_dump("input", input, strlen(input));
		fuzz_dump(label, secret, strlen(secret));
		fuzz_dump(o->what[i], o->text[i], o->len[i]);
		FUZZ_CHECK(false, "the %s shows the %s", o->what[i], label);
	}
}

void fuzz_outputs_free(struct fuzz_outputs *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->text[i]);
	memset(o, 0, sizeof(*o));
}
