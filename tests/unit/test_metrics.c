/*
 * test_metrics.c - what `schemagate serve` exports: the Prometheus text
 * (checked by promtool itself), label escaping, the duration histogram,
 * and the /livez, /readyz and /metrics handlers on a real server.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/metrics.h"
#include "sghttp.h"
#include "sgtest.h"

static struct sg_metrics m;

static char *render(void)
{
	struct sg_buf out = {0};
	sg_metrics_render(&m, &out);
	cr_assert_not_null(out.data);
	return out.data;
}

/* The line of the sample named exactly name (with its labels), or NULL. */
static const char *sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{'))
			return p;
	return NULL;
}

/* The value of the sample whose line starts with prefix ("name "). */
static double value(const char *text, const char *prefix)
{
	char *needle = sg_asprintf("\n%s", prefix);
	const char *p = strstr(text, needle);
	free(needle);
	cr_assert_not_null(p, "no sample %s in:\n%s", prefix, text);
	return strtod(p + 1 + strlen(prefix), NULL);
}

/* promtool is the reference parser and linter of the format. Under CI a
 * missing promtool is a failure (tests/deps.sh installs it). */
static void promtool_check(const char *text)
{
	int st;
	char *which = sgt_sh("command -v promtool", &st);
	free(which);
	if (st != 0) {
		if (getenv("CI") && strcmp(getenv("CI"), "true") == 0)
			cr_assert_fail("promtool is missing (Debian package prometheus; tests/deps.sh)");
		cr_skip_test("promtool not installed (apt-get install prometheus)");
	}
	char *dir = sgt_tempdir();
	sgt_write(dir, "metrics.txt", text);
	char *cmd = sg_asprintf("promtool check metrics < '%s/metrics.txt' 2>&1", dir);
	char *out = sgt_sh(cmd, &st);
	cr_expect_eq(st, 0, "promtool check metrics failed:\n%s\non:\n%s", out, text);
	free(out);
	free(cmd);
	sgt_rmrf(dir);
	free(dir);
}

static void init(void) { sg_metrics_init(&m, "postgres"); }
static void fini(void) { sg_metrics_free(&m); }

TestSuite(metrics, .init = init, .fini = fini, .timeout = 60);

static const char *const families[] = {
	"schemagate_ready", "schemagate_migrations_pending", "schemagate_migrations_applied",
	"schemagate_migrations_failed", "schemagate_database_ahead", "schemagate_schema_info",
	"schemagate_migration_duration_seconds", "schemagate_lock_wait_seconds",
	"schemagate_last_check_timestamp_seconds", "schemagate_check_errors_total", "schemagate_build_info",
};

Test(metrics, every_family_has_help_type_and_a_sample_from_the_start)
{
	char *text = render();
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char help[128], type[128];
		snprintf(help, sizeof(help), "# HELP %s ", families[i]);
		snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
		const char *h = strstr(text, help), *t = strstr(text, type);
		cr_expect_not_null(h, "no HELP for %s", families[i]);
		cr_expect_not_null(t, "no TYPE for %s", families[i]);
		char first[128];
		snprintf(first, sizeof(first), "%s%s", families[i],
			 strcmp(families[i], "schemagate_migration_duration_seconds") == 0 ? "_bucket" : "");
		const char *s = sample(text, first);
		cr_expect(s && t && t < s && h < t, "%s: HELP, TYPE, then samples", families[i]);
	}
	cr_expect_eq(text[strlen(text) - 1], '\n');
	cr_expect_eq(value(text, "schemagate_ready "), 0);
	cr_expect_eq(value(text, "schemagate_last_check_timestamp_seconds "), 0);
	cr_expect_not_null(strstr(text, "\nschemagate_schema_info{applied=\"\",target=\"\",engine=\"postgres\"} 1\n"),
			   "%s", text);
	cr_expect_not_null(strstr(text, "# TYPE schemagate_check_errors_total counter\n"));
	cr_expect_not_null(strstr(text, "# TYPE schemagate_migration_duration_seconds histogram\n"));
	char build[128];
	snprintf(build, sizeof(build), "\nschemagate_build_info{version=\"%s\",revision=\"", SG_VERSION);
	cr_expect_not_null(strstr(text, build), "%s", text);
	promtool_check(text);
	free(text);
}

Test(metrics, a_check_sets_the_schema_values_and_20_digit_versions_stay_exact)
{
	struct sg_metrics_schema s = {.pending = 2, .applied = 7, .failed = 1, .database_ahead = 3,
				      .applied_version = "20240102030405060708",
				      .target_version = "20240102030405060710"};
	sg_metrics_set_schema(&m, &s, 1718000000.25);
	sg_metrics_set_ready(&m, true, "at target");
	sg_metrics_set_lock_wait(&m, 12.5);
	char *text = render();
	cr_expect_eq(value(text, "schemagate_ready "), 1);
	cr_expect_eq(value(text, "schemagate_migrations_pending "), 2);
	cr_expect_eq(value(text, "schemagate_migrations_applied "), 7);
	cr_expect_eq(value(text, "schemagate_migrations_failed "), 1);
	cr_expect_eq(value(text, "schemagate_database_ahead "), 3);
	cr_expect_eq(value(text, "schemagate_lock_wait_seconds "), 12.5);
	cr_expect_not_null(strstr(text, "\nschemagate_last_check_timestamp_seconds 1718000000.25\n"), "%s", text);
	cr_expect_not_null(strstr(text, "\nschemagate_schema_info{applied=\"20240102030405060708\","
					"target=\"20240102030405060710\",engine=\"postgres\"} 1\n"),
			   "%s", text);
	promtool_check(text);
	free(text);
	/* a later check replaces the values */
	s.pending = 0;
	s.applied_version = "20240102030405060710";
	sg_metrics_set_schema(&m, &s, 1718000030);
	text = render();
	cr_expect_eq(value(text, "schemagate_migrations_pending "), 0);
	cr_expect_not_null(strstr(text, "applied=\"20240102030405060710\""));
	cr_expect_not_null(strstr(text, "\nschemagate_last_check_timestamp_seconds 1718000030\n"), "%s", text);
	free(text);
}

