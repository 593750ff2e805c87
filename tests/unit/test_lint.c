/*
 * test_lint.c - every lint rule, per engine it applies to: a script that
 * must trigger it (line and column checked) and a safe variant that must
 * not; the suppression comments in their three spellings, per statement
 * and file-wide; an ignore that matches nothing warns.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/lint.h"
#include "schemagate/migration.h"

#define PG SG_DIALECT_POSTGRES
#define MY SG_DIALECT_MYSQL
#define LITE SG_DIALECT_SQLITE

struct lint_case {
	const char *rule;
	enum sg_dialect dialect;
	bool no_tx;
	const char *trigger;   /* must report rule at line:column */
	int line, column;
	const char *safe;      /* must not report rule */
	bool safe_no_tx;
};

static const struct lint_case cases[] = {
	/* PostgreSQL: breaking the release still running */
	{"ban-drop-table", PG, false, "SELECT 1;\nDROP TABLE users;", 2, 1,
	 "CREATE TABLE scratch (id bigint);\nDROP TABLE scratch;", false},
	{"ban-drop-column", PG, false, "ALTER TABLE users\n  DROP COLUMN email;", 2, 15,
	 "ALTER TABLE users ADD COLUMN email2 text;", false},
	{"ban-drop-schema", PG, false, "DROP SCHEMA old CASCADE;", 1, 1, "CREATE SCHEMA IF NOT EXISTS s;", false},
	{"ban-drop-database", PG, false, "DROP DATABASE old;", 1, 1, "CREATE SCHEMA s;", false},
	{"renaming-table", PG, false, "ALTER TABLE users RENAME TO people;", 1, 1,
	 "CREATE TABLE a (id bigint);\nALTER TABLE a RENAME TO b;", false},
	{"renaming-column", PG, false, "ALTER TABLE users RENAME COLUMN name TO full_name;", 1, 33,
	 "CREATE TABLE a (x text);\nALTER TABLE a RENAME COLUMN x TO y;", false},
	{"adding-required-field", PG, false, "ALTER TABLE users ADD COLUMN age bigint NOT NULL;", 1, 30,
	 "ALTER TABLE users ADD COLUMN age bigint NOT NULL DEFAULT 0;", false},
	{"changing-column-type", PG, false, "ALTER TABLE users ALTER COLUMN age TYPE bigint;", 1, 32,
	 "ALTER TABLE users ALTER COLUMN age SET DEFAULT 0;", false},
	{"disallowed-unique-constraint", PG, false, "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);", 1, 23,
	 "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_email_idx;", false},
	{"adding-unique-index", PG, true, "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);", 1, 1,
	 "CREATE TABLE t (e text);\nCREATE UNIQUE INDEX i ON t (e);", false},
	{"adding-not-nullable-field", PG, false, "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", 1, 32,
	 "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;", false},
	{"ban-drop-not-null", PG, false, "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;", 1, 32,
	 "ALTER TABLE users ALTER COLUMN email SET DEFAULT '';", false},
	{"ban-drop-default", PG, false, "ALTER TABLE users ALTER COLUMN email DROP DEFAULT;", 1, 32,
	 "ALTER TABLE users ALTER COLUMN email SET DEFAULT '';", false},
	/* PostgreSQL: long locks */
	{"require-concurrent-index-creation", PG, false, "CREATE INDEX i ON users (email);", 1, 1,
	 "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);", true},
	{"require-concurrent-index-deletion", PG, false, "DROP INDEX i;", 1, 1, "DROP INDEX CONCURRENTLY IF EXISTS i;",
	 true},
	{"require-concurrent-reindex", PG, false, "\n  REINDEX INDEX i;", 2, 3, "REINDEX INDEX CONCURRENTLY i;", true},
	{"ban-concurrent-index-creation-in-transaction", PG, false, "CREATE INDEX CONCURRENTLY i ON users (email);", 1,
	 1, "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);", true},
	{"constraint-missing-not-valid", PG, false, "ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0);", 1, 23,
	 "ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0) NOT VALID;", false},
	{"adding-foreign-key-constraint", PG, false,
	 "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);", 1, 24,
	 "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;", false},
	{"adding-field-with-default", PG, false, "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();", 1,
	 30, "ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now();", false},
	{"adding-serial-primary-key-field", PG, false, "ALTER TABLE users ADD PRIMARY KEY (id);", 1, 23,
	 "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;", false},
	{"enum-add-value-in-transaction", PG, false, "ALTER TYPE mood ADD VALUE 'meh';", 1, 1,
	 "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh';", true},
	/* PostgreSQL: squawk's other rules */
	{"prefer-robust-stmts", PG, true, "CREATE INDEX CONCURRENTLY i ON users (email);", 1, 1,
	 "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);", true},
	{"ban-char-field", PG, false, "CREATE TABLE a (\n  code char(2)\n);", 2, 8, "CREATE TABLE a (code text);", false},
	{"prefer-bigint-over-int", PG, false, "CREATE TABLE a (n integer);", 1, 19, "CREATE TABLE a (n bigint);", false},
	{"prefer-bigint-over-smallint", PG, false, "CREATE TABLE a (n smallint);", 1, 19, "CREATE TABLE a (n bigint);",
	 false},
	{"prefer-identity", PG, false, "CREATE TABLE a (id bigserial);", 1, 20,
	 "CREATE TABLE a (id bigint GENERATED BY DEFAULT AS IDENTITY);", false},
	{"prefer-text-field", PG, false, "CREATE TABLE a (s varchar(40));", 1, 19, "CREATE TABLE a (s text);", false},
	{"prefer-timestamp-tz", PG, false, "CREATE TABLE a (t timestamp);", 1, 19, "CREATE TABLE a (t timestamptz);",
	 false},
	{"ban-truncate-cascade", PG, false, "TRUNCATE users CASCADE;", 1, 1, "TRUNCATE users;", false},
	{"ban-create-domain-with-constraint", PG, false, "CREATE DOMAIN pos AS bigint CHECK (VALUE > 0);", 1, 29,
	 "CREATE DOMAIN pos AS bigint;", false},
	{"ban-alter-domain-with-add-constraint", PG, false, "ALTER DOMAIN pos ADD CONSTRAINT c CHECK (VALUE > 0);", 1,
	 1, "ALTER DOMAIN pos SET DEFAULT 1;", false},
	{"syntax-error", PG, false, "SELECT 1;\nALTER TABLE users ADD COLUMN;", 2, 29, "SELECT 1;", false},
	{"unused-ignore", PG, false, "-- schemagate:lint-ignore ban-drop-table\nSELECT 1;", 1, 4,
	 "-- schemagate:lint-ignore ban-drop-table\nDROP TABLE users;", false},
	/* MySQL / MariaDB */
	{"ban-drop-table", MY, false, "SELECT 1;\nDROP TABLE users;", 2, 1, "DROP TEMPORARY TABLE scratch;", false},
	{"ban-drop-column", MY, false, "ALTER TABLE users DROP COLUMN email;", 1, 31,
	 "ALTER TABLE users DROP INDEX email_idx;", false},
	{"ban-drop-database", MY, false, "DROP SCHEMA old;", 1, 1, "CREATE DATABASE IF NOT EXISTS x;", false},
	{"renaming-table", MY, false, "RENAME TABLE users TO people;", 1, 1,
	 "CREATE TABLE a (id bigint);\nRENAME TABLE a TO b;", false},
	{"renaming-column", MY, false, "ALTER TABLE users RENAME COLUMN name TO full_name;", 1, 33,
	 "ALTER TABLE users RENAME INDEX a TO b;", false},
	{"adding-required-field", MY, false, "ALTER TABLE users ADD COLUMN age int NOT NULL;", 1, 30,
	 "ALTER TABLE users ADD COLUMN age int NOT NULL DEFAULT 0;", false},
	{"adding-required-field", MY, false, "ALTER TABLE users ADD (note text, age int NOT NULL);", 1, 35,
	 "ALTER TABLE users ADD (note text, age int NOT NULL DEFAULT 0);", false},
	{"adding-required-field", MY, false, "ALTER TABLE users ADD COLUMN IF NOT EXISTS age int NOT NULL;", 1, 44,
	 "ALTER TABLE users ADD COLUMN IF NOT EXISTS age int CHECK (age > 0 OR age IS NOT NULL);", false},
	{"adding-not-nullable-field", MY, false, "ALTER TABLE users MODIFY COLUMN email varchar(255) NOT NULL;", 1, 33,
	 "ALTER TABLE users MODIFY COLUMN email varchar(255) NULL;", false},
	{"adding-not-nullable-field", MY, false, "ALTER TABLE users\n  CHANGE mail email varchar(255) NOT NULL DEFAULT '';",
	 2, 10, "CREATE TABLE users (mail text);\nALTER TABLE users CHANGE mail email varchar(255) NOT NULL;", false},
	{"changing-column-type", MY, false, "ALTER TABLE users MODIFY COLUMN age bigint, ALGORITHM=INPLACE;", 1, 33,
	 "ALTER TABLE users ALTER COLUMN age SET DEFAULT 0;", false},
	{"disallowed-unique-constraint", MY, false, "ALTER TABLE users ADD UNIQUE (email), LOCK=NONE;", 1, 23,
	 "ALTER TABLE users ADD INDEX (email), LOCK=NONE;", false},
	{"adding-unique-index", MY, false, "CREATE UNIQUE INDEX u ON users (email) LOCK=NONE;", 1, 1,
	 "CREATE INDEX i ON users (email) LOCK=NONE;", false},
	{"ban-drop-default", MY, false, "ALTER TABLE users ALTER COLUMN email DROP DEFAULT;", 1, 32,
	 "ALTER TABLE users ALTER COLUMN email SET DEFAULT '';", false},
	{"enum-set-change", MY, false, "ALTER TABLE users MODIFY state ENUM('a','b'), ALGORITHM=INSTANT;", 1, 26,
	 "ALTER TABLE users MODIFY note text, ALGORITHM=INSTANT;", false},
	{"require-online-alter", MY, false, "ALTER TABLE users CONVERT TO CHARACTER SET utf8mb4;", 1, 19,
	 "ALTER TABLE users CONVERT TO CHARACTER SET utf8mb4, ALGORITHM=INPLACE, LOCK=NONE;", false},
	{"require-lock-none", MY, false, "ALTER TABLE users ADD INDEX i (email);", 1, 23,
	 "ALTER TABLE users ADD INDEX i (email), ALGORITHM=INPLACE, LOCK=NONE;", false},
	{"not-understood", MY, false, "ALTER TABLE users FROBNICATE x;", 1, 19, "ALTER TABLE users COMMENT = 'x';",
	 false},
	{"unused-ignore", MY, false, "DROP TABLE a; -- squawk-ignore renaming-table", 1, 18,
	 "DROP TABLE a; -- squawk-ignore ban-drop-table", false},
	/* SQLite */
	{"ban-drop-table", LITE, false, "SELECT 1;\nDROP TABLE users;", 2, 1,
	 "CREATE TABLE t (id);\nDROP TABLE t;", false},
	{"ban-drop-column", LITE, false, "ALTER TABLE users DROP COLUMN email;", 1, 31,
	 "ALTER TABLE users ADD COLUMN note TEXT;", false},
	{"renaming-table", LITE, false, "ALTER TABLE users RENAME TO people;", 1, 1,
	 "CREATE TABLE a (x);\nALTER TABLE a RENAME TO b;", false},
	{"renaming-column", LITE, false, "ALTER TABLE users RENAME COLUMN name TO full_name;", 1, 33,
	 "CREATE TABLE a (x);\nALTER TABLE a RENAME COLUMN x TO y;", false},
	{"adding-required-field", LITE, false, "ALTER TABLE users ADD COLUMN age INTEGER NOT NULL;", 1, 30,
	 "ALTER TABLE users ADD COLUMN age INTEGER NOT NULL DEFAULT 0;", false},
	{"adding-unique-index", LITE, false, "CREATE UNIQUE INDEX u ON users (email);", 1, 1,
	 "CREATE INDEX i ON users (email);", false},
	{"sqlite-table-rebuild", LITE, false,
	 "CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT);\n"
	 "INSERT INTO users_new SELECT id, email FROM users;\nDROP TABLE users;\nALTER TABLE users_new RENAME TO users;",
	 3, 1, "CREATE TABLE users_new (id INTEGER PRIMARY KEY);\nALTER TABLE users_new RENAME TO users2;", false},
	{"not-understood", LITE, false, "ALTER TABLE users ALTER COLUMN x TYPE int;", 1, 19,
	 "ALTER TABLE users ADD COLUMN note TEXT;", false},
	{"unused-ignore", LITE, false, "-- atlas:nolint DS103\nDROP TABLE a;", 1, 4,
	 "-- atlas:nolint DS102\nDROP TABLE a;", false},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void lint(const char *sql, enum sg_dialect d, bool no_tx, struct sg_lint_result *r)
{
	memset(r, 0, sizeof(*r));
	sg_lint_script(sql, d, no_tx, 1, NULL, r);
}

static const struct sg_lint_hit *hit_of(const struct sg_lint_result *r, const char *rule)
{
	for (size_t i = 0; i < r->count; i++)
		if (strcmp(r->items[i].rule->id, rule) == 0)
			return &r->items[i];
	return NULL;
}

static void dump(const struct sg_lint_result *r, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < r->count && n + 1 < size; i++)
		n += (size_t)snprintf(buf + n, size - n, " [%d:%d %s]", r->items[i].line, r->items[i].column,
				      r->items[i].rule->id);
}

