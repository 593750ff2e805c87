/*
 * test_fuzz_findings.c - what the fuzzers of tests/fuzz found, one test
 * per finding, each failing before its fix. The input that found it is
 * in tests/fuzz/regressions/TARGET/NAME and is replayed by every fuzz run.
 *
 * Most findings are redaction holes: URL syntax that the free-text
 * redactor (sg_redact) read differently from the URL parser, so a
 * password, or part of it, reached a message. Short passwords (under 3
 * bytes) are never registered as secrets, so for them URL syntax is the
 * only protection; longer ones hit the same holes whenever nothing was
 * registered yet (a URL that does not parse).
 *
 * The statement splitter's findings are places where it read a script
 * differently from the engine's own client: psql's lexer rules for
 * PostgreSQL, sqlite3_complete() for SQLite, the mysql client for
 * DELIMITER. A wrong split runs half a statement, statement by
 * statement, in a no-transaction script or on MySQL.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/config.h"
#include "schemagate/log.h"
#include "schemagate/migration.h"
#include "schemagate/sqlsplit.h"
#include "schemagate/url.h"
#include "sgtest.h"

static char *redact(const char *text)
{
	static char out[4096];
	sg_redact(text, out, sizeof(out));
	return out;
}

#define assert_not_shown(text, secret)                                                  \
	cr_assert_null(strstr(text, secret), "'%s' shows '%s'", text, secret)

/* The error message of a URL that does not parse. */
static const char *refusal(const char *url_text)
{
	static struct sg_error err;
	struct sg_url url;
	memset(&err, 0, sizeof(err));
	cr_assert_eq(sg_url_parse(url_text, &url, &err), -1, "%s parsed", url_text);
	return err.msg;
}

/* What sg_log prints for one error line, text or JSON. */
static char *log_line(enum sg_log_format format, const char *msg, const char *error)
{
	struct sgt_capture c;
	struct sg_log_fields f = { .error = error, .duration_ms = -1, .waited_ms = -1 };
	sg_log_init(format, SG_LOG_INFO);
	sgt_capture_start(&c);
	sg_log(SG_LOG_ERROR, "failed", &f, "%s", msg);
	return sgt_capture_end(&c);
}

/* regressions/url/quote-in-password-not-masked: RFC 3986 allows a quote
 * in a password (a sub-delim); the redactor ended the URL at it. */
Test(fuzz_findings, quote_in_password_is_masked_by_url_syntax)
{
	cr_assert_str_eq(redact("mariadb://u:it's@[::1]:3129"), "mariadb://u:***@[::1]:3129");
	cr_assert_str_eq(redact("postgres://u:i'@h/db"), "postgres://u:***@h/db");
	assert_not_shown(refusal("postgres://u:it's@h:99999/db"), "it's");
}

/* regressions/url/at-sign-in-query-password-leaks-its-tail: the user
 * info ran to the last '@' of the whole URL, here inside the query; the
 * mask ate "sslpassword=" and the value after its '@' was printed. */
Test(fuzz_findings, at_sign_in_a_query_password_does_not_end_the_user_info)
{
	const char *url = "postgres://h:5432/db?sslpassword=a://u:hunter2@h/d%25zz";
	cr_assert_str_eq(redact(url), "postgres://h:5432/db?sslpassword=***");
	const char *msg = refusal("postgres://h:99999?password=x@y/zz-tail");
	assert_not_shown(msg, "zz-tail");
	assert_not_shown(msg, "x@y");
	/* a raw '/' in a user-info password still masks to the last '@' */
	cr_assert_str_eq(redact("postgres://u:pa/ss@h/db"), "postgres://u:***@h/db");
}

/* regressions/url/quote-in-query-password-leaks-its-tail: a query value
 * ended at a quote, which a query may hold. */
Test(fuzz_findings, quote_in_a_query_password_is_masked_whole)
{
	cr_assert_str_eq(redact("postgres://h/db?sslpassword=id's"), "postgres://h/db?sslpassword=***");
	cr_assert_str_eq(redact("postgres://h/db?password=a'b&sslmode=require"),
			 "postgres://h/db?password=***&sslmode=require");
	/* a conninfo value in quotes still ends at its closing quote */
	cr_assert_str_eq(redact("host=h password='a b' user=u"), "host=h password=*** user=u");
}

