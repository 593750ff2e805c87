/*
 * test_url.c - database URL parsing and the redacted form used in messages.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/log.h"
#include "schemagate/url.h"

static struct sg_url parse_ok(const char *text)
{
	struct sg_url url;
	struct sg_error err = {0};
	int rc = sg_url_parse(text, &url, &err);
	cr_assert_eq(rc, 0, "parsing %s failed: %s", text, err.msg);
	return url;
}

static struct sg_error parse_fails(const char *text)
{
	struct sg_url url;
	struct sg_error err = {0};
	int rc = sg_url_parse(text, &url, &err);
	cr_assert_eq(rc, -1, "parsing %s should fail", text);
	cr_assert_eq(err.outcome, SG_OUTCOME_USAGE);
	cr_assert_neq(err.msg[0], '\0');
	return err;
}

Test(url, postgres_with_percent_encoded_password_and_params)
{
	struct sg_url u = parse_ok("postgres://u:p%40ss%3Aw%2Frd@h:5433/db?sslmode=require");
	cr_assert_eq(u.engine, SG_ENGINE_POSTGRES);
	cr_assert_str_eq(u.scheme, "postgres");
	cr_assert_str_eq(u.user, "u");
	cr_assert_str_eq(u.password, "p@ss:w/rd");
	cr_assert_str_eq(u.host, "h");
	cr_assert_eq(u.port, 5433);
	cr_assert_str_eq(u.database, "db");
	cr_assert_null(u.path);
	cr_assert_eq(u.nparams, 1);
	cr_assert_str_eq(sg_url_param(&u, "sslmode"), "require");
	cr_assert_null(sg_url_param(&u, "sslrootcert"));
	cr_assert_str_eq(u.redacted, "postgres://u:***@h:5433/db?sslmode=require");
	sg_url_free(&u);
}

Test(url, postgresql_without_user_or_port)
{
	struct sg_url u = parse_ok("postgresql://localhost/app");
	cr_assert_eq(u.engine, SG_ENGINE_POSTGRES);
	cr_assert_str_eq(u.scheme, "postgresql");
	cr_assert_null(u.user);
	cr_assert_null(u.password);
	cr_assert_str_eq(u.host, "localhost");
	cr_assert_eq(u.port, 0);
	cr_assert_str_eq(u.database, "app");
	cr_assert_str_eq(u.redacted, "postgresql://localhost/app");
	sg_url_free(&u);
}

Test(url, user_without_password_has_no_mask)
{
	struct sg_url u = parse_ok("postgres://reader@db.internal/app");
	cr_assert_str_eq(u.user, "reader");
	cr_assert_null(u.password);
	cr_assert_str_eq(u.redacted, "postgres://reader@db.internal/app");
	sg_url_free(&u);
}

Test(url, empty_user_with_password)
{
	struct sg_url u = parse_ok("postgres://:pw123@h/db");
	cr_assert_null(u.user);
	cr_assert_str_eq(u.password, "pw123");
	cr_assert_str_eq(u.redacted, "postgres://:***@h/db");
	sg_url_free(&u);
}

Test(url, raw_at_sign_in_password_uses_the_last_at)
{
	struct sg_url u = parse_ok("mysql://app:a@b@db:3307/shop");
	cr_assert_str_eq(u.user, "app");
	cr_assert_str_eq(u.password, "a@b");
	cr_assert_str_eq(u.host, "db");
	cr_assert_eq(u.port, 3307);
	sg_url_free(&u);
}

Test(url, mysql_tls_params_are_decoded)
{
	struct sg_url u = parse_ok("mysql://root:pw@127.0.0.1:3306/shop?ssl-mode=REQUIRED&ssl-ca=%2Fetc%2Fca.pem");
	cr_assert_eq(u.engine, SG_ENGINE_MYSQL);
	cr_assert_str_eq(u.host, "127.0.0.1");
	cr_assert_eq(u.port, 3306);
	cr_assert_str_eq(u.database, "shop");
	cr_assert_eq(u.nparams, 2);
	cr_assert_str_eq(sg_url_param(&u, "ssl-mode"), "REQUIRED");
	cr_assert_str_eq(sg_url_param(&u, "ssl-ca"), "/etc/ca.pem");
	sg_url_free(&u);
}

Test(url, mariadb_is_the_mysql_engine)
{
	struct sg_url u = parse_ok("mariadb://u:p@h/db");
	cr_assert_eq(u.engine, SG_ENGINE_MYSQL);
	cr_assert_str_eq(u.scheme, "mariadb");
	cr_assert_str_eq(sg_engine_name(u.engine), "mysql");
	cr_assert_str_eq(u.redacted, "mariadb://u:***@h/db");
	sg_url_free(&u);
}

Test(url, engine_names)
{
	cr_assert_str_eq(sg_engine_name(SG_ENGINE_POSTGRES), "postgres");
	cr_assert_str_eq(sg_engine_name(SG_ENGINE_MYSQL), "mysql");
	cr_assert_str_eq(sg_engine_name(SG_ENGINE_SQLITE), "sqlite");
}

Test(url, scheme_is_case_insensitive)
{
	struct sg_url u = parse_ok("POSTGRES://h/db");
	cr_assert_eq(u.engine, SG_ENGINE_POSTGRES);
	cr_assert_str_eq(u.scheme, "postgres");
	sg_url_free(&u);
}

Test(url, ipv6_host_with_port)
{
	struct sg_url u = parse_ok("postgres://u:secret@[::1]:6432/db");
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 6432);
	cr_assert_str_eq(u.database, "db");
	cr_assert_str_eq(u.redacted, "postgres://u:***@[::1]:6432/db");
	sg_url_free(&u);
}

Test(url, ipv6_host_without_port_and_zone)
{
	struct sg_url u = parse_ok("postgres://[fe80::1%25eth0]/db");
	cr_assert_str_eq(u.host, "fe80::1%eth0");
	cr_assert_eq(u.port, 0);
	sg_url_free(&u);
}

Test(url, unterminated_ipv6_is_an_error)
{
	parse_fails("postgres://[::1/db");
}

Test(url, postgres_socket_directory_as_encoded_host)
{
	struct sg_url u = parse_ok("postgres://app@%2Fvar%2Frun%2Fpostgresql/app");
	cr_assert_str_eq(u.host, "/var/run/postgresql");
	sg_url_free(&u);
}

Test(url, host_less_url_leaves_host_null)
{
	struct sg_url u = parse_ok("postgres:///app?host=/tmp");
	cr_assert_null(u.host);
	cr_assert_str_eq(u.database, "app");
	cr_assert_str_eq(sg_url_param(&u, "host"), "/tmp");
	sg_url_free(&u);
}

Test(url, bad_ports_are_errors)
{
	parse_fails("postgres://h:99999/db");
	parse_fails("postgres://h:0/db");
	parse_fails("postgres://h:54a2/db");
	parse_fails("postgres://h:/db");
}

Test(url, sqlite_relative_path)
{
	struct sg_url u = parse_ok("sqlite:app.db");
	cr_assert_eq(u.engine, SG_ENGINE_SQLITE);
	cr_assert_str_eq(u.path, "app.db");
	cr_assert_null(u.host);
	cr_assert_str_eq(u.redacted, "sqlite:app.db");
	sg_url_free(&u);

	u = parse_ok("sqlite:data/app.db");
	cr_assert_str_eq(u.path, "data/app.db");
	sg_url_free(&u);
}

Test(url, sqlite_absolute_path_forms)
{
	struct sg_url u = parse_ok("sqlite:///abs/x.db");
	cr_assert_str_eq(u.path, "/abs/x.db");
	sg_url_free(&u);

	u = parse_ok("sqlite:/abs/x.db");
	cr_assert_str_eq(u.path, "/abs/x.db");
	sg_url_free(&u);
}

Test(url, sqlite_double_slash_is_relative)
{
	struct sg_url u = parse_ok("sqlite://rel/x.db");
	cr_assert_str_eq(u.path, "rel/x.db");
	sg_url_free(&u);
}

Test(url, sqlite_query_params)
{
	struct sg_url u = parse_ok("sqlite:///var/lib/app.db?mode=rwc&_busy_timeout=5000");
	cr_assert_str_eq(u.path, "/var/lib/app.db");
	cr_assert_eq(u.nparams, 2);
	cr_assert_str_eq(sg_url_param(&u, "mode"), "rwc");
	cr_assert_str_eq(sg_url_param(&u, "_busy_timeout"), "5000");
	sg_url_free(&u);
}

Test(url, sqlite_empty_path_is_an_error)
{
	parse_fails("sqlite:");
	parse_fails("sqlite://");
	parse_fails("sqlite:?mode=ro");
}

Test(url, unknown_scheme_names_it_and_hides_the_password)
{
	struct sg_error err = parse_fails("oracle://scott:tiger99@h/db");
	cr_assert(strstr(err.msg, "'oracle'"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "tiger99"), "%s", err.msg);
}

Test(url, not_a_url_is_an_error)
{
	parse_fails("");
	parse_fails("just-a-hostname");
	parse_fails("postgres:h/db");
}

Test(url, malformed_percent_escapes_are_errors_without_leaking)
{
	struct sg_error err = parse_fails("postgres://u:p%4Gzz@h/db");
	cr_assert(strstr(err.msg, "password"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "p%4Gzz"), "%s", err.msg);
	parse_fails("postgres://u:p%4@h/db");
	parse_fails("postgres://h/d%zzb");
	parse_fails("postgres://h/db?k=%");
}

Test(url, password_query_param_is_masked_in_redacted)
{
	struct sg_url u = parse_ok("postgres://h/db?sslmode=disable&password=s3cr%26t");
	cr_assert_str_eq(u.password, "s3cr&t");
	cr_assert_null(strstr(u.redacted, "s3cr"), "%s", u.redacted);
	cr_assert_str_eq(u.redacted, "postgres://h/db?sslmode=disable&password=***");
	sg_url_free(&u);
}

/* libpq and psql accept postgres://app@host/db?password=secret: it is the
 * URL's password, for every driver, and no longer a parameter. */
