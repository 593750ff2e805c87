/*
 * metrics.c - the state `schemagate serve` exports, rendered as Prometheus
 * text format 0.0.4, and the /livez, /readyz and /metrics handlers.
 */
#include "schemagate/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SG_GIT_REVISION
#define SG_GIT_REVISION "unknown"
#endif

const double sg_metrics_buckets[SG_METRICS_NBUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
};

static void replace(char **field, const char *value)
{
	free(*field);
	*field = sg_strdup(value ? value : "");
}

void sg_metrics_init(struct sg_metrics *m, const char *engine)
{
	memset(m, 0, sizeof(*m));
	replace(&m->engine, engine);
	replace(&m->applied_version, "");
	replace(&m->target_version, "");
	replace(&m->version, SG_VERSION);
	replace(&m->revision, SG_GIT_REVISION);
	m->statement_ratio = NAN;
	sg_metrics_set_ready(m, false, "starting");
}

void sg_metrics_set_statement(struct sg_metrics *m, double seconds, double ratio)
{
	m->statement_seconds = seconds >= 0 ? seconds : 0;
	m->statement_ratio = ratio >= 0 && ratio <= 1 ? ratio : NAN;
}

void sg_metrics_free(struct sg_metrics *m)
{
	free(m->engine);
	free(m->applied_version);
	free(m->target_version);
	free(m->version);
	free(m->revision);
	memset(m, 0, sizeof(*m));
}

