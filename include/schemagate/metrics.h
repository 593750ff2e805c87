/*
 * metrics.h - what `schemagate serve` knows about the schema, and its
 * rendering as Prometheus text exposition format 0.0.4 (/metrics) and as
 * the answers of /livez and /readyz.
 *
 * One struct, changed only through the setters below, read by the HTTP
 * handlers. Everything runs on one thread (the loop), so a handler sees
 * the state between two setter calls, never half of one.
 *
 * Families (HELP and TYPE for each; every sample is always present, with
 * zeros until the first successful check):
 *
 *   schemagate_ready                              gauge 0/1
 *   schemagate_migrations_pending                 gauge
 *   schemagate_migrations_applied                 gauge
 *   schemagate_migrations_failed                  gauge (failed or partial rows)
 *   schemagate_database_ahead                     gauge (applied versions this image lacks)
 *   schemagate_schema_info{applied,target,engine} gauge, always 1
 *   schemagate_migration_duration_seconds         histogram (migrations this process applied)
 *   schemagate_lock_wait_seconds                  gauge
 *   schemagate_statement_seconds                  gauge (the migration statement in flight; 0 = none)
 *   schemagate_statement_progress_ratio           gauge 0..1 (NaN = none runs, or no view says)
 *   schemagate_last_check_timestamp_seconds       gauge (unix time; 0 = no successful check yet)
 *   schemagate_check_errors_total                 counter
 *   schemagate_build_info{version,revision}       gauge, always 1
 *
 * Versions are label values, not sample values: a 20-digit version does
 * not survive a float64.
 */
#ifndef SCHEMAGATE_METRICS_H
#define SCHEMAGATE_METRICS_H

#include "schemagate/common.h"
#include "schemagate/http.h"

/* Prometheus text format 0.0.4, for the Content-Type of /metrics. */
#define SG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds (seconds) of the duration histogram; +Inf is implied. From a
 * few milliseconds (an empty table) to an hour (a backfill). */
#define SG_METRICS_NBUCKETS 18
extern const double sg_metrics_buckets[SG_METRICS_NBUCKETS];

/* The result of one successful history check. Strings are copied. */
struct sg_metrics_schema {
	int64_t pending;            /* migrations of this directory not applied (up to the target) */
	int64_t applied;            /* applied or baselined rows this directory knows */
	int64_t failed;             /* failed or partial rows */
	int64_t database_ahead;     /* applied versions this directory does not know */
	const char *applied_version;   /* newest applied version; "0" when none */
	const char *target_version;    /* the version this image migrates to; "0" when none */
};

/* All members are owned by the struct; read them, change them only through
 * the functions below. */
struct sg_metrics {
	bool ready;
	char reason[256];           /* one line: why not ready (or what is ready) */
	int64_t pending, applied, failed, database_ahead;
	char *applied_version;      /* "" until the first check */
	char *target_version;       /* "" until the first check */
	char *engine;               /* "postgres", "mysql", "sqlite" */
	uint64_t bucket_counts[SG_METRICS_NBUCKETS];   /* not cumulative */
	uint64_t duration_count;
	double duration_sum;
	double lock_wait_seconds;
	double statement_seconds, statement_ratio;
	double last_check_timestamp;   /* unix seconds of the last successful check */
	uint64_t check_errors;
	char *version;              /* build: SG_VERSION */
	char *revision;             /* build: git revision, "unknown" when built without git */
};

/* Not ready ("starting"), nothing checked yet. engine is copied. */
void sg_metrics_init(struct sg_metrics *m, const char *engine);
void sg_metrics_free(struct sg_metrics *m);

/* /readyz answers 200 with reason when ready, else 503 with reason.
 * reason is one line (newlines become spaces) of at most 255 bytes. */
void sg_metrics_set_ready(struct sg_metrics *m, bool ready, const char *reason);

/* A check read the history at unix time now (seconds, fractions allowed). */
void sg_metrics_set_schema(struct sg_metrics *m, const struct sg_metrics_schema *schema, double now);

/* A check failed (the database did not answer, the history could not be
 * read): counts schemagate_check_errors_total; the last values stay. */
void sg_metrics_check_failed(struct sg_metrics *m);

/* This process applied one migration, which took seconds. */
void sg_metrics_observe_migration(struct sg_metrics *m, double seconds);

/* How long this process waited for the migration lock (0 when it did not). */
void sg_metrics_set_lock_wait(struct sg_metrics *m, double seconds);

/* The migration statement in flight has run seconds (0: none runs);
 * ratio 0..1 done as the server reports it, NAN when it does not. */
void sg_metrics_set_statement(struct sg_metrics *m, double seconds, double ratio);

/* Append the exposition text (every family, "\n"-terminated) to out. */
void sg_metrics_render(const struct sg_metrics *m, struct sg_buf *out);

/* Register /livez (200 "ok" while the process runs), /readyz and /metrics
 * on s; the handlers read m, which must outlive the server. Returns 0 or -1
 * (route table full). */
int sg_metrics_add_routes(struct sg_http_server *s, struct sg_metrics *m);

#endif
