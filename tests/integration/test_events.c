/*
 * test_events.c - `schemagate events` (issue 26), through the built binary
 * against the private PostgreSQL, MariaDB and SQLite: the audit rows of a
 * run with an apply, a failure, a repair and a revert, in text and JSON,
 * filtered by --version and --since, read by a user that may only SELECT.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schemagate/common.h"
#include "sgdb.h"
#include "sgtest.h"

static bool matches(const char *re, const char *s)
{
	regex_t rx;
	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE), 0, "%s", re);
	bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return ok;
}

static void expect(struct tdb *d, struct sgt_result *r, int want, const char *what)
{
	cr_assert_eq(r->status, want, "%s on %s: exit %d, want %d\nstdout: %s\nstderr: %s", what,
		     tdb_eng_name(d->eng), r->status, want, r->out, r->err);
}

/* apply 0001; 0002 fails; 0002 fixed and applied; 0001's file edited and
 * its checksum accepted (repair); 0002 reverted. */
static void make_history(struct tdb *d)
{
	struct sgt_result r;
	sgt_write(d->mig, "0001_a.up.sql", "CREATE TABLE ev_a (x INTEGER);\n");
	sgt_write(d->mig, "0002_b.up.sql", "CREATE TABLE ev_b (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n");
	sgt_write(d->mig, "0002_b.down.sql", "DROP TABLE ev_b;\n");
	tdb_run(d, NULL, &r, "up", NULL);
	expect(d, &r, 1, "up with a failing 0002");
	sgt_result_free(&r);
	if (d->eng == ENG_MY) {
		/* MariaDB: the CREATE TABLE stayed; the row says failed */
		free(tdb_value(d, "DROP TABLE ev_b"));
		tdb_run(d, NULL, &r, "repair", "0002", "--reverted", NULL);
		expect(d, &r, 0, "repair 0002 --reverted");
		sgt_result_free(&r);
	}
	sgt_write(d->mig, "0002_b.up.sql", "CREATE TABLE ev_b (x INTEGER);\n");
	tdb_run(d, NULL, &r, "up", NULL);
	expect(d, &r, 0, "up after the fix");
	sgt_result_free(&r);
	sgt_write(d->mig, "0001_a.up.sql", "-- a comment\nCREATE TABLE ev_a (x INTEGER);\n");
	tdb_run(d, NULL, &r, "repair", "--accept-checksums", NULL);
	expect(d, &r, 0, "repair --accept-checksums");
	sgt_result_free(&r);
	tdb_run(d, NULL, &r, "down", NULL);
	expect(d, &r, 0, "down");
	sgt_result_free(&r);
}

#define AT "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}Z"
#define INSTANCE "[^ /]+/[0-9]+/[0-9a-f]{6}"

/* `events` as url, in the directory-less form an app pod would run it */
static void events(struct sgt_result *r, const char *url, const char *a1, const char *a2, const char *a3)
{
	const char *argv[] = {"--database-url", url, "--dir", "/nonexistent-dir", "events", a1, a2, a3, NULL};
	sgt_run(r, NULL, argv);
}

static void check_text(struct tdb *d, const char *text)
{
	const char *lines[] = {
		"^AT +EVENT +VERSION +OUTCOME +INSTANCE$",
		"^" AT " apply +0001 +ok +" INSTANCE "$",
		"^" AT " failure +0002 +failed +" INSTANCE "$",
		"^ {25}applying 0002_b\\.up\\.sql: .*no_such_table",
		"^" AT " apply +0002 +ok +" INSTANCE "$",
		"^" AT " repair +0001 +accept-checksum +" INSTANCE "$",
		"^" AT " revert +0002 +ok +" INSTANCE "$",
	};
	const char *p = text;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		/* each expected line appears after the one before it */
		bool found = false;
		while (*p && !found) {
			size_t n = strcspn(p, "\n");
			char *line = sg_strndup(p, n);
			found = matches(lines[i], line);
			free(line);
			p += n + (p[n] == '\n');
		}
		cr_assert(found, "%s: no line matching %s in order in:\n%s", tdb_eng_name(d->eng), lines[i], text);
	}
}

static void check_json(struct tdb *d, const char *json)
{
	const char *re = "^\\{\"database\":\"[^\"]*\",\"table\":\"schemagate_migrations\",\"events_table_exists\":true,"
			 "\"events\":\\["
			 "\\{\"at\":\"" AT "\",\"event\":\"apply\",\"version\":\"0001\",\"outcome\":\"ok\",\"instance\":\""
			 INSTANCE "\",\"detail\":\"[0-9]+ms\"\\},"
			 "\\{\"at\":\"" AT "\",\"event\":\"failure\",\"version\":\"0002\",\"outcome\":\"failed\",[^}]*"
			 "\"detail\":\"applying 0002_b\\.up\\.sql: [^}]*no_such_table[^}]*\\},"
			 ".*\\{\"at\":\"" AT "\",\"event\":\"revert\",\"version\":\"0002\",\"outcome\":\"ok\",\"instance\":\""
			 INSTANCE "\",\"detail\":null\\}\\]\\}$";
	cr_assert(matches(re, json), "%s: JSON does not match\n%s", tdb_eng_name(d->eng), json);
	cr_assert(strstr(json, "\"event\":\"repair\",\"version\":\"0001\",\"outcome\":\"accept-checksum\""),
		  "%s: no repair event:\n%s", tdb_eng_name(d->eng), json);
}