Test(lint, every_rule_triggers_at_its_line_and_column)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct lint_case *c = &cases[i];
		struct sg_lint_result r;
		lint(c->trigger, c->dialect, c->no_tx, &r);
		char got[1024];
		dump(&r, got, sizeof(got));
		const struct sg_lint_hit *h = hit_of(&r, c->rule);
		cr_expect(h != NULL, "%s (%s): not reported for %s; got%s", c->rule, sg_dialect_name(c->dialect), c->trigger,
			  got);
		if (h)
			cr_expect(h->line == c->line && h->column == c->column, "%s (%s): at %d:%d, expected %d:%d",
				  c->rule, sg_dialect_name(c->dialect), h->line, h->column, c->line, c->column);
		if (h)
			cr_expect(h->offset >= h->stmt_start || strcmp(c->rule, "unused-ignore") == 0,
				  "%s: the finding points before its statement", c->rule);
		sg_lint_result_free(&r);
	}
}

Test(lint, every_safe_variant_is_clean_of_its_rule)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct lint_case *c = &cases[i];
		struct sg_lint_result r;
		lint(c->safe, c->dialect, c->safe_no_tx, &r);
		char got[1024];
		dump(&r, got, sizeof(got));
		cr_expect(hit_of(&r, c->rule) == NULL, "%s (%s): reported for the safe %s;%s", c->rule,
			  sg_dialect_name(c->dialect), c->safe, got);
		sg_lint_result_free(&r);
	}
}

