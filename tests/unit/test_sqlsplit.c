/*
 * test_sqlsplit.c - the client-side statement splitter agrees with each
 * engine's lexer about quotes, comments, dollar quotes, DELIMITER and
 * trigger bodies.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "schemagate/sqlsplit.h"

static struct sg_statement_list split_ok(const char *script, enum sg_engine engine)
{
	struct sg_statement_list l;
	struct sg_error err = {0};
	int rc = sg_sql_split(script, engine, &l, &err);
	cr_assert_eq(rc, 0, "split failed: %s", err.msg);
	return l;
}

Test(sqlsplit, splits_simple_statements_with_lines)
{
	struct sg_statement_list l = split_ok("CREATE TABLE a (x int);\n\n  INSERT INTO a VALUES (1);\nSELECT 1",
					      SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 3);
	cr_assert_str_eq(l.items[0].sql, "CREATE TABLE a (x int)");
	cr_assert_eq(l.items[0].line, 1);
	cr_assert_str_eq(l.items[1].sql, "INSERT INTO a VALUES (1)");
	cr_assert_eq(l.items[1].line, 3);
	cr_assert_str_eq(l.items[2].sql, "SELECT 1");
	cr_assert_eq(l.items[2].line, 4);
	sg_statement_list_free(&l);
}

Test(sqlsplit, drops_empty_and_comment_only_statements)
{
	static const enum sg_engine engines[] = {SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE};
	for (size_t i = 0; i < 3; i++) {
		struct sg_statement_list l = split_ok(";;\n-- just a comment; with a semicolon\n/* block; */ ;\n  \n",
						      engines[i]);
		cr_assert_eq(l.count, 0, "engine %d: %zu statements", engines[i], l.count);
		sg_statement_list_free(&l);
	}
	struct sg_statement_list l = split_ok("", SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 0);
	sg_statement_list_free(&l);
}

Test(sqlsplit, leading_comments_are_not_part_of_the_statement)
{
	struct sg_statement_list l = split_ok("-- create it; now\n/* multi\n line; */\nCREATE TABLE t (a int); -- trailing;\n",
					      SG_ENGINE_SQLITE);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.items[0].sql, "CREATE TABLE t (a int)");
	cr_assert_eq(l.items[0].line, 4);
	sg_statement_list_free(&l);
}

Test(sqlsplit, postgres_quotes_and_comments_hide_semicolons)
{
	const char *script = "INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
			     "SELECT \"odd;name\" FROM t; -- c;\n"
			     "SELECT E'back\\'slash;';\n"
			     "/* outer /* nested; */ still comment; */ SELECT 2;\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 4);
	cr_assert_str_eq(l.items[0].sql, "INSERT INTO t VALUES ('a;b', 'it''s; fine')");
	cr_assert_str_eq(l.items[1].sql, "SELECT \"odd;name\" FROM t");
	cr_assert_str_eq(l.items[2].sql, "SELECT E'back\\'slash;'");
	cr_assert_str_eq(l.items[3].sql, "SELECT 2");
	cr_assert_eq(l.items[3].line, 4);
	sg_statement_list_free(&l);
}

Test(sqlsplit, postgres_standard_strings_treat_backslash_literally)
{
	/* standard_conforming_strings: '\' is a one-character string */
	struct sg_statement_list l = split_ok("SELECT '\\'; SELECT 2;", SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 2);
	cr_assert_str_eq(l.items[0].sql, "SELECT '\\'");
	sg_statement_list_free(&l);
}

Test(sqlsplit, postgres_dollar_quoted_function_body_stays_whole)
{
	const char *script = "CREATE FUNCTION touch() RETURNS trigger AS $body$\n"
			     "BEGIN\n"
			     "  NEW.update_time := now();\n"
			     "  RAISE NOTICE $$inner; $$;\n"
			     "  RETURN NEW;\n"
			     "END;\n"
			     "$body$ LANGUAGE plpgsql;\n"
			     "DO $$ BEGIN PERFORM 1; END $$;\n"
			     "SELECT $1, a$b FROM t;\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 3, "got %zu statements", l.count);
	cr_assert(strstr(l.items[0].sql, "RETURN NEW;") != NULL);
	cr_assert(strstr(l.items[0].sql, "LANGUAGE plpgsql") != NULL);
	cr_assert_str_eq(l.items[1].sql, "DO $$ BEGIN PERFORM 1; END $$");
	cr_assert_eq(l.items[1].line, 8);
	cr_assert_str_eq(l.items[2].sql, "SELECT $1, a$b FROM t");
	sg_statement_list_free(&l);
}

Test(sqlsplit, postgres_unterminated_dollar_quote_is_an_error)
{
	struct sg_statement_list l;
	struct sg_error err = {0};
	cr_assert_eq(sg_sql_split("SELECT 1;\nDO $x$ BEGIN; END;\n", SG_ENGINE_POSTGRES, &l, &err), -1);
	cr_assert_eq(err.exit_code, SG_EXIT_USAGE);
	cr_assert(strstr(err.msg, "line 2") != NULL, "%s", err.msg);
	cr_assert_eq(l.count, 0);
}