/* regressions/url/leading-quote-in-query-password: a value starting with
 * a quote was read as a quoted conninfo value ending at the next quote. */
Test(fuzz_findings, query_password_starting_with_a_quote_is_masked_whole)
{
	cr_assert_str_eq(redact("postgres://h/db?password='''%60%60"), "postgres://h/db?password=***");
	cr_assert_str_eq(redact("postgres://h/db?password='x'tail&a=1"), "postgres://h/db?password=***&a=1");
}

/* regressions/url/secret-masking-breaks-url-syntax: the registered
 * password "res://" was masked first, inside "postgres://", which broke
 * the URL syntax that finds the password as written ("res:%2F%2F"). */
Test(fuzz_findings, registered_secret_that_looks_like_url_syntax)
{
	sg_log_add_secret("res://");
	const char *r = redact("connecting to postgres://:res:%2F%2F@h/db");
	assert_not_shown(r, "res:%2F%2F");
	assert_not_shown(r, "res://");
}

/* regressions/url/backquote-in-refused-url-hides-nothing: a URL refused
 * for a byte no URL may hold was echoed through the free-text redactor,
 * which stops at that byte. */
Test(fuzz_findings, refused_url_is_echoed_with_its_password_masked_by_url_syntax)
{
	assert_not_shown(refusal("postgresql://ap`:p%39%2rd@1p"), "p%39%2rd");
	assert_not_shown(refusal("postgres://u:my pass@h:99999/db"), "my pass");
	assert_not_shown(refusal("postgres://u:a\"b@h/d%zz"), "a\"b");
	const char *msg = refusal("postgres://u@h:99999/db?password=se cret");
	assert_not_shown(msg, "se cret");
	cr_assert(strstr(msg, "the port must be a number"), "%s", msg);
}

/* regressions/url/control-byte-becomes-space-and-spells-a-secret: the
 * text log turns control bytes into spaces after masking, so "pass\nword"
 * printed the registered password "pass word". */
Test(fuzz_findings, text_log_masks_secrets_in_what_it_prints)
{
	sg_log_add_secret("pass word");
	char *line = log_line(SG_LOG_TEXT, "server said: pass\nword", "pass\tword rejected");
	assert_not_shown(line, "pass word");
	free(line);

	char *dir = sgt_tempdir();
	char *path = sgt_path(dir, "termination-log");
	sg_write_termination_log(path, "bad pass\rword");
	char *written = sgt_slurp(path);
	assert_not_shown(written, "pass word");
	free(written);
	free(path);
	sgt_rmrf(dir);
	free(dir);
}

/* regressions/config/url-word-with-raw-space-echoed: libpq accepts a raw
 * space in a password; a URL given as a stray argument was quoted in the
 * usage error, where the free-text redactor stops at the space. */
Test(fuzz_findings, usage_error_quoting_a_url_masks_its_password)
{
	unsetenv("DATABASE_URL");
	char *argv[] = { "schemagate", "up", "--database-url", "sqlite:x.db", "postgres://u:hunt er2@h/db", NULL };
	struct sg_config cfg;
	struct sg_error err = {0};
	cr_assert_eq(sg_config_parse(&cfg, 5, argv, &err), -1);
	cr_assert(strstr(err.msg, "unexpected argument"), "%s", err.msg);
	assert_not_shown(err.msg, "hunt er2");
	assert_not_shown(err.msg, "er2@");

	char *argv2[] = { "schemagate", "up", "--lock-timeout=postgres://u:a b@h:1", NULL };
	cr_assert_eq(sg_config_parse(&cfg, 3, argv2, &err), -1);
	assert_not_shown(err.msg, "a b");

	/* a word longer than the message: masked before it is cut to size */
	char word[2100];
	snprintf(word, sizeof(word), "postgres://u:hunt er2@h/%01990d", 0);
	char *argv3[] = { "schemagate", "up", "--database-url", "sqlite:x.db", word, NULL };
	cr_assert_eq(sg_config_parse(&cfg, 5, argv3, &err), -1);
	cr_assert(strstr(err.msg, "unexpected argument 'postgres://u:"), "%s", err.msg);
	assert_not_shown(err.msg, "hunt er2");
}