/* The table above is complete: each rule has a case on every engine it claims. */
Test(lint, every_rule_has_a_case_per_engine)
{
	static const struct {
		unsigned bit;
		enum sg_dialect dialect;
	} engines[] = {{SG_LINT_POSTGRES, PG}, {SG_LINT_MYSQL, MY}, {SG_LINT_SQLITE, LITE}};
	for (size_t k = 0; k < sg_lint_nrules; k++) {
		const struct sg_lint_rule *rule = &sg_lint_rules[k];
		cr_expect(*rule->summary && *rule->explanation, "%s: no summary or explanation", rule->id);
		for (size_t e = 0; e < 3; e++) {
			if (!(rule->engines & engines[e].bit))
				continue;
			bool found = false;
			for (size_t i = 0; i < NCASES; i++)
				found |= strcmp(cases[i].rule, rule->id) == 0 && cases[i].dialect == engines[e].dialect;
			cr_expect(found, "%s has no case for %s", rule->id, sg_dialect_name(engines[e].dialect));
		}
	}
}

/* ---- suppression ---- */

static size_t count_rule(const struct sg_lint_result *r, const char *rule)
{
	size_t n = 0;
	for (size_t i = 0; i < r->count; i++)
		n += strcmp(r->items[i].rule->id, rule) == 0;
	return n;
}