/* A login that may only SELECT (PostgreSQL, MariaDB); NULL for SQLite. */
static char *select_only_url(struct tdb *d)
{
	if (d->eng == ENG_LITE)
		return NULL;
	char *user = sg_asprintf("ro%s", d->name + 2);
	if (d->eng == ENG_PG) {
		PGconn *admin = pg_open(d->server_url);
		char *sql = sg_asprintf("CREATE ROLE %s LOGIN PASSWORD 'ro-events-pw'", user);
		PGresult *res = PQexec(admin, sql);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
		free(sql);
		PQfinish(admin);
		free(tdb_value(d, "REVOKE CREATE ON SCHEMA public FROM PUBLIC; "
				  "GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s", user));
	} else {
		free(tdb_value(d, "CREATE USER '%s'@'%%' IDENTIFIED BY 'ro-events-pw'", user));
		free(tdb_value(d, "GRANT SELECT ON `%s`.* TO '%s'@'%%'", d->name, user));
	}
	const char *at = strrchr(d->url, '@');
	const char *scheme_end = strstr(d->url, "://");
	char *url = sg_asprintf("%.*s%s:ro-events-pw%s", (int)(scheme_end + 3 - d->url), d->url, user, at);
	free(user);
	return url;
}

static void drop_select_only(struct tdb *d, const char *url)
{
	if (!url)
		return;
	const char *user = url + (strstr(url, "://") - url) + 3;
	int n = (int)strcspn(user, ":");
	if (d->eng == ENG_PG) {
		free(tdb_value(d, "DROP OWNED BY %.*s", n, user));
		PGconn *admin = pg_open(d->server_url);
		char *sql = sg_asprintf("DROP ROLE IF EXISTS %.*s", n, user);
		PQclear(PQexec(admin, sql));
		free(sql);
		PQfinish(admin);
	} else {
		free(tdb_value(d, "DROP USER IF EXISTS '%.*s'@'%%'", n, user));
	}
}

static void run_events(enum eng eng)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	make_history(&d);
	struct sgt_result r;

	events(&r, d.url, NULL, NULL, NULL);
	expect(&d, &r, 0, "events");
	check_text(&d, r.out);
	sgt_result_free(&r);

	events(&r, d.url, "--json", NULL, NULL);
	expect(&d, &r, 0, "events --json");
	check_json(&d, r.out);
	sgt_result_free(&r);

	/* --version compares numerically: 2 is 0002 */
	events(&r, d.url, "--version", "2", "--json");
	expect(&d, &r, 0, "events --version 2");
	cr_assert(!strstr(r.out, "\"version\":\"0001\"") && strstr(r.out, "\"event\":\"failure\"") &&
		  strstr(r.out, "\"event\":\"revert\""), "%s: --version 2 shows:\n%s", tdb_eng_name(eng), r.out);
	sgt_result_free(&r);

	/* --since: the future shows nothing, the last hour everything */
	events(&r, d.url, "--since", "2999-01-01", "--json");
	expect(&d, &r, 0, "events --since 2999-01-01");
	cr_assert(strstr(r.out, "\"events\":[]"), "%s: %s", tdb_eng_name(eng), r.out);
	sgt_result_free(&r);
	events(&r, d.url, "--since", "1h", NULL);
	expect(&d, &r, 0, "events --since 1h");
	check_text(&d, r.out);
	sgt_result_free(&r);

	/* a user that may only SELECT reads them too, and could write nothing */
	char *ro = select_only_url(&d);
	if (ro) {
		events(&r, ro, "--json", NULL, NULL);
		expect(&d, &r, 0, "events as a SELECT-only user");
		check_json(&d, r.out);
		sgt_result_free(&r);
		const char *argv[] = {"--database-url", ro, "--dir", d.mig, "up", NULL};
		sgt_write(d.mig, "0003_c.up.sql", "CREATE TABLE ev_c (x INTEGER);\n");
		sgt_run(&r, NULL, argv);
		cr_assert_neq(r.status, 0, "%s: the SELECT-only user could migrate:\n%s", tdb_eng_name(eng), r.err);
		sgt_result_free(&r);
		drop_select_only(&d, ro);
		free(ro);
	}
	tdb_drop(&d);
}

Test(events, run_with_apply_failure_repair_revert_postgres) { run_events(ENG_PG); }
Test(events, run_with_apply_failure_repair_revert_mariadb) { run_events(ENG_MY); }
Test(events, run_with_apply_failure_repair_revert_sqlite) { run_events(ENG_LITE); }

/* Before anything was recorded: an empty list, exit 0, nothing created. */
Test(events, no_audit_table_yet_is_empty)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	struct sgt_result r;
	/* a SQLite file that does not exist yet reads as empty, and stays absent */
	unlink(d.file);
	events(&r, d.url, "--json", NULL, NULL);
	expect(&d, &r, 0, "events on a missing file");
	cr_assert(strstr(r.out, "\"events_table_exists\":false,\"events\":[]"), "%s", r.out);
	cr_assert_neq(access(d.file, F_OK), 0, "events created %s", d.file);
	sgt_result_free(&r);
	free(tdb_value(&d, "CREATE TABLE app_t (x INTEGER)"));
	events(&r, d.url, "--json", NULL, NULL);
	expect(&d, &r, 0, "events on an empty database");
	cr_assert(strstr(r.out, "\"events_table_exists\":false,\"events\":[]"), "%s", r.out);
	cr_assert(!tdb_has_schemagate_tables(&d));
	sgt_result_free(&r);
	tdb_drop(&d);
}
