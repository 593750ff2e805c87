/*
 * test_mysql_clock.c - the MySQL/MariaDB database clock in epoch
 * milliseconds (sg_driver_mysql.now_ms_sql), which the lease lock
 * compares expiry times with, is the true time whatever the session time
 * zone: also in the hour a DST zone repeats when clocks go back, and in
 * the hour it skips.
 *
 * The session is put in America/New_York (the server's time zone tables
 * get that one zone from the system's tzdata when they lack it) and its
 * clock is pinned with SET timestamp, so the ambiguous instants are
 * tested on any day of the year. With UNIX_TIMESTAMP(NOW(3)) the clock
 * read an hour behind during the repeated hour, then jumped: a lease
 * taken at 01:59:50 (the second one) looked expired by an hour fifteen
 * seconds later, and a waiter would take over from a live holder.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/driver.h"
#include "sgdb.h"
#include "sgtest.h"

#define ZONE "America/New_York"

static char *value(MYSQL *m, const char *sql)
{
	cr_assert_eq(mysql_query(m, sql), 0, "%s: %s", sql, mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	char *out = NULL;
	if (res) {
		MYSQL_ROW row = mysql_fetch_row(res);
		if (row && row[0])
			out = strdup(row[0]);
		mysql_free_result(res);
	}
	return out;
}

/* Named zones need the time zone tables; load the one zone if missing. */
static void load_zone(MYSQL *m)
{
	char *n = value(m, "SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = '" ZONE "'");
	bool have = n && atoi(n) > 0;
	free(n);
	if (have)
		return;
	int st = 0;
	char *sql = sgt_sh("mariadb-tzinfo-to-sql /usr/share/zoneinfo/" ZONE " " ZONE " 2>/dev/null", &st);
	cr_assert(st == 0 && sql[0], "mariadb-tzinfo-to-sql failed (is tzdata installed?)");
	cr_assert_eq(mysql_select_db(m, "mysql"), 0, "%s", mysql_error(m));
	cr_assert_eq(mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON), 0, "%s", mysql_error(m));
	cr_assert_eq(mysql_query(m, sql), 0, "loading " ZONE ": %s", mysql_error(m));
	do {
		MYSQL_RES *res = mysql_store_result(m);
		if (res)
			mysql_free_result(res);
	} while (mysql_next_result(m) == 0);
	cr_assert_eq(mysql_errno(m), 0, "loading " ZONE ": %s", mysql_error(m));
	mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
	free(sql);
}

/* The driver's clock with the session pinned at epoch_ms; *local gets
 * the session's local time for messages. */
static long long clock_at(MYSQL *m, long long epoch_ms, char *local, size_t n)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "SET timestamp = %lld.%03lld", epoch_ms / 1000, epoch_ms % 1000);
	free(value(m, sql));
	char *l = value(m, "SELECT NOW(3)");
	snprintf(local, n, "%s", l ? l : "?");
	free(l);
	snprintf(sql, sizeof(sql), "SELECT %s", sg_driver_mysql.now_ms_sql);
	char *v = value(m, sql);
	cr_assert_not_null(v);
	long long ms = atoll(v);
	free(v);
	return ms;
}

/* 2024-11-03 06:00:00 UTC: 02:00 EDT becomes 01:00 EST. */
#define FALL_BACK_MS 1730613600000LL
/* 2024-03-10 07:00:00 UTC: 02:00 EST becomes 03:00 EDT. */
#define SPRING_FORWARD_MS 1710054000000LL

Test(mysql_clock, epoch_ms_is_true_across_dst_changes_of_the_session_zone, .timeout = 120)
{
	const char *url = sgt_require_server("SG_TEST_MYSQL_URL");
	MYSQL *m = my_open(url, NULL);
	load_zone(m);
	free(value(m, "SET time_zone = '" ZONE "'"));
	char *tz = value(m, "SELECT @@session.time_zone");
	cr_assert_str_eq(tz, ZONE);
	free(tz);

	/* every 7.5 minutes from an hour before each change to an hour
	 * after, at .123 s: the repeated and the skipped local hour */
	const long long changes[] = { FALL_BACK_MS, SPRING_FORWARD_MS };
	char local[64];
	for (int c = 0; c < 2; c++) {
		for (long long t = changes[c] - 3600000 - 450000; t <= changes[c] + 3600000; t += 450000) {
			long long truth = t + 123;
			long long got = clock_at(m, truth, local, sizeof(local));
			cr_assert_eq(got, truth, "at local %s (%s) the clock reads %lld ms, off by %lld ms", local, ZONE,
				     got, got - truth);
		}
	}

	/* What the lease does with it: taken at 01:59:50 EST (the second
	 * 01:59:50), checked at 02:00:05 EST. 15 s went by, so a 30 s lease
	 * has 15 s left. */
	long long taken = clock_at(m, FALL_BACK_MS + 3600000 - 10000, local, sizeof(local));
	cr_assert_str_eq(local, "2024-11-03 01:59:50.000");
	long long expires = taken + 30000;
	long long checked = clock_at(m, FALL_BACK_MS + 3600000 + 5000, local, sizeof(local));
	cr_assert_str_eq(local, "2024-11-03 02:00:05.000");
	cr_assert_eq(expires - checked, 15000, "a 30 s lease taken 15 s ago has %lld ms left", expires - checked);

	mysql_close(m);
}
