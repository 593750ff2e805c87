/*
 * test_url_password.c - the password in the URL's query string
 * (postgres://app@host/db?password=..., a form libpq and psql accept),
 * through the built binary against the private servers of tests/run.sh.
 *
 * Each test makes its own database and a role whose password holds every
 * character a URL reserves, then runs up, status --json and verify with
 * text and JSON logs and a termination log, and a failing run with a wrong
 * password: the password never shows in stdout, stderr or the termination
 * log, neither as written (percent-encoded) nor decoded.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/url.h"
#include "sgdb.h"
#include "sgtest.h"

/* Reserved and awkward characters; the role name is per test. */
#define PASSWORD "Qp s3cr@t/&=?#%'\"x:;+,[]"

static char *percent_encode(const char *s)
{
	char *out = malloc(3 * strlen(s) + 1);
	char *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			*o++ = (char)*p;
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = '\0';
	return out;
}

/* s inside '...' in SQL: quotes doubled (PASSWORD has no backslash). */
static char *sql_string(const char *s)
{
	char *out = malloc(2 * strlen(s) + 1);
	char *o = out;
	for (; *s; s++) {
		if (*s == '\'')
			*o++ = '\'';
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

struct fixture {
	struct tdb d;
	char role[80];
	char *encoded;     /* PASSWORD percent-encoded */
	char *url;         /* scheme://role@host:port/db?password=... */
	char *termlog;     /* dir/termination-log */
};

static void setup(struct fixture *fx, enum eng eng, const char *server_env)
{
	/* libpq's own sources of a password must not make the test pass */
	unsetenv("PGPASSWORD");
	setenv("PGPASSFILE", "/nonexistent/pgpass", 1);
	const char *server = sgt_require_server(server_env);
	tdb_create(&fx->d, eng, server);
	snprintf(fx->role, sizeof(fx->role), "r_%s", fx->d.name);
	char *literal = sql_string(PASSWORD);
	if (eng == ENG_PG) {
		free(tdb_value(&fx->d, "CREATE ROLE %s LOGIN PASSWORD '%s'", fx->role, literal));
		free(tdb_value(&fx->d, "ALTER DATABASE %s OWNER TO %s", fx->d.name, fx->role));
		free(tdb_value(&fx->d, "ALTER SCHEMA public OWNER TO %s", fx->role));
	} else {
		free(tdb_value(&fx->d, "CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", fx->role, literal));
		free(tdb_value(&fx->d, "GRANT ALL ON %s.* TO '%s'@'%%'", fx->d.name, fx->role));
	}
	free(literal);
	struct sg_url u;
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(fx->d.url, &u, &err), 0, "%s", err.msg);
	fx->encoded = percent_encode(PASSWORD);
	cr_assert(asprintf(&fx->url, "%s://%s@%s:%d/%s?password=%s", eng == ENG_PG ? "postgres" : "mysql", fx->role,
			   u.host, u.port, fx->d.name, fx->encoded) > 0);
	sg_url_free(&u);
	fx->termlog = sgt_path(fx->d.dir, "termination-log");
	sgt_write(fx->d.mig, "0001_create_t.up.sql", "CREATE TABLE qp_t (id INT);\n");
	sgt_write(fx->d.mig, "0001_create_t.down.sql", "DROP TABLE qp_t;\n");
}

static void teardown(struct fixture *fx, enum eng eng)
{
	char *server = strdup(fx->d.server_url);
	tdb_drop(&fx->d);
	if (eng == ENG_PG) {
		PGconn *c = pg_open(server);
		char sql[128];
		snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", fx->role);
		PQclear(PQexec(c, sql));
		PQfinish(c);
	} else {
		MYSQL *m = my_open(server, NULL);
		char sql[128];
		snprintf(sql, sizeof(sql), "DROP USER IF EXISTS '%s'@'%%'", fx->role);
		mysql_query(m, sql);
		mysql_close(m);
	}
	free(server);
	free(fx->encoded);
	free(fx->url);
	free(fx->termlog);
}

/* Neither form of the password in any of the run's outputs. */
static void assert_hidden(struct fixture *fx, struct sgt_result *r, const char *what)
{
	char *term = sgt_slurp(fx->termlog);
	const char *outputs[] = { r->out, r->err, term ? term : "" };
	const char *names[] = { "stdout", "stderr", "the termination log" };
	for (int i = 0; i < 3; i++) {
		cr_assert_null(strstr(outputs[i], PASSWORD), "%s: %s shows the password: %s", what, names[i], outputs[i]);
		cr_assert_null(strstr(outputs[i], fx->encoded), "%s: %s shows the encoded password: %s", what, names[i],
			       outputs[i]);
		cr_assert_null(strstr(outputs[i], "s3cr"), "%s: %s shows part of the password: %s", what, names[i],
			       outputs[i]);
	}
	free(term);
}

static void run(struct fixture *fx, struct sgt_result *r, const char *url, const char *a1, const char *a2,
		const char *a3)
{
	const char *argv[] = { "--database-url", url, "--dir", fx->d.mig, "--termination-log", fx->termlog,
			       "-v", a1, a2, a3, NULL };
	sgt_run(r, NULL, argv);
}

static void query_password_connects_and_is_never_printed(enum eng eng, const char *server_env)
{
	struct fixture fx;
	setup(&fx, eng, server_env);
	struct sgt_result r;

	run(&fx, &r, fx.url, "up", NULL, NULL);
	cr_assert_eq(r.status, 0, "up with ?password= exited %d: %s", r.status, r.err);
	assert_hidden(&fx, &r, "up");
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(&fx.d, "SELECT count(*) FROM schemagate_migrations"), 1);

	run(&fx, &r, fx.url, "status", "--json", NULL);
	cr_assert_eq(r.status, 0, "status: %s", r.err);
	cr_assert(strstr(r.out, "0001"), "%s", r.out);
	assert_hidden(&fx, &r, "status --json");
	sgt_result_free(&r);

	run(&fx, &r, fx.url, "--log-format", "json", "verify");
	cr_assert_eq(r.status, 0, "verify: %s", r.err);
	assert_hidden(&fx, &r, "verify, JSON log");
	sgt_result_free(&r);

	/* a wrong password: refused by the server, exit 5, still hidden */
	char *wrong = strdup(fx.url);
	char *q = strstr(wrong, "?password=") + strlen("?password=");
	q[0] = q[0] == 'X' ? 'Y' : 'X';
	run(&fx, &r, wrong, "--connect-timeout", "2s", "verify");
	cr_assert_eq(r.status, 5, "a wrong ?password= exited %d: %s", r.status, r.err);
	assert_hidden(&fx, &r, "wrong password");
	char *term = sgt_slurp(fx.termlog);
	cr_assert(term && term[0], "no termination log for the failure");
	free(term);
	sgt_result_free(&r);
	free(wrong);

	teardown(&fx, eng);
}

