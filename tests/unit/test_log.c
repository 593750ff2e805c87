/*
 * test_log.c - redaction, the text and JSON log lines, level filtering and
 * the termination log.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schemagate/log.h"
#include "sgtest.h"

static char *redact(const char *text)
{
	static char out[4096];
	sg_redact(text, out, sizeof(out));
	return out;
}

#define assert_hidden(text, secret)                                                     \
	do {                                                                            \
		const char *r_ = redact(text);                                          \
		cr_assert_null(strstr(r_, secret), "'%s' leaks '%s'", r_, secret);     \
	} while (0)

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == ch;
	return n;
}

/* ---- a minimal JSON reader: one flat object of strings and integers ---- */

struct json_obj {
	char keys[16][32];
	char values[16][512];   /* strings decoded enough to compare; numbers as text */
	bool is_string[16];
	int n;
};

static const char *json_string(const char *p, char *out, size_t outsz)
{
	if (*p != '"')
		return NULL;
	p++;
	size_t o = 0;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;
		if (c == '\0' || c < 0x20)
			return NULL;   /* raw control characters are invalid JSON */
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				/* keep escapes visible so tests can look for them */
				if (o + 6 < outsz) {
					memcpy(out + o, p - 1, 6);
					o += 6;
				}
				p += 5;
				continue;
			}
			if (!strchr("\"\\/bfnrt", *p))
				return NULL;
			if (o + 2 < outsz) {
				out[o++] = '\\';
				out[o++] = *p;
			}
			p++;
			continue;
		}
		if (o + 1 < outsz)
			out[o++] = (char)c;
		p++;
	}
	out[o] = '\0';
	return p + 1;
}

static bool json_parse_object(const char *p, struct json_obj *obj)
{
	memset(obj, 0, sizeof(*obj));
	if (*p++ != '{')
		return false;
	while (obj->n < 16) {
		p = json_string(p, obj->keys[obj->n], sizeof(obj->keys[0]));
		if (!p || *p++ != ':')
			return false;
		if (*p == '"') {
			p = json_string(p, obj->values[obj->n], sizeof(obj->values[0]));
			if (!p)
				return false;
			obj->is_string[obj->n] = true;
		} else {
			size_t n = strspn(p, "-0123456789");
			if (n == 0 || n >= sizeof(obj->values[0]))
				return false;
			memcpy(obj->values[obj->n], p, n);
			p += n;
		}
		obj->n++;
		if (*p == ',') {
			p++;
			continue;
		}
		return *p == '}' && strcmp(p + 1, "\n") == 0;
	}
	return false;
}

