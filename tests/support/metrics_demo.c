/*
 * metrics_demo.c - a test-only stand-in for `schemagate serve`, built from
 * the http and metrics modules alone: /livez, /readyz and /metrics with
 * fixed values, ready after --ready-after, graceful stop on SIGTERM/SIGINT
 * (exit 0 once every handle is closed and the loop closes, else 1).
 *
 *   sg_metrics_demo [serve] [--wait] [--listen ADDR] [--address-file PATH]
 *                   [--ready-after MS] [--max-connections N]
 *                   [--idle-timeout MS] [--read-timeout MS]
 *
 * ADDR defaults to $SCHEMAGATE_LISTEN, then 0.0.0.0:9187, as in serve, and
 * --ready-after to $SG_DEMO_READY_AFTER_MS; the words "serve" and "--wait"
 * are accepted so the chart's container command runs it unchanged. The loop is driven with UV_RUN_ONCE, as the drivers'
 * waits drive it in the product.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schemagate/http.h"
#include "schemagate/log.h"
#include "schemagate/metrics.h"

static struct sg_metrics metrics;
static struct sg_http_server *server;
static uv_signal_t sigterm, sigint;
static uv_timer_t ready_timer;
static bool stopped;

static void on_stopped(void *data)
{
	(void)data;
	stopped = true;
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	sg_info("signal", "received %s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	uv_close((uv_handle_t *)&ready_timer, NULL);
	sg_http_server_stop(server, on_stopped, NULL);
}

static void on_ready(uv_timer_t *h)
{
	(void)h;
	sg_metrics_set_ready(&metrics, true, "ready: at target 0003");
	sg_info("ready", "ready");
}

static unsigned long number(const char *what, const char *v)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 0;
	if (!v || !*v || *end) {
		fprintf(stderr, "sg_metrics_demo: %s needs a number\n", what);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *fmt = getenv("SCHEMAGATE_LOG_FORMAT");
	sg_log_init(fmt && strcmp(fmt, "json") == 0 ? SG_LOG_JSON : SG_LOG_TEXT, SG_LOG_INFO);
	const char *listen = getenv("SCHEMAGATE_LISTEN");
	if (!listen || !*listen)
		listen = "0.0.0.0:9187";
	const char *address_file = NULL;
	unsigned long ready_after = 0;
	if (getenv("SG_DEMO_READY_AFTER_MS"))
		ready_after = number("SG_DEMO_READY_AFTER_MS", getenv("SG_DEMO_READY_AFTER_MS"));
	struct sg_http_options opt = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "serve") == 0 || strcmp(a, "--wait") == 0)
			continue;
		i++;
		if (strcmp(a, "--listen") == 0 && v)
			listen = v;
		else if (strcmp(a, "--address-file") == 0 && v)
			address_file = v;
		else if (strcmp(a, "--ready-after") == 0)
			ready_after = number(a, v);
		else if (strcmp(a, "--max-connections") == 0)
			opt.max_connections = number(a, v);
		else if (strcmp(a, "--idle-timeout") == 0)
			opt.idle_timeout_ms = number(a, v);
		else if (strcmp(a, "--read-timeout") == 0)
			opt.read_timeout_ms = number(a, v);
		else {
			fprintf(stderr, "sg_metrics_demo: unknown argument '%s'\n", a);
			return 2;
		}
	}

	uv_loop_t loop;
	uv_loop_init(&loop);
	sg_metrics_init(&metrics, "postgres");
	struct sg_metrics_schema schema = {.pending = 0, .applied = 3, .failed = 0, .database_ahead = 0,
					   .applied_version = "0003", .target_version = "0003"};
	sg_metrics_set_schema(&metrics, &schema, (double)time(NULL));
	sg_metrics_observe_migration(&metrics, 0.02);
	sg_metrics_observe_migration(&metrics, 1.5);
	sg_metrics_set_lock_wait(&metrics, 0.25);
	sg_metrics_set_ready(&metrics, false, "not ready: applying 0003");

	server = sg_http_server_new(&loop, &opt);
	struct sg_error err = {0};
	int code = 0;
	if (sg_metrics_add_routes(server, &metrics) < 0 || sg_http_server_listen(server, listen, &err) < 0) {
		sg_errorlog("listen", "%s", err.msg);
		sg_http_server_stop(server, on_stopped, NULL);
		code = 2;
	} else {
		char bound[80];
		sg_http_server_address(server, bound, sizeof(bound));
		sg_info("listen", "listening on %s", bound);
		if (address_file) {
			char tmp[4096];
			snprintf(tmp, sizeof(tmp), "%s.tmp", address_file);
			FILE *f = fopen(tmp, "w");
			if (!f || fprintf(f, "%s\n", bound) < 0 || fclose(f) != 0 || rename(tmp, address_file) != 0) {
				perror(address_file);
				return 1;
			}
		}
		uv_signal_init(&loop, &sigterm);
		uv_signal_init(&loop, &sigint);
		uv_signal_start(&sigterm, on_signal, SIGTERM);
		uv_signal_start(&sigint, on_signal, SIGINT);
		uv_timer_init(&loop, &ready_timer);
		uv_timer_start(&ready_timer, on_ready, ready_after, 0);
	}
	while (!stopped)
		uv_run(&loop, UV_RUN_ONCE);
	sg_metrics_free(&metrics);
	if (uv_loop_close(&loop) != 0) {
		sg_errorlog("stop", "the loop still has open handles");
		return 1;
	}
	sg_info("stop", "stopped");
	return code;
}