Test(lint, ignore_comment_on_a_statement_in_three_spellings)
{
	static const char *const spellings[] = {"-- schemagate:lint-ignore ban-drop-column",
						"-- squawk-ignore ban-drop-column", "-- atlas:nolint DS103",
						"-- atlas:nolint destructive"};
	for (size_t i = 0; i < 4; i++) {
		char *sql = sg_asprintf("ALTER TABLE a DROP COLUMN x;\n%s\nALTER TABLE b DROP COLUMN y;\n", spellings[i]);
		struct sg_lint_result r;
		lint(sql, PG, false, &r);
		cr_expect_eq(count_rule(&r, "ban-drop-column"), 1, "%s: %zu findings", spellings[i],
			     count_rule(&r, "ban-drop-column"));
		const struct sg_lint_hit *h = hit_of(&r, "ban-drop-column");
		cr_expect(h && h->line == 1, "%s: the unannotated statement (line 1) keeps its finding", spellings[i]);
		cr_expect_eq(count_rule(&r, "unused-ignore"), 0, "%s", spellings[i]);
		sg_lint_result_free(&r);
		free(sql);
	}
}

Test(lint, ignore_comment_only_covers_the_rules_it_names)
{
	struct sg_lint_result r;
	lint("-- squawk-ignore ban-drop-column\nALTER TABLE a DROP COLUMN x, ALTER COLUMN y TYPE bigint;", PG, false, &r);
	cr_expect_eq(count_rule(&r, "ban-drop-column"), 0);
	cr_expect_eq(count_rule(&r, "changing-column-type"), 1);
	sg_lint_result_free(&r);
	/* a list, and no list meaning every rule */
	lint("-- schemagate:lint-ignore ban-drop-column, changing-column-type\n"
	     "ALTER TABLE a DROP COLUMN x, ALTER COLUMN y TYPE bigint;",
	     PG, false, &r);
	cr_expect_eq(r.count, 0, "%zu findings", r.count);
	sg_lint_result_free(&r);
	lint("-- atlas:nolint\nALTER TABLE a DROP COLUMN x, ALTER COLUMN y TYPE bigint;", PG, false, &r);
	cr_expect_eq(r.count, 0, "%zu findings", r.count);
	sg_lint_result_free(&r);
}

