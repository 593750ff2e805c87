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
	cr_assert_eq(err.outcome, SG_OUTCOME_USAGE);
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

/* ---- offsets, routine bodies, DELIMITER $$, NO_BACKSLASH_ESCAPES (issue 10) ---- */

/* Statements plus the bytes between them are the script again, and each
 * statement's text is exactly script[start, end). */
static void assert_reproduces(const char *script, const struct sg_statement_list *l)
{
	size_t len = strlen(script), at = 0;
	for (size_t i = 0; i < l->count; i++) {
		const struct sg_statement *st = &l->items[i];
		cr_assert(st->start >= at && st->start < st->end && st->end <= st->delim_end && st->delim_end <= len,
			  "statement %zu: [%zu, %zu, %zu) after %zu", i, st->start, st->end, st->delim_end, at);
		cr_assert_eq(strlen(st->sql), st->end - st->start);
		cr_assert(strncmp(script + st->start, st->sql, st->end - st->start) == 0, "statement %zu", i);
		at = st->delim_end;
	}
}

Test(sqlsplit, offsets_reproduce_the_script)
{
	const char *script = "-- head\nCREATE TABLE a (x int);  -- c\n\n/* b */ INSERT INTO a VALUES (';');\nSELECT 1";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 3);
	assert_reproduces(script, &l);
	cr_assert_eq(l.items[0].start, 8);
	cr_assert_eq(script[l.items[0].end], ';');
	cr_assert_eq(l.items[0].delim_end, l.items[0].end + 1);
	cr_assert_eq(l.items[2].delim_end, strlen(script));
	sg_statement_list_free(&l);
}

Test(sqlsplit, lines_count_from_the_first_line_given)
{
	struct sg_statement_list l;
	struct sg_error err = {0};
	cr_assert_eq(sg_sql_split_at("SELECT 1;\n\nSELECT 2;", SG_ENGINE_SQLITE, 7, &l, &err), 0);
	cr_assert_eq(l.items[0].line, 7);
	cr_assert_eq(l.items[1].line, 9);
	sg_statement_list_free(&l);
	cr_assert_eq(sg_sql_split_at("SELECT 1;\n'oops", SG_ENGINE_SQLITE, 10, &l, &err), -1);
	cr_assert(strstr(err.msg, "line 11") != NULL, "%s", err.msg);
}