static const char *json_get(const struct json_obj *obj, const char *key)
{
	for (int i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->values[i];
	return NULL;
}

/* ---- redaction ---- */

Test(redact, url_password_is_masked)
{
	const char *r = redact("connecting to postgres://app:hunter2@db:5432/x failed");
	cr_assert_str_eq(r, "connecting to postgres://app:***@db:5432/x failed");
}

Test(redact, percent_encoded_url_password_is_masked)
{
	assert_hidden("postgres://u:p%40ss%3Aw%2Frd@h:5433/db?sslmode=require", "p%40ss");
	assert_hidden("postgres://u:p%40ss%3Aw%2Frd@h:5433/db?sslmode=require", "w%2Frd");
	cr_assert_str_eq(redact("postgres://u:p%40ss%3Aw%2Frd@h:5433/db?sslmode=require"),
			 "postgres://u:***@h:5433/db?sslmode=require");
}

Test(redact, raw_slash_and_at_in_password_are_masked_whole)
{
	const char *r = redact("bad url mysql://u:pa/ss@w@rd@h/db here");
	cr_assert_null(strstr(r, "pa/ss"), "%s", r);
	cr_assert_null(strstr(r, "w@rd"), "%s", r);
	cr_assert(strstr(r, "@h/db here"), "%s", r);
}

Test(redact, several_urls_in_one_message)
{
	const char *r = redact("copy from postgres://a:one111@h1/db to mysql://b:two222@h2/db, "
			       "then 'mariadb://c:three333@h3'");
	cr_assert_null(strstr(r, "one111"), "%s", r);
	cr_assert_null(strstr(r, "two222"), "%s", r);
	cr_assert_null(strstr(r, "three333"), "%s", r);
	cr_assert_eq(count_char(r, '*'), 9, "%s", r);
}

Test(redact, url_without_password_is_unchanged)
{
	cr_assert_str_eq(redact("postgres://reader@h/db and https://example.com/a@b"),
			 "postgres://reader@h/db and https://example.com/a@b");
}

Test(redact, conninfo_password_pairs)
{
	cr_assert_str_eq(redact("host=h password=s3cr3t dbname=x"), "host=h password=*** dbname=x");
	const char *r = redact("host=h password = 'a b\\' c' user=x");
	cr_assert_null(strstr(r, "a b"), "%s", r);
	cr_assert_null(strstr(r, " c'"), "%s", r);
	cr_assert(strstr(r, "user=x"), "%s", r);
	assert_hidden("sslpassword=keypass1 sslmode=verify-full", "keypass1");
	assert_hidden("PGPASSWORD=abc123 psql", "abc123");
}

Test(redact, query_string_password)
{
	const char *r = redact("postgres://h/db?sslmode=require&password=qq123&x=1");
	cr_assert_str_eq(r, "postgres://h/db?sslmode=require&password=***&x=1");
}

Test(redact, password_word_without_value_is_left_alone)
{
	const char *text = "Access denied for user 'app'@'h' (using password: YES)";
	cr_assert_str_eq(redact(text), text);
}

Test(redact, registered_secret_plain_and_percent_encoded)
{
	sg_log_add_secret("Tr0ub4dor&3");
	assert_hidden("auth failed with Tr0ub4dor&3 for app", "Tr0ub4dor");
	assert_hidden("dsn=postgres://h/db?x=Tr0ub4dor%263", "Tr0ub4dor");
	assert_hidden("dsn=postgres://h/db?x=Tr0ub4dor%263", "%263");
	cr_assert_str_eq(redact("auth failed with Tr0ub4dor&3 for app"), "auth failed with *** for app");
}

Test(redact, secret_containing_another_is_masked_whole)
{
	sg_log_add_secret("abc");
	sg_log_add_secret("abcdef");
	cr_assert_str_eq(redact("x abcdef y abc z"), "x *** y *** z");
}

Test(redact, short_secrets_are_ignored)
{
	sg_log_add_secret("ab");
	sg_log_add_secret("");
	sg_log_add_secret(NULL);
	cr_assert_str_eq(redact("ab cab a"), "ab cab a");
}

Test(redact, small_output_buffer_is_terminated)
{
	char out[8];
	memset(out, 'x', sizeof(out));
	sg_redact("postgres://u:longpassword@h/db", out, sizeof(out));
	cr_assert_eq(out[7], '\0');
	cr_assert_str_eq(out, "postgre");
	sg_redact("anything", out, 0);   /* must not write */
}

/* ---- log lines ---- */

Test(log, json_line_is_one_valid_object_with_expected_keys)
{
	sg_log_init(SG_LOG_JSON, SG_LOG_INFO);
	struct sg_log_fields f = {
		.version = "0003",
		.name = "add_index",
		.error = "relation \"idx\" already exists\nat line 2\t\x01 back\\slash \xff\xfe end",
		.holder = NULL,
		.duration_ms = 12,
		.waited_ms = -1,
	};
	struct sgt_capture c;
	sgt_capture_start(&c);
	sg_log(SG_LOG_WARN, "apply_failed", &f, "applying %s to %s", "0003_add_index.up.sql",
	       "postgres://app:hunter2@db/x");
	char *out = sgt_capture_end(&c);

	cr_assert_eq(count_char(out, '\n'), 1, "%s", out);
	cr_assert_null(strstr(out, "hunter2"), "%s", out);
	struct json_obj obj;
	cr_assert(json_parse_object(out, &obj), "not one JSON object: %s", out);
	cr_assert_str_eq(json_get(&obj, "level"), "warn");
	cr_assert_str_eq(json_get(&obj, "event"), "apply_failed");
	cr_assert_str_eq(json_get(&obj, "instance"), sg_instance_id());
	cr_assert_str_eq(json_get(&obj, "msg"), "applying 0003_add_index.up.sql to postgres://app:***@db/x");
	cr_assert_str_eq(json_get(&obj, "version"), "0003");
	cr_assert_str_eq(json_get(&obj, "name"), "add_index");
	cr_assert_str_eq(json_get(&obj, "duration_ms"), "12");
	cr_assert_null(json_get(&obj, "waited_ms"));
	cr_assert_null(json_get(&obj, "holder"));
	const char *ts = json_get(&obj, "ts");
	cr_assert_not_null(ts);
	cr_assert_eq(strlen(ts), strlen("2026-11-21T13:30:52.123Z"), "%s", ts);
	cr_assert_eq(ts[10], 'T');
	cr_assert_eq(ts[23], 'Z');
	cr_assert_str_eq(json_get(&obj, "error"),
			 "relation \\\"idx\\\" already exists\\nat line 2\\t\\u0001 back\\\\slash \\ufffd\\ufffd end");
	free(out);
}

Test(log, json_keeps_valid_utf8)
{
	sg_log_init(SG_LOG_JSON, SG_LOG_DEBUG);
	struct sgt_capture c;
	sgt_capture_start(&c);
	sg_log(SG_LOG_INFO, "hello", SG_LOG_NOFIELDS, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc0\xaf");
	char *out = sgt_capture_end(&c);
	struct json_obj obj;
	cr_assert(json_parse_object(out, &obj), "%s", out);
	/* é, € and the emoji pass; the overlong "\xc0\xaf" does not */
	cr_assert_str_eq(json_get(&obj, "msg"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ufffd\\ufffd");
	free(out);
}

Test(log, text_line_is_readable_and_single)
{
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	struct sg_log_fields f = { .version = "0003", .name = "add_index", .holder = "pod-1/42",
				   .error = NULL, .duration_ms = 12, .waited_ms = 3400 };
	struct sgt_capture c;
	sgt_capture_start(&c);
	sg_log(SG_LOG_INFO, "applied", &f, "done\nwith password=abc123");
	char *out = sgt_capture_end(&c);
	cr_assert_eq(count_char(out, '\n'), 1, "%s", out);
	cr_assert_eq(out[strlen(out) - 1], '\n');
	cr_assert(strstr(out, " INFO  applied: done with password=***"), "%s", out);
	cr_assert(strstr(out, "(version=0003 name=add_index holder=pod-1/42 duration_ms=12 waited_ms=3400)"),
		  "%s", out);
	cr_assert_null(strstr(out, "abc123"), "%s", out);
	cr_assert(isdigit((unsigned char)out[0]) && out[4] == '-', "%s", out);
	free(out);
}

Test(log, text_fields_with_spaces_are_quoted_and_redacted)
{
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	struct sg_log_fields f = { .error = "auth \"failed\" for mysql://u:pw9999@h/db", .duration_ms = -1,
				   .waited_ms = -1 };
	struct sgt_capture c;
	sgt_capture_start(&c);
	sg_errorlog("connect", "giving up");
	sg_log(SG_LOG_ERROR, "connect", &f, "giving up");
	char *out = sgt_capture_end(&c);
	cr_assert_eq(count_char(out, '\n'), 2, "%s", out);
	cr_assert(strstr(out, "ERROR connect: giving up\n"), "%s", out);
	cr_assert(strstr(out, "(error=\"auth \\\"failed\\\" for mysql://u:***@h/db\")"), "%s", out);
	cr_assert_null(strstr(out, "pw9999"), "%s", out);
	free(out);
}

Test(log, level_filtering)
{
	struct sgt_capture c;
	sg_log_init(SG_LOG_TEXT, SG_LOG_WARN);
	sgt_capture_start(&c);
	sg_debug("d", "debug line");
	sg_info("i", "info line");
	sg_warn("w", "warn line");
	sg_errorlog("e", "error line");
	char *out = sgt_capture_end(&c);
	cr_assert_null(strstr(out, "debug line"));
	cr_assert_null(strstr(out, "info line"));
	cr_assert(strstr(out, "warn line"));
	cr_assert(strstr(out, "error line"));
	free(out);

	sg_log_init(SG_LOG_TEXT, SG_LOG_DEBUG);
	sgt_capture_start(&c);
	sg_debug("d", "debug line");
	out = sgt_capture_end(&c);
	cr_assert(strstr(out, "DEBUG d: debug line"), "%s", out);
	free(out);

	sg_log_init(SG_LOG_TEXT, SG_LOG_QUIET);
	sgt_capture_start(&c);
	sg_errorlog("e", "error line");
	out = sgt_capture_end(&c);
	cr_assert_str_eq(out, "");
	free(out);
}

Test(log, long_line_arrives_whole)
{
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	char big[20000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct sgt_capture c;
	sgt_capture_start(&c);
	sg_info("big", "%s", big);
	char *out = sgt_capture_end(&c);
	cr_assert_eq(count_char(out, '\n'), 1);
	cr_assert(strstr(out, big));
	free(out);
}

Test(log, errno_is_preserved)
{
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	struct sgt_capture c;
	sgt_capture_start(&c);
	errno = ENOENT;
	sg_info("x", "y");
	int saved = errno;
	free(sgt_capture_end(&c));
	cr_assert_eq(saved, ENOENT);
}

/* ---- termination log ---- */

Test(termination_log, explicit_path_gets_redacted_one_line_reason)
{
	char *dir = sgt_tempdir();
	char *path = sgt_path(dir, "termination-log");
	sgt_write(dir, "termination-log", "old content that must go away\n");
	sg_write_termination_log(path, "lock timeout after 5m\nholder postgres://u:zz9988@h/db");
	char *text = sgt_slurp(path);
	cr_assert_str_eq(text, "lock timeout after 5m holder postgres://u:***@h/db\n");
	free(text);
	free(path);
	sgt_rmrf(dir);
	free(dir);
}

Test(termination_log, explicit_path_is_created)
{
	char *dir = sgt_tempdir();
	char *path = sgt_path(dir, "reason");
	sg_write_termination_log(path, "exit 4: checksum mismatch");
	char *text = sgt_slurp(path);
	cr_assert_str_eq(text, "exit 4: checksum mismatch\n");
	free(text);
	free(path);
	sgt_rmrf(dir);
	free(dir);
}

Test(termination_log, unwritable_path_is_ignored)
{
	sg_write_termination_log("/nonexistent-dir/for/sure/reason", "x");
	cr_assert(access("/nonexistent-dir", F_OK) != 0);
}

Test(termination_log, default_path_is_never_created)
{
	struct stat st;
	bool existed = stat("/dev/termination-log", &st) == 0;
	sg_write_termination_log(NULL, "failure");
	if (!existed)
		cr_assert(stat("/dev/termination-log", &st) != 0, "/dev/termination-log was created");
}