Test(sqlsplit, mysql_delimiter_procedure)
{
	const char *script = "CREATE TABLE t (a INT);\n"
			     "DELIMITER //\n"
			     "CREATE PROCEDURE p()\n"
			     "BEGIN\n"
			     "  INSERT INTO t VALUES (1);\n"
			     "  SELECT 'x;y';\n"
			     "END //\n"
			     "delimiter ;\n"
			     "CALL p();\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 3, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[0].sql, "CREATE TABLE t (a INT)");
	cr_assert_str_eq(l.items[1].sql, "CREATE PROCEDURE p()\nBEGIN\n  INSERT INTO t VALUES (1);\n"
					 "  SELECT 'x;y';\nEND");
	cr_assert_eq(l.items[1].line, 3);
	cr_assert_str_eq(l.items[2].sql, "CALL p()");
	cr_assert_eq(l.items[2].line, 9);
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_delimiter_column_name_is_not_a_command)
{
	/* Only a line where a statement would begin is a DELIMITER command. */
	struct sg_statement_list l = split_ok("CREATE TABLE t (\ndelimiter VARCHAR(4)\n);\nSELECT 1;", SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 2);
	cr_assert_str_eq(l.items[0].sql, "CREATE TABLE t (\ndelimiter VARCHAR(4)\n)");
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_quotes_comments_and_backticks)
{
	const char *script = "INSERT INTO `we;ird` VALUES ('it\\'s;', \"dq\\\";\", 'a''b;');\n"
			     "# hash comment; here\n"
			     "SELECT 1 -- comment; here\n"
			     ";\n"
			     "SELECT 2--1;\n"
			     "/* block; */ SELECT 3;\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 4, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[0].sql, "INSERT INTO `we;ird` VALUES ('it\\'s;', \"dq\\\";\", 'a''b;')");
	cr_assert_str_eq(l.items[1].sql, "SELECT 1 -- comment; here");
	cr_assert_eq(l.items[1].line, 3);
	/* "--1" is minus minus one in MySQL, not a comment */
	cr_assert_str_eq(l.items[2].sql, "SELECT 2--1");
	cr_assert_str_eq(l.items[3].sql, "SELECT 3");
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_executable_comment_is_a_statement)
{
	struct sg_statement_list l = split_ok("/*!40101 SET NAMES utf8mb4 */;\n/* plain */;", SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.items[0].sql, "/*!40101 SET NAMES utf8mb4 */");
	sg_statement_list_free(&l);
}

Test(sqlsplit, sqlite_trigger_body_kept_whole)
{
	const char *script = "CREATE TABLE t (a, b);\n"
			     "CREATE TEMP TRIGGER IF NOT EXISTS trg AFTER UPDATE ON t\n"
			     "BEGIN\n"
			     "  UPDATE t SET b = CASE WHEN new.a > 0 THEN 1 ELSE 0 END;\n"
			     "  INSERT INTO [log;table] VALUES ('x;y', \"c;d\", `e;f`);\n"
			     "END;\n"
			     "INSERT INTO t VALUES (1, 2);\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_SQLITE);
	cr_assert_eq(l.count, 3, "got %zu statements", l.count);
	cr_assert(strncmp(l.items[1].sql, "CREATE TEMP TRIGGER", 19) == 0);
	size_t n = strlen(l.items[1].sql);
	cr_assert(n > 3 && strcmp(l.items[1].sql + n - 3, "END") == 0, "%s", l.items[1].sql);
	cr_assert_eq(l.items[1].line, 2);
	cr_assert_str_eq(l.items[2].sql, "INSERT INTO t VALUES (1, 2)");
	cr_assert_eq(l.items[2].line, 7);
	sg_statement_list_free(&l);
}

Test(sqlsplit, sqlite_brackets_are_quotes_only_in_sqlite)
{
	struct sg_statement_list l = split_ok("SELECT [a;b] FROM t;", SG_ENGINE_SQLITE);
	cr_assert_eq(l.count, 1);
	sg_statement_list_free(&l);
	l = split_ok("SELECT arr[1];SELECT 2;", SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 2);
	sg_statement_list_free(&l);
}

Test(sqlsplit, crlf_scripts_split_like_lf)
{
	struct sg_statement_list l = split_ok("SELECT 1;\r\n-- c;\r\nSELECT 2;\r\n", SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 2);
	cr_assert_str_eq(l.items[1].sql, "SELECT 2");
	cr_assert_eq(l.items[1].line, 3);
	sg_statement_list_free(&l);
}

Test(sqlsplit, statement_head_truncates_with_ellipsis)
{
	char out[32];
	sg_statement_head("CREATE TABLE sessions (\n  id text\n)", out, sizeof(out));
	cr_assert_str_eq(out, "CREATE TABLE sessions (...");
	sg_statement_head("SELECT 1", out, sizeof(out));
	cr_assert_str_eq(out, "SELECT 1");
	char small[12];
	sg_statement_head("SELECT a_very_long_column_name FROM t", small, sizeof(small));
	cr_assert_str_eq(small, "SELECT a...");
	cr_assert_eq(strlen(small), sizeof(small) - 1);
}