Test(sqlsplit, mysql_delimiter_dollar_dollar_glued_to_end)
{
	/* the most common MySQL form: "$" is an identifier character, yet END$$ ends the body */
	const char *script = "DELIMITER $$\n"
			     "CREATE PROCEDURE p()\n"
			     "BEGIN\n"
			     "  SELECT 'a;b';\n"
			     "END$$\n"
			     "CREATE FUNCTION f() RETURNS INT DETERMINISTIC\n"
			     "BEGIN\n"
			     "  RETURN 1;\n"
			     "END $$\n"
			     "DELIMITER ;\n"
			     "CALL p();\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 3, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[0].sql, "CREATE PROCEDURE p()\nBEGIN\n  SELECT 'a;b';\nEND");
	cr_assert_eq(l.items[0].line, 2);
	cr_assert_str_eq(l.items[1].sql, "CREATE FUNCTION f() RETURNS INT DETERMINISTIC\nBEGIN\n  RETURN 1;\nEND");
	cr_assert_str_eq(l.items[2].sql, "CALL p()");
	assert_reproduces(script, &l);
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_trigger_without_delimiter_stays_whole)
{
	/* golang-migrate sends the file as one multi-statement query: the server
	 * parses BEGIN ... END, so the client split must too */
	const char *script = "CREATE TABLE t (a INT, b INT);\n"
			     "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW\n"
			     "BEGIN\n"
			     "  SET NEW.a = COALESCE(NEW.a, 1);\n"
			     "  IF NEW.b IS NULL THEN\n"
			     "    SET NEW.b = 2;\n"
			     "  END IF;\n"
			     "END;\n"
			     "CREATE DEFINER=`root`@`%` TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW SET NEW.b = 3;\n"
			     "INSERT INTO t (a) VALUES (5);\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 4, "got %zu statements", l.count);
	cr_assert(strncmp(l.items[1].sql, "CREATE TRIGGER t_bi", 19) == 0);
	size_t n = strlen(l.items[1].sql);
	cr_assert(strcmp(l.items[1].sql + n - 7, "END IF;\nEND") == 0 || strstr(l.items[1].sql, "END IF;\nEND"),
		  "%s", l.items[1].sql);
	cr_assert_str_eq(l.items[2].sql, "CREATE DEFINER=`root`@`%` TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW SET NEW.b = 3");
	cr_assert_eq(l.items[3].line, 10);
	assert_reproduces(script, &l);
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_procedure_with_every_compound_statement)
{
	const char *script = "CREATE PROCEDURE p(IN n INT)\n"
			     "BEGIN\n"
			     "  DECLARE i INT DEFAULT 0;\n"
			     "  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN SET i = -1; END;\n"
			     "  l1: LOOP\n"
			     "    SET i = i + 1;\n"
			     "    IF i > n THEN LEAVE l1; ELSEIF i = 2 THEN ITERATE l1; END IF;\n"
			     "  END LOOP l1;\n"
			     "  SELECT IF(i > 1, 'a;b', CASE WHEN i = 2 THEN 'c' ELSE 'd' END);\n"
			     "  WHILE i > 0 DO SET i = i - 1; END WHILE;\n"
			     "  REPEAT SET i = i + 1; UNTIL i > 3 END REPEAT;\n"
			     "  CASE i WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE;\n"
			     "END;\n"
			     "SELECT REPEAT('x', 3);\n"
			     "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN IF(1, 2, 3);\n"
			     "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM t; DELETE FROM u; END;\n"
			     "CREATE TABLE t2 (`begin` INT, `end` INT);\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 5, "got %zu statements: %s", l.count, l.count ? l.items[0].sql : "");
	cr_assert(strncmp(l.items[0].sql, "CREATE PROCEDURE", 16) == 0);
	cr_assert(strstr(l.items[0].sql, "END CASE;\nEND") != NULL, "%s", l.items[0].sql);
	cr_assert_str_eq(l.items[1].sql, "SELECT REPEAT('x', 3)");
	cr_assert_str_eq(l.items[2].sql, "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN IF(1, 2, 3)");
	cr_assert_str_eq(l.items[3].sql, "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM t; DELETE FROM u; END");
	cr_assert_eq(l.items[4].line, 17);
	sg_statement_list_free(&l);
}

Test(sqlsplit, mariadb_begin_not_atomic_block)
{
	const char *script = "BEGIN NOT ATOMIC\n  DECLARE x INT DEFAULT 1;\n  IF x THEN SELECT 1; END IF;\nEND;\nSELECT 2;";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 2, "got %zu statements", l.count);
	cr_assert_eq(sg_statement_tx_control(l.items[0].sql, SG_ENGINE_MYSQL), SG_TXC_NONE);
	sg_statement_list_free(&l);
}

Test(sqlsplit, postgres_begin_atomic_body_stays_whole)
{
	const char *script = "CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int LANGUAGE SQL\n"
			     "BEGIN ATOMIC\n"
			     "  SELECT a + b;\n"
			     "  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n"
			     "END;\n"
			     "CREATE PROCEDURE ins(x int) LANGUAGE SQL BEGIN ATOMIC INSERT INTO t VALUES (x); END;\n"
			     "CREATE TABLE t (a int);\n"
			     "SELECT CASE WHEN true THEN 1 END;\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_POSTGRES);
	cr_assert_eq(l.count, 4, "got %zu statements", l.count);
	cr_assert(strstr(l.items[0].sql, "ELSE 0 END;\nEND") != NULL, "%s", l.items[0].sql);
	cr_assert_str_eq(l.items[1].sql, "CREATE PROCEDURE ins(x int) LANGUAGE SQL BEGIN ATOMIC INSERT INTO t VALUES (x); END");
	cr_assert_str_eq(l.items[2].sql, "CREATE TABLE t (a int)");
	sg_statement_list_free(&l);
}