Test(metrics, label_values_are_escaped)
{
	sg_metrics_free(&m);
	sg_metrics_init(&m, "we\"ird\\engine\nname");
	struct sg_metrics_schema s = {.applied_version = "1", .target_version = "2"};
	sg_metrics_set_schema(&m, &s, 1);
	char *text = render();
	cr_expect_not_null(strstr(text, "engine=\"we\\\"ird\\\\engine\\nname\"} 1\n"), "%s", text);
	promtool_check(text);
	free(text);
}

Test(metrics, histogram_buckets_are_cumulative_inclusive_and_labelled_as_text)
{
	sg_metrics_observe_migration(&m, 0.005);   /* on a bound: le is inclusive */
	sg_metrics_observe_migration(&m, 0.3);
	sg_metrics_observe_migration(&m, 10);
	sg_metrics_observe_migration(&m, 7200);    /* beyond the last bound */
	sg_metrics_observe_migration(&m, -1);      /* a clock step: counted as 0 */
	char *text = render();
	const char *h = "schemagate_migration_duration_seconds";
	char line[128];
	struct { const char *le; int count; } expect[] = {
		{ "0.005", 2 }, { "0.01", 2 }, { "0.25", 2 }, { "0.5", 3 }, { "5", 3 },
		{ "10", 4 }, { "30", 4 }, { "3600", 4 }, { "+Inf", 5 },
	};
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		snprintf(line, sizeof(line), "\n%s_bucket{le=\"%s\"} %d\n", h, expect[i].le, expect[i].count);
		cr_expect_not_null(strstr(text, line), "missing %s in:\n%s", line + 1, text);
	}
	cr_expect_null(strstr(text, "e+0"), "exponent notation in:\n%s", text);
	snprintf(line, sizeof(line), "%s_count ", h);
	cr_expect_eq(value(text, line), 5);
	snprintf(line, sizeof(line), "%s_sum ", h);
	cr_expect_float_eq(value(text, line), 7210.305, 1e-9);
	/* the only label of the histogram is le: versions would explode it */
	for (const char *p = strstr(text, "\nschemagate_migration_duration_seconds"); p;
	     p = strstr(p + 1, "\nschemagate_migration_duration_seconds")) {
		const char *brace = strchr(p, '{'), *nl = strchr(p + 1, '\n');
		if (brace && brace < nl)
			cr_expect_eq(strncmp(brace, "{le=\"", 5), 0, "%.*s", (int)(nl - p), p);
	}
	promtool_check(text);
	free(text);
}

Test(metrics, a_failed_check_counts_and_keeps_the_last_values)
{
	struct sg_metrics_schema s = {.pending = 1, .applied = 2, .applied_version = "2", .target_version = "3"};
	sg_metrics_set_schema(&m, &s, 100);
	sg_metrics_check_failed(&m);
	sg_metrics_check_failed(&m);
	char *text = render();
	cr_expect_eq(value(text, "schemagate_check_errors_total "), 2);
	cr_expect_eq(value(text, "schemagate_migrations_pending "), 1);
	cr_expect_eq(value(text, "schemagate_last_check_timestamp_seconds "), 100);
	free(text);
}

Test(metrics, the_reason_is_one_bounded_line)
{
	sg_metrics_set_ready(&m, false, "pending: 0003\nsecond line\r");
	cr_expect_str_eq(m.reason, "pending: 0003 second line ");
	char long_reason[1000];
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	sg_metrics_set_ready(&m, false, long_reason);
	cr_expect_eq(strlen(m.reason), sizeof(m.reason) - 1);
}

/* ---- the handlers on a real server ------------------------------------- */

static uv_loop_t loop;
static bool stopped;
static void on_stopped(void *data) { (void)data; stopped = true; }

Test(metrics, livez_readyz_and_metrics_over_http)
{
	uv_loop_init(&loop);
	sgh_loop_start(&loop);
	struct sg_http_server *s = sg_http_server_new(&loop, NULL);
	cr_assert_eq(sg_metrics_add_routes(s, &m), 0);
	struct sg_error err = {0};
	cr_assert_eq(sg_http_server_listen(s, "127.0.0.1:0", &err), 0, "%s", err.msg);
	char address[80];
	sg_http_server_address(s, address, sizeof(address));

	char *r = sgh_exchange(&loop, address, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	cr_expect_str_eq(sgh_body(r), "ok\n");
	free(r);

	sg_metrics_set_ready(&m, false, "pending: 0002_add_index, 0003_backfill");
	r = sgh_exchange(&loop, address, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 503, "%s", r);
	cr_expect_str_eq(sgh_body(r), "pending: 0002_add_index, 0003_backfill\n");
	free(r);
	sg_metrics_set_ready(&m, true, "ready: at 0003");
	r = sgh_exchange(&loop, address, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	cr_expect_str_eq(sgh_body(r), "ready: at 0003\n");
	free(r);

	r = sgh_exchange(&loop, address, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	cr_expect_not_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "%s", r);
	cr_expect_not_null(strstr(sgh_body(r), "\nschemagate_ready 1\n"), "%s", r);
	promtool_check(sgh_body(r));
	free(r);

	sg_http_server_stop(s, on_stopped, NULL);
	while (!stopped)
		uv_run(&loop, UV_RUN_ONCE);
	sgh_loop_close(&loop);
}