Test(lint, ignore_at_the_top_of_the_file_is_file_wide)
{
	static const char *const heads[] = {"-- schemagate:lint-ignore ban-drop-table\n\n",
					    "-- atlas:nolint ban-drop-table DS102\n\n",
					    "SELECT 1;\n-- squawk-ignore-file ban-drop-table\n"};
	for (size_t i = 0; i < 3; i++) {
		char *sql = sg_asprintf("%sDROP TABLE a;\nSELECT 2;\nDROP TABLE b;\n", heads[i]);
		struct sg_lint_result r;
		lint(sql, PG, false, &r);
		cr_expect_eq(count_rule(&r, "ban-drop-table"), 0, "%s", heads[i]);
		sg_lint_result_free(&r);
		free(sql);
	}
	/* the same comment right above the first statement is about that statement only */
	struct sg_lint_result r;
	lint("-- schemagate:lint-ignore ban-drop-table\nDROP TABLE a;\nDROP TABLE b;\n", PG, false, &r);
	cr_expect_eq(count_rule(&r, "ban-drop-table"), 1);
	cr_expect_eq(hit_of(&r, "ban-drop-table")->line, 3);
	sg_lint_result_free(&r);
}

Test(lint, unused_ignore_warns_naming_the_rule)
{
	struct sg_lint_result r;
	lint("-- squawk-ignore ban-drop-table, no-such-rule\nDROP TABLE a;\n", LITE, false, &r);
	cr_expect_eq(count_rule(&r, "ban-drop-table"), 0);
	cr_expect_eq(count_rule(&r, "unused-ignore"), 1);
	const struct sg_lint_hit *h = hit_of(&r, "unused-ignore");
	cr_assert(h);
	cr_expect(strstr(h->message, "no-such-rule is not a rule schemagate knows"), "%s", h->message);
	cr_expect_eq(h->rule->severity, SG_LINT_WARNING);
	sg_lint_result_free(&r);
}

Test(lint, a_directive_inside_a_string_is_not_a_directive)
{
	struct sg_lint_result r;
	lint("INSERT INTO notes VALUES ('x -- squawk-ignore ban-drop-table');\nDROP TABLE a;\n", PG, false, &r);
	cr_expect_eq(count_rule(&r, "ban-drop-table"), 1);
	cr_expect_eq(count_rule(&r, "unused-ignore"), 0);
	sg_lint_result_free(&r);
}

Test(lint, first_line_and_characters_count_in_columns)
{
	struct sg_lint_result r;
	memset(&r, 0, sizeof(r));
	/* a single-file section starting at line 10; 'é' is one column */
	sg_lint_script("INSERT INTO t VALUES ('é'); ALTER TABLE users DROP COLUMN email;", PG, false, 10, NULL, &r);
	const struct sg_lint_hit *h = hit_of(&r, "ban-drop-column");
	cr_assert(h);
	cr_expect_eq(h->line, 10);
	cr_expect_eq(h->column, 59, "column %d (bytes would give 60)", h->column);
	sg_lint_result_free(&r);
}