Test(url, password_in_the_query_string_is_the_password)
{
	struct sg_url u = parse_ok("postgres://app@host/db?password=secret&sslmode=disable");
	cr_assert_str_eq(u.user, "app");
	cr_assert_str_eq(u.password, "secret");
	cr_assert_null(sg_url_param(&u, "password"));
	cr_assert_str_eq(sg_url_param(&u, "sslmode"), "disable");
	cr_assert_eq(u.nparams, 1);
	cr_assert_str_eq(u.redacted, "postgres://app@host/db?password=***&sslmode=disable");
	sg_url_free(&u);

	u = parse_ok("mysql://app@h/db?password=p%40ss");
	cr_assert_str_eq(u.password, "p@ss");
	cr_assert_eq(u.nparams, 0);
	sg_url_free(&u);
}

Test(url, two_passwords_are_refused_without_showing_either)
{
	struct sg_error e = parse_fails("postgres://app:first1@host/db?password=second2");
	cr_assert(strstr(e.msg, "password is given twice"), "%s", e.msg);
	cr_assert_null(strstr(e.msg, "first1"), "%s", e.msg);
	cr_assert_null(strstr(e.msg, "second2"), "%s", e.msg);
	e = parse_fails("postgres://app@host/db?password=first1&password=second2");
	cr_assert_null(strstr(e.msg, "first1"), "%s", e.msg);
	cr_assert_null(strstr(e.msg, "second2"), "%s", e.msg);
}