/* regressions/log/json-string-writer-passes-invalid-utf8: the JSON string
 * writer of machine output (status --json) copied bytes that are not
 * UTF-8, so a migration named in Latin-1 made the document invalid. */
Test(fuzz_findings, json_string_writer_replaces_bytes_that_are_not_utf8)
{
	struct sg_buf b = {0};
	sg_buf_json_string(&b, "ev\xff \xc3\xa9 \xed\xa0\x80 \x7f");
	cr_assert_str_eq(b.data, "\"ev\\ufffd \xc3\xa9 \\ufffd\\ufffd\\ufffd \\u007f\"");
	sg_buf_free(&b);
}

/* The statements of script as split for engine, joined with " | ". */
static char *split(const char *script, enum sg_engine engine)
{
	static char out[4096];
	struct sg_statement_list l;
	struct sg_error err = {0};
	cr_assert_eq(sg_sql_split(script, engine, &l, &err), 0, "%s", err.msg);
	out[0] = '\0';
	for (size_t i = 0; i < l.count; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? " | " : "", l.items[i].sql);
	sg_statement_list_free(&l);
	return out;
}

/* regressions/sqlsplit/pg-semicolon-inside-parentheses: psql ends a
 * statement at ';' only outside parentheses; a rule with two actions
 * was cut in half. */
Test(fuzz_findings, postgres_semicolon_inside_parentheses_does_not_end_a_statement)
{
	cr_assert_str_eq(split("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b "
			       "VALUES (2));\nSELECT 1;", SG_ENGINE_POSTGRES),
			 "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)) | "
			 "SELECT 1");
	/* MySQL and SQLite clients do not count parentheses */
	cr_assert_str_eq(split("SELECT (1; SELECT 2)", SG_ENGINE_SQLITE), "SELECT (1 | SELECT 2)");
}

/* regressions/sqlsplit/pg-begin-as-a-parameter-name: BEGIN inside the
 * parameter list opened a body that never closed, and every later
 * statement joined the function. psql counts BEGIN outside parentheses
 * only, and CASE only inside a body. */
Test(fuzz_findings, postgres_begin_as_a_parameter_name_opens_no_body)
{
	cr_assert_str_eq(split("CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql AS $$ SELECT begin $$;\n"
			       "CREATE TABLE t (a int);", SG_ENGINE_POSTGRES),
			 "CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql AS $$ SELECT begin $$ | "
			 "CREATE TABLE t (a int)");
	/* a BEGIN ATOMIC body still holds its semicolons */
	cr_assert_str_eq(split("CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE x WHEN 1 "
			       "THEN 2 END; SELECT x; END;\nSELECT 3;", SG_ENGINE_POSTGRES),
			 "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE x WHEN 1 THEN 2 "
			 "END; SELECT x; END | SELECT 3");
}

/* regressions/sqlsplit/pg-dollar-then-word-is-two-tokens: "$bEGIN" is
 * "$" and the identifier bEGIN to PostgreSQL (no identifier starts with
 * '$'); the splitter read one word. */
Test(fuzz_findings, postgres_dollar_before_a_word_is_its_own_token)
{
	cr_assert_str_eq(split("CREATE FUNCTION f() RETURNS t AS $begin x; END;\nSELECT 2;", SG_ENGINE_POSTGRES),
			 "CREATE FUNCTION f() RETURNS t AS $begin x; END | SELECT 2");
	/* two dollar quotes back to back are two strings */
	cr_assert_str_eq(split("SELECT $$a;$$$$b;$$;\nSELECT 2;", SG_ENGINE_POSTGRES), "SELECT $$a;$$$$b;$$ | SELECT 2");
	/* regressions/sqlsplit/pg-dollar-then-escape-string: and E after it
	 * starts an escape string ("$" alone is not part of a word) */
	cr_assert_str_eq(split("SELECT $E'\\'x;';\nSELECT 2;", SG_ENGINE_POSTGRES), "SELECT $E'\\'x;' | SELECT 2");
}