Test(sqlsplit, mysql_no_backslash_escapes_makes_backslash_literal)
{
	const char *script = "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES';\n"
			     "INSERT INTO t VALUES ('C:\\');\n"
			     "SELECT 2;\n";
	struct sg_statement_list l = split_ok(script, SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 3, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[1].sql, "INSERT INTO t VALUES ('C:\\')");
	sg_statement_list_free(&l);
	/* a literal mode without it turns escapes back on; an expression keeps the rule */
	l = split_ok("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES');\nSELECT '\\';\n"
		     "SET @@sql_mode = @x;\nSELECT '\\';\nSET sql_mode = 'ANSI';\nSELECT 'it\\'s';\n",
		     SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 6, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[5].sql, "SELECT 'it\\'s'");
	sg_statement_list_free(&l);
	/* without NO_BACKSLASH_ESCAPES the same insert is an unterminated string */
	struct sg_error err = {0};
	cr_assert_eq(sg_sql_split("INSERT INTO t VALUES ('C:\\');\n", SG_ENGINE_MYSQL, &l, &err), -1);
}

Test(sqlsplit, transaction_control_is_classified)
{
	static const struct {
		const char *sql;
		enum sg_engine engine;
		enum sg_tx_control want;
	} cases[] = {
		{"BEGIN", SG_ENGINE_POSTGRES, SG_TXC_BEGIN},
		{"begin work", SG_ENGINE_MYSQL, SG_TXC_BEGIN},
		{"BEGIN TRANSACTION", SG_ENGINE_SQLITE, SG_TXC_BEGIN},
		{"START TRANSACTION", SG_ENGINE_MYSQL, SG_TXC_BEGIN},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", SG_ENGINE_POSTGRES, SG_TXC_OTHER},
		{"BEGIN IMMEDIATE", SG_ENGINE_SQLITE, SG_TXC_OTHER},
		{"START TRANSACTION READ ONLY", SG_ENGINE_MYSQL, SG_TXC_OTHER},
		{"COMMIT", SG_ENGINE_POSTGRES, SG_TXC_COMMIT},
		{"COMMIT WORK", SG_ENGINE_MYSQL, SG_TXC_COMMIT},
		{"END", SG_ENGINE_POSTGRES, SG_TXC_COMMIT},
		{"END TRANSACTION", SG_ENGINE_SQLITE, SG_TXC_COMMIT},
		{"END", SG_ENGINE_MYSQL, SG_TXC_NONE},
		{"COMMIT AND CHAIN", SG_ENGINE_MYSQL, SG_TXC_OTHER},
		{"ROLLBACK", SG_ENGINE_POSTGRES, SG_TXC_OTHER},
		{"SAVEPOINT a", SG_ENGINE_POSTGRES, SG_TXC_OTHER},
		{"RELEASE SAVEPOINT a", SG_ENGINE_SQLITE, SG_TXC_OTHER},
		{"SET autocommit = 1", SG_ENGINE_MYSQL, SG_TXC_OTHER},
		{"SET @@session.autocommit = 1", SG_ENGINE_MYSQL, SG_TXC_OTHER},
		{"SET @autocommit_saved = 1", SG_ENGINE_MYSQL, SG_TXC_NONE},
		{"BEGIN NOT ATOMIC SELECT 1; END", SG_ENGINE_MYSQL, SG_TXC_NONE},
		{"START SLAVE", SG_ENGINE_MYSQL, SG_TXC_NONE},
		{"CREATE TABLE begin_log (a int)", SG_ENGINE_POSTGRES, SG_TXC_NONE},
		{"/* note */ COMMIT", SG_ENGINE_POSTGRES, SG_TXC_COMMIT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(sg_statement_tx_control(cases[i].sql, cases[i].engine), cases[i].want, "%s", cases[i].sql);
}

Test(sqlsplit, mysql_qualified_begin_and_end_are_columns)
{
	/* NEW.begin in a trigger opened a block that never closed */
	struct sg_statement_list l = split_ok("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.begin = 1;\n"
					      "SELECT 2;\n", SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 2, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[0].sql, "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.begin = 1");
	sg_statement_list_free(&l);
	l = split_ok("CREATE PROCEDURE p() BEGIN UPDATE t SET t.end = 1; END;\nSELECT 2;", SG_ENGINE_MYSQL);
	cr_assert_eq(l.count, 2, "got %zu statements", l.count);
	cr_assert_str_eq(l.items[0].sql, "CREATE PROCEDURE p() BEGIN UPDATE t SET t.end = 1; END");
	sg_statement_list_free(&l);
}

/* The splits of script for PostgreSQL, MySQL and SQLite: identical? */
static bool engines_agree(const char *script)
{
	static const enum sg_engine engines[] = {SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE};
	struct sg_statement_list l[3];
	bool ok[3], same = true;
	for (size_t k = 0; k < 3; k++) {
		struct sg_error e = {0};
		ok[k] = sg_sql_split(script, engines[k], &l[k], &e) == 0;
	}
	for (size_t k = 1; k < 3; k++) {
		same &= ok[k] == ok[0] && l[k].count == l[0].count;
		for (size_t i = 0; same && i < l[k].count; i++)
			same &= l[k].items[i].start == l[0].items[i].start && l[k].items[i].end == l[0].items[i].end &&
				l[k].items[i].delim_end == l[0].items[i].delim_end && l[k].items[i].line == l[0].items[i].line;
	}
	for (size_t k = 0; k < 3; k++)
		sg_statement_list_free(&l[k]);
	return same;
}

/* A neutral script is split alike by every engine (the loader splits it
 * once for all); each construct the predicate refuses is one where the
 * engines really disagree, so none of the refusals is there for nothing. */
Test(sqlsplit, engine_neutral_scripts_split_alike_and_each_refused_construct_splits_differently)
{
	static const char *const neutral[] = {
		"CREATE TABLE t (id bigint PRIMARY KEY, name varchar(100) NOT NULL);\nCREATE INDEX t_name ON t (name);\n",
		"-- a comment; with a semicolon\nINSERT INTO t VALUES (1, 'a;b', 'it''s');\n\nDROP TABLE u;",
		"ALTER TABLE t ADD COLUMN begin_at date; -- begin_at is not BEGIN\nUPDATE t SET x = CASE WHEN y THEN 1 END;",
		"",
		"--\nSELECT 1",
		"INSERT INTO \"t;begin\" VALUES (\"a;\"\"b\");",   /* a string (MySQL), an identifier (the others) */
	};
	for (size_t i = 0; i < sizeof(neutral) / sizeof(neutral[0]); i++) {
		cr_expect(sg_sql_engine_neutral(neutral[i]), "neutral: %s", neutral[i]);
		cr_expect(engines_agree(neutral[i]), "the engines agree on: %s", neutral[i]);
	}
	static const char *const disagree[] = {
		"INSERT INTO t VALUES ('a\\';b');",                                  /* backslash escapes (MySQL) */
		"INSERT INTO t VALUES ('C:\\');\nSELECT 1;",                          /* (found by the fuzzer) */
		"SELECT `a;b`;SELECT 1;",                                             /* backticks (not PostgreSQL) */
		"SELECT [a;b];SELECT 1;",                                             /* brackets (SQLite) */
		"SELECT $x$a;b$x$;SELECT 1;",                                         /* dollar quotes (PostgreSQL) */
		"SELECT 1; # a;b\nSELECT 2;",                                         /* hash comments (MySQL) */
		"SELECT 1 /* a /* b */ ; */;SELECT 2;",                               /* nested comments (PostgreSQL) */
		"SELECT 1; --\ra;b\nSELECT 2;",                                       /* CR ends a comment (PostgreSQL) */
		"SELECT 1 --x;\nSELECT 2;",                                           /* "--x" is no comment (MySQL) */
		"CREATE RULE r AS ON INSERT TO t DO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));", /* psql */
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = 1; END;", /* trigger bodies */
		"CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END;",        /* routine bodies */
		"DELIMITER //\nSELECT 1; SELECT 2//\n",                               /* the mysql client */
	};
	for (size_t i = 0; i < sizeof(disagree) / sizeof(disagree[0]); i++) {
		cr_expect(!sg_sql_engine_neutral(disagree[i]), "not neutral: %s", disagree[i]);
		cr_expect(!engines_agree(disagree[i]), "the engines disagree on: %s", disagree[i]);
	}
}