Test(url, sqlite_keeps_a_password_param_as_a_param)
{
	struct sg_url u = parse_ok("sqlite:app.db?password=x");
	cr_assert_null(u.password);
	cr_assert_str_eq(sg_url_param(&u, "password"), "x");
	sg_url_free(&u);
}

Test(url, register_secrets_covers_the_password_and_password_like_params)
{
	struct sg_url u = parse_ok("postgres://app@h/db?password=qpass1&sslpassword=keypass2&sslmode=require");
	sg_url_register_secrets(&u);
	char out[256];
	sg_redact("libpq: qpass1 keypass2 require", out, sizeof(out));
	cr_assert_str_eq(out, "libpq: *** *** require");
	sg_url_free(&u);
}

Test(url, repeated_param_last_wins)
{
	struct sg_url u = parse_ok("postgres://h/db?sslmode=disable&&sslmode=require&flag");
	cr_assert_str_eq(sg_url_param(&u, "sslmode"), "require");
	cr_assert_str_eq(sg_url_param(&u, "flag"), "");
	sg_url_free(&u);
}

Test(url, percent_decode)
{
	char *s = sg_percent_decode("a%20b%2fc", 9);
	cr_assert_str_eq(s, "a b/c");
	free(s);
	s = sg_percent_decode("abc%41xyz", 6);   /* only the first 6 bytes */
	cr_assert_str_eq(s, "abcA");
	free(s);
	cr_assert_null(sg_percent_decode("%zz", 3));
	cr_assert_null(sg_percent_decode("%4", 2));
	cr_assert_null(sg_percent_decode("x%00y", 5));
}

Test(url, free_is_idempotent_and_failed_parse_leaves_nothing)
{
	struct sg_url u = parse_ok("postgres://u:p@h/db");
	sg_url_free(&u);
	sg_url_free(&u);
	cr_assert_null(u.password);

	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse("postgres://u:p@h:bad/db", &u, &err), -1);
	cr_assert_null(u.user);
	cr_assert_null(u.password);
	cr_assert_null(u.redacted);
}

/* ---- libpq's list of hosts (issue 22) ----------------------------------- */