/* regressions/sqlsplit/pg-cr-ends-a-line-comment: PostgreSQL's lexer
 * ends a "--" comment at CR as well as LF; the splitter took the whole
 * script of a CR-only file for one comment. */
Test(fuzz_findings, postgres_line_comment_ends_at_a_carriage_return)
{
	cr_assert_str_eq(split("-- old Mac line end\rCREATE TABLE a (x int);\rCREATE TABLE b (y int);\r",
			       SG_ENGINE_POSTGRES),
			 "CREATE TABLE a (x int) | CREATE TABLE b (y int)");
}

/* regressions/sqlsplit/pg-create-or-without-replace: psql's routine rule
 * is CREATE OR REPLACE FUNCTION; any third word after OR made a body. */
Test(fuzz_findings, postgres_create_or_needs_replace_to_be_a_routine)
{
	cr_assert_str_eq(split("CREATE OR FOO FUNCTION f() BEGIN SELECT 1; END;\nSELECT 2;", SG_ENGINE_POSTGRES),
			 "CREATE OR FOO FUNCTION f() BEGIN SELECT 1 | END | SELECT 2");
}

/* regressions/sqlsplit/sqlite-explain-query-plan-create-trigger:
 * sqlite3_complete() lets any token follow EXPLAIN before CREATE
 * TRIGGER; the splitter took EXPLAIN QUERY PLAN for an ordinary
 * statement and cut the trigger body. */
Test(fuzz_findings, sqlite_explain_query_plan_keeps_a_trigger_body)
{
	cr_assert_str_eq(split("EXPLAIN QUERY PLAN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;\nSELECT 2;",
			       SG_ENGINE_SQLITE),
			 "EXPLAIN QUERY PLAN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END | SELECT 2");
}

/* regressions/sqlsplit/mysql-delimiter-hash-before-a-comment: the mysql
 * client looks for the delimiter before a comment start, so after
 * DELIMITER # the '#' ends statements; the splitter read a comment. */
Test(fuzz_findings, mysql_delimiter_is_found_before_a_comment_start)
{
	cr_assert_str_eq(split("DELIMITER #\nCREATE PROCEDURE p() BEGIN SELECT 1; END#\nDELIMITER ;\nSELECT 2;",
			       SG_ENGINE_MYSQL),
			 "CREATE PROCEDURE p() BEGIN SELECT 1; END | SELECT 2");
}

/* The error or the first note of loading files[] in the order given. */
static char *load_message(const struct sg_migration_file *files, size_t n, bool *ok)
{
	static char out[1024];
	struct sg_migration_set set;
	struct sg_error err = {0};
	*ok = sg_migration_load_files("migrations", files, n, SG_ENGINE_POSTGRES, &set, &err) == 0;
	snprintf(out, sizeof(out), "%s", *ok ? (set.nnotes ? set.notes[0] : "") : err.msg);
	sg_migration_set_free(&set);
	return out;
}

/* regressions/migration/notes-follow-the-readdir-order and
 * first-error-follows-the-readdir-order: the loader classified files in
 * the order the file system listed them, so the notes and the one error
 * a refusal names differed between two pods holding the same files. */
Test(fuzz_findings, the_loader_reports_the_same_whatever_the_listing_order)
{
	const struct sg_migration_file notes[] = {
		{"seed.sql", "INSERT", 6}, {"README.md", "# x", 3}, {"1_a.up.sql", "SELECT 1;", 9},
	};
	const struct sg_migration_file reversed[] = {notes[2], notes[1], notes[0]};
	bool ok1, ok2;
	char first[1024];
	snprintf(first, sizeof(first), "%s", load_message(notes, 3, &ok1));
	cr_assert(ok1);
	cr_assert_str_eq(load_message(reversed, 3, &ok2), first);
	cr_assert_str_eq(first, "README.md: not a migration file; ignored");

	const struct sg_migration_file bad[] = {
		{"2y.up.sql", "SELECT 1;", 9}, {"1x.sql", "-- migrate:up\n", 14}, {"3_ok.up.sql", "SELECT 1;", 9},
	};
	const struct sg_migration_file bad_reversed[] = {bad[2], bad[1], bad[0]};
	snprintf(first, sizeof(first), "%s", load_message(bad, 3, &ok1));
	cr_assert(!ok1);
	cr_assert_str_eq(load_message(bad_reversed, 3, &ok2), first);
	cr_assert(strncmp(first, "1x.sql: ", 8) == 0 && strstr(first, "and 1 more problem"), "%s", first);
}