Test(url_password, postgres_query_password_connects_and_is_never_printed, .timeout = 120)
{
	query_password_connects_and_is_never_printed(ENG_PG, "SG_TEST_PG_URL");
}

Test(url_password, mysql_query_password_connects_and_is_never_printed, .timeout = 120)
{
	query_password_connects_and_is_never_printed(ENG_MY, "SG_TEST_MYSQL_URL");
}

/* Both the user info and the query name a password: refused before any
 * connection (exit 2), showing neither. */
Test(url_password, two_passwords_are_a_usage_error, .timeout = 60)
{
	struct fixture fx;
	setup(&fx, ENG_PG, "SG_TEST_PG_URL");
	char *url = NULL;
	char *at = strchr(fx.url, '@');
	cr_assert(asprintf(&url, "%.*s:other-pw-1%s", (int)(at - fx.url), fx.url, at) > 0);
	struct sgt_result r;
	run(&fx, &r, url, "up", NULL, NULL);
	cr_assert_eq(r.status, 2, "exited %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "password is given twice"), "%s", r.err);
	cr_assert_null(strstr(r.err, "other-pw-1"), "%s", r.err);
	assert_hidden(&fx, &r, "two passwords");
	sgt_result_free(&r);
	free(url);
	teardown(&fx, ENG_PG);
}