void sg_metrics_set_ready(struct sg_metrics *m, bool ready, const char *reason)
{
	m->ready = ready;
	snprintf(m->reason, sizeof(m->reason), "%s", reason ? reason : "");
	/* a probe answer and a log line are one line */
	for (char *p = m->reason; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

void sg_metrics_set_schema(struct sg_metrics *m, const struct sg_metrics_schema *schema, double now)
{
	m->pending = schema->pending;
	m->applied = schema->applied;
	m->failed = schema->failed;
	m->database_ahead = schema->database_ahead;
	replace(&m->applied_version, schema->applied_version);
	replace(&m->target_version, schema->target_version);
	m->last_check_timestamp = now;
}

void sg_metrics_check_failed(struct sg_metrics *m)
{
	m->check_errors++;
}

void sg_metrics_observe_migration(struct sg_metrics *m, double seconds)
{
	if (!(seconds >= 0))   /* also NaN: a clock step must not poison the sum */
		seconds = 0;
	m->duration_count++;
	m->duration_sum += seconds;
	for (size_t i = 0; i < SG_METRICS_NBUCKETS; i++)
		if (seconds <= sg_metrics_buckets[i]) {
			m->bucket_counts[i]++;
			break;
		}
}

void sg_metrics_set_lock_wait(struct sg_metrics *m, double seconds)
{
	m->lock_wait_seconds = seconds >= 0 ? seconds : 0;
}

/* ---- rendering ---------------------------------------------------------- */

/* The shortest text that reads back as the same double (Go's ParseFloat
 * reads what C prints), and the format's spellings of the specials. */
static void put_double(struct sg_buf *out, double v)
{
	if (isnan(v)) {
		sg_buf_puts(out, "NaN");
		return;
	}
	if (isinf(v)) {
		sg_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	char text[64];
	int digits = 1;
	for (; digits < 17; digits++) {
		snprintf(text, sizeof(text), "%.*g", digits, v);
		if (strtod(text, NULL) == v)
			break;
	}
	/* %g switches to an exponent once the integer part has more digits
	 * than the precision: le="10", not le="1e+01" (bucket labels are
	 * matched as text) */
	double mag = v < 0 ? -v : v;
	if (mag >= 1 && mag < 1e21) {
		int int_digits = snprintf(text, sizeof(text), "%.0f", mag);
		if (int_digits > digits)
			digits = int_digits;
	}
	snprintf(text, sizeof(text), "%.*g", digits, v);
	sg_buf_puts(out, text);
}

/* Label values escape backslash, double quote and newline (0.0.4). */
static void put_label_value(struct sg_buf *out, const char *v)
{
	sg_buf_puts(out, "\"");
	for (; *v; v++) {
		switch (*v) {
		case '\\': sg_buf_puts(out, "\\\\"); break;
		case '"': sg_buf_puts(out, "\\\""); break;
		case '\n': sg_buf_puts(out, "\\n"); break;
		default: sg_buf_append(out, v, 1); break;
		}
	}
	sg_buf_puts(out, "\"");
}

/* HELP and TYPE; help texts are constants without backslash or newline. */
static void family(struct sg_buf *out, const char *name, const char *type, const char *help)
{
	sg_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value",...} 1 */
static void info_sample(struct sg_buf *out, const char *name, const char *const *labels, size_t n)
{
	sg_buf_printf(out, "%s{", name);
	for (size_t i = 0; i < n; i += 2) {
		sg_buf_printf(out, "%s%s=", i ? "," : "", labels[i]);
		put_label_value(out, labels[i + 1]);
	}
	sg_buf_puts(out, "} 1\n");
}

void sg_metrics_render(const struct sg_metrics *m, struct sg_buf *out)
{
	/* one unlabelled sample each; counts are exact as doubles up to 2^53 */
	const struct { const char *name, *type, *help; double value; } simple[] = {
		{ "schemagate_ready", "gauge",
		  "1 when the database is at this image's target with matching checksums, else 0.",
		  m->ready ? 1 : 0 },
		{ "schemagate_migrations_pending", "gauge",
		  "Migrations of this image's directory not yet applied, up to the target.", (double)m->pending },
		{ "schemagate_migrations_applied", "gauge",
		  "Applied or baselined migrations that this image's directory knows.", (double)m->applied },
		{ "schemagate_migrations_failed", "gauge",
		  "History rows in state failed or partial (need schemagate repair).", (double)m->failed },
		{ "schemagate_database_ahead", "gauge",
		  "Applied versions that this image's directory does not know (a newer release migrated).",
		  (double)m->database_ahead },
		{ "schemagate_lock_wait_seconds", "gauge", "How long this process waited for the migration lock.",
		  m->lock_wait_seconds },
		{ "schemagate_statement_seconds", "gauge",
		  "How long the migration statement in flight has run; 0 when none runs.", m->statement_seconds },
		{ "schemagate_statement_progress_ratio", "gauge",
		  "Fraction of the statement in flight done, as the server reports it (PostgreSQL "
		  "pg_stat_progress_*, MariaDB PROGRESS); NaN when none runs or the server does not say.",
		  m->statement_ratio },
		{ "schemagate_last_check_timestamp_seconds", "gauge",
		  "Unix time of the last successful schema check; 0 before the first.", m->last_check_timestamp },
		{ "schemagate_check_errors_total", "counter",
		  "Schema checks that failed (database unreachable, history unreadable).", (double)m->check_errors },
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		family(out, simple[i].name, simple[i].type, simple[i].help);
		sg_buf_printf(out, "%s ", simple[i].name);
		put_double(out, simple[i].value);
		sg_buf_puts(out, "\n");
	}

	family(out, "schemagate_schema_info", "gauge",
	       "Newest applied version and this image's target version as labels; always 1.");
	const char *schema[] = { "applied", m->applied_version, "target", m->target_version, "engine", m->engine };
	info_sample(out, "schemagate_schema_info", schema, 6);

	const char *h = "schemagate_migration_duration_seconds";
	family(out, h, "histogram", "Duration of the migrations this process applied.");
	uint64_t cumulative = 0;
	for (size_t i = 0; i < SG_METRICS_NBUCKETS; i++) {
		cumulative += m->bucket_counts[i];
		sg_buf_printf(out, "%s_bucket{le=\"", h);
		put_double(out, sg_metrics_buckets[i]);
		sg_buf_printf(out, "\"} %llu\n", (unsigned long long)cumulative);
	}
	sg_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", h, (unsigned long long)m->duration_count);
	sg_buf_printf(out, "%s_sum ", h);
	put_double(out, m->duration_sum);
	sg_buf_printf(out, "\n%s_count %llu\n", h, (unsigned long long)m->duration_count);

	family(out, "schemagate_build_info", "gauge", "Version and git revision of this binary; always 1.");
	const char *build[] = { "version", m->version, "revision", m->revision };
	info_sample(out, "schemagate_build_info", build, 4);
}

/* ---- HTTP handlers ------------------------------------------------------ */

static void handle_livez(const struct sg_http_request *req, struct sg_http_response *res, void *data)
{
	(void)req;
	(void)data;
	sg_buf_puts(&res->body, "ok\n");
}

static void handle_readyz(const struct sg_http_request *req, struct sg_http_response *res, void *data)
{
	(void)req;
	const struct sg_metrics *m = data;
	res->status = m->ready ? 200 : 503;
	sg_buf_printf(&res->body, "%s\n", m->reason);
}

static void handle_metrics(const struct sg_http_request *req, struct sg_http_response *res, void *data)
{
	(void)req;
	res->content_type = SG_METRICS_CONTENT_TYPE;
	sg_metrics_render(data, &res->body);
}

int sg_metrics_add_routes(struct sg_http_server *s, struct sg_metrics *m)
{
	if (sg_http_server_route(s, "/livez", handle_livez, NULL) < 0 ||
	    sg_http_server_route(s, "/readyz", handle_readyz, m) < 0 ||
	    sg_http_server_route(s, "/metrics", handle_metrics, m) < 0)
		return -1;
	return 0;
}
