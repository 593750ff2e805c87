/*
 * test_mariadb_read_only.c - a MariaDB server switched to read_only in the
 * middle of a herd, as a failover leaves an endpoint on a demoted node for
 * a while: a transient fault, never exit 1 or 5 (SPEC section 5, "Writers
 * need a primary"; issue 22).
 *
 * read_only is server-wide, so this file holds this one test (run alone
 * in its process; the suite's test binaries run one after another).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdb.h"
#include "sgtest.h"

static void set_read_only(const char *value)
{
	MYSQL *m = my_open(tdb_server_for(ENG_MY), NULL);
	char sql[64];
	snprintf(sql, sizeof(sql), "SET GLOBAL read_only = %s", value);
	cr_assert_eq(mysql_query(m, sql), 0, "%s", mysql_error(m));
	mysql_close(m);
}

static void read_only_off(void)
{
	if (getenv("SG_TEST_MYSQL_URL"))
		set_read_only("OFF");
}

static bool any_log_has(struct fleet *f, const char *needle)
{
	for (int i = 0; i < f->n; i++)
		if (file_has(f->log[i], needle))
			return true;
	return false;
}

Test(mariadb, read_only_server_is_transient, .timeout = 240, .fini = read_only_off)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, tdb_server_for(ENG_MY));
	/* read_only binds users without SUPER (READ_ONLY ADMIN): the
	 * application's kind of user, rights on its database only */
	char user[80], sql[256];
	snprintf(user, sizeof(user), "rw_%.60s", d.name + 3);
	snprintf(sql, sizeof(sql), "CREATE USER '%s'@'%%' IDENTIFIED BY 'rw-pw'", user);
	free(tdb_value(&d, "%s", sql));
	snprintf(sql, sizeof(sql), "GRANT ALL ON %s.* TO '%s'@'%%'", d.name, user);
	free(tdb_value(&d, "%s", sql));
	char *admin_url = d.url;
	cr_assert(asprintf(&d.url, "mysql://%s:rw-pw%s", user, strchr(admin_url, '@')) > 0);
	free(admin_url);

	write_migrations(&d, 6, "DO SLEEP(0.3);");
	const char *extra[] = { "--lock-timeout", "120s", "--poll-interval", "200ms", NULL };
	struct fleet f = { 0 };
	for (int i = 0; i < 10; i++)
		fleet_add(&f, &d, "ro", extra);
	double t0 = sgt_now_ms();
	while (!any_log_has(&f, "applying 0002")) {
		cr_assert_lt(sgt_now_ms() - t0, 60000 * sgt_slowdown(), "nobody started migration 0002");
		sleep_ms(50);
	}
	set_read_only("ON");
	sleep_ms(3000);
	set_read_only("OFF");
	fleet_wait(&f, 180000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 3), 0, "an instance failed on the read-only server");
	/* the fault happened: someone met the read-only server */
	cr_assert(any_log_has(&f, "read_only=ON") || any_log_has(&f, "mysql 1290"),
		  "no instance ever saw the server read-only");
	assert_exactly_once(&d, 6, "read_only for 3 s mid-herd");
	snprintf(sql, sizeof(sql), "DROP USER '%s'@'%%'", user);
	free(tdb_value(&d, "%s", sql));
	fleet_free(&f);
	tdb_drop(&d);
}