Test(url, libpq_host_list_with_ports)
{
	struct sg_url u = parse_ok("postgresql://u:p@127.0.0.1:5441,127.0.0.1:5442/db?target_session_attrs=read-write");
	cr_assert_eq(u.nhosts, 2);
	cr_assert_str_eq(u.hosts[0].host, "127.0.0.1");
	cr_assert_eq(u.hosts[0].port, 5441);
	cr_assert_str_eq(u.hosts[1].host, "127.0.0.1");
	cr_assert_eq(u.hosts[1].port, 5442);
	/* host and port are the first entry's */
	cr_assert_str_eq(u.host, "127.0.0.1");
	cr_assert_eq(u.port, 5441);
	cr_assert_str_eq(u.database, "db");
	cr_assert_str_eq(sg_url_param(&u, "target_session_attrs"), "read-write");
	cr_assert_str_eq(u.redacted,
			 "postgresql://u:***@127.0.0.1:5441,127.0.0.1:5442/db?target_session_attrs=read-write");
	sg_url_free(&u);
}

Test(url, libpq_host_list_with_ipv6_and_missing_ports)
{
	struct sg_url u = parse_ok("postgres://u:p@[::1]:5441,db-b,[fe80::1]/app");
	cr_assert_eq(u.nhosts, 3);
	cr_assert_str_eq(u.hosts[0].host, "::1");
	cr_assert_eq(u.hosts[0].port, 5441);
	cr_assert_str_eq(u.hosts[1].host, "db-b");
	cr_assert_eq(u.hosts[1].port, 0);
	cr_assert_str_eq(u.hosts[2].host, "fe80::1");
	cr_assert_eq(u.hosts[2].port, 0);
	cr_assert_str_eq(u.redacted, "postgres://u:***@[::1]:5441,db-b,[fe80::1]/app");
	sg_url_free(&u);
}

Test(url, host_list_errors)
{
	struct sg_error e = parse_fails("postgres://u:p@a:1,,b:2/db");
	cr_assert(strstr(e.msg, "empty entry in the list of hosts"), "%s", e.msg);
	e = parse_fails("postgres://u:p@a:1,b:x/db");
	cr_assert(strstr(e.msg, "port"), "%s", e.msg);
	/* MariaDB Connector/C has no list of hosts: refused, not half-used */
	e = parse_fails("mysql://u:p@a:3306,b:3306/db");
	cr_assert(strstr(e.msg, "PostgreSQL"), "%s", e.msg);
}

/* ---- passwords pasted without percent-encoding (issue 22) --------------- */

/* Nothing of the password may show: not as a host, a port, or a path. */
static void refused_without_a_piece_of(const char *text, const char *const *pieces)
{
	struct sg_error e = parse_fails(text);
	cr_assert(strstr(e.msg, "percent-encode"), "%s", e.msg);
	for (const char *const *p = pieces; *p; p++)
		cr_assert_null(strstr(e.msg, *p), "'%s' shows in: %s", *p, e.msg);
}

Test(url, unencoded_slash_in_the_password_is_refused_without_leaking)
{
	/* the two cases: "ss:w" became host and port, "cret" a host */
	refused_without_a_piece_of("postgres://sp_user:p@ss:w/ord@127.0.0.1/app",
				   (const char *const[]){ "ss:w", "w/ord", "p@ss", NULL });
	refused_without_a_piece_of("mysql://app:se@cret/xyz@127.0.0.1:3306/shop",
				   (const char *const[]){ "cret", "xyz", NULL });
	/* a '?' ends the host part just the same */
	refused_without_a_piece_of("postgres://u:pa?ss9@127.0.0.1/app", (const char *const[]){ "ss9", NULL });
}

Test(url, redacting_a_refused_url_hides_everything_after_the_scheme)
{
	char out[256];
	sg_url_redact_text("postgres://sp_user:p@ss:w/ord@127.0.0.1/app", out, sizeof(out));
	cr_assert_str_eq(out, "postgres://***");
	/* a parseable URL keeps its shape */
	sg_url_redact_text("postgres://u:p@ss@h/db", out, sizeof(out));
	cr_assert_str_eq(out, "postgres://u:***@h/db");
}

Test(url, encoded_at_after_the_host_is_fine)
{
	struct sg_url u = parse_ok("postgres://u:p%2Fw@h/db%40x?application_name=a%40b");
	cr_assert_str_eq(u.password, "p/w");
	cr_assert_str_eq(u.database, "db@x");
	cr_assert_str_eq(sg_url_param(&u, "application_name"), "a@b");
	sg_url_free(&u);
}