/* The message of a refused command line (sg_config_parse). */
static const char *config_refusal(int argc, char **argv)
{
	static struct sg_error err;
	struct sg_config cfg;
	memset(&err, 0, sizeof(err));
	cr_assert_eq(sg_config_parse(&cfg, argc, argv, &err), -1);
	sg_config_free(&cfg);
	return err.msg;
}

/* regressions/config/unknown-option-with-a-url-cut-at-its-equals-sign:
 * an unknown option is quoted up to its '=', so the word with its URL
 * masked was never found in the message ("--postgres://..." for
 * "--database-url=postgres://..."). */
Test(fuzz_findings, an_unknown_option_holding_a_url_is_quoted_masked)
{
	char *argv[] = {"schemagate", "up", "--postgres://app:pa\"ss@db/app?sslmode=require", NULL};
	const char *msg = config_refusal(3, argv);
	cr_assert(strstr(msg, "unknown option '--postgres://app:***@db/app?sslmode'"), "%s", msg);
	assert_not_shown(msg, "pa\"ss");
	assert_not_shown(msg, "ss@db");
}

/* regressions/config/overlapping-words-quoted-in-a-variable: a variable
 * holding several URLs (and copies of other words) had its first URL
 * masked, the next ones left to the free-text redactor, which stops at a
 * quote. Every URL of a message is now masked, each running to the
 * scheme of the next. (Found once fuzz_config ran again: its check of a
 * refused configuration predated the logging settings a refusal keeps,
 * and failed on the first input.) */
Test(fuzz_findings, every_url_in_a_quoted_variable_is_masked)
{
	setenv("SCHEMAGATE_LOG_LEVEL", "postgres://a:p1x@h/db,postgres://b:p\"2y@h/db", 1);
	char *argv[] = {"schemagate", "up", NULL};
	const char *msg = config_refusal(2, argv);
	unsetenv("SCHEMAGATE_LOG_LEVEL");
	cr_assert(strstr(msg, "postgres://a:***@h/db,postgres://b:***@h/db"), "%s", msg);
	assert_not_shown(msg, "p1x");
	assert_not_shown(msg, "2y");
}

/* regressions/config/empty-dir: `--dir ""` was accepted, and the empty
 * path then failed later with "creating : No such file or directory"
 * (new) or "migration directory : ..." (up). An empty directory name is
 * now a usage error naming the flag. */
Test(fuzz_findings, an_empty_dir_is_a_usage_error)
{
	char *argv[] = {"schemagate", "new", "add_users", "--dir", "", NULL};
	const char *msg = config_refusal(5, argv);
	cr_assert(strstr(msg, "--dir is empty"), "%s", msg);
}

/* regressions/config/password-with-equals-in-an-unknown-option: an
 * unknown option is quoted up to its '='; when the '=' was inside a URL's
 * password, the cut came before the '@' that marks it as one, and the
 * start of the password was shown ("--x-postgres://app:pa"). The word is
 * now masked first, then cut. */
Test(fuzz_findings, a_password_holding_equals_in_an_unknown_option_is_masked)
{
	char *argv[] = {"schemagate", "--x-postgres://app:pa=ss1@db/app", "up", NULL};
	const char *msg = config_refusal(3, argv);
	cr_assert(strstr(msg, "unknown option '--x-postgres://app:***@db/app'"), "%s", msg);
	assert_not_shown(msg, "app:pa");
	assert_not_shown(msg, "ss1");
}
