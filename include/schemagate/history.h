/*
 * history.h - the history and events tables (SPEC section 4) and the plan:
 * which migrations are applied, pending, failed, changed or unknown.
 *
 * The SQL is written once here over sg_conn_query(); the driver supplies
 * only its dialect (DDL, quoting, database clock).
 */
#ifndef SCHEMAGATE_HISTORY_H
#define SCHEMAGATE_HISTORY_H

#include "schemagate/driver.h"
#include "schemagate/migration.h"

struct sg_history_row {
	char *version;
	char *name;
	char *checksum;
	char *status;          /* "applied", "baselined", "failed", "partial" */
	long statements_done;
	char *applied_at;      /* database clock: "2026-12-01T00:34:23.553Z" (RFC 3339, UTC, ms) */
	char *applied_by;
	long duration_ms;
	char *error;           /* failed: statement and server error */
	bool has_down;         /* a down script was recorded */
};

struct sg_history {
	bool exists;           /* the table is there at all */
	struct sg_history_row *rows;  /* sorted by version */
	size_t count;
	/* Rows that adoption would record (sg_adopt_preview): the history
	 * table does not hold them yet. 0 / NULL for real rows. */
	size_t nadopted;
	const char *adopted_from;   /* "golang-migrate's schema_migrations" */
};

/* Never creates anything (wait/verify/status use it). */
int sg_history_read(struct sg_conn *c, const char *table, struct sg_history *h, struct sg_error *err);
void sg_history_free(struct sg_history *h);
const struct sg_history_row *sg_history_find(const struct sg_history *h, const char *version);

/* Has this history table any audit event? (an empty history with none
 * was never used: adoption may still run) */
int sg_history_has_events(struct sg_conn *c, const char *table, bool *any, struct sg_error *err);

/* Create history and events tables if missing (under the lock). */
int sg_history_ensure(struct sg_conn *c, const char *table, struct sg_error *err);

/* Insert the row for m: status is "applied", "baselined" or "partial"
 * (a statement-by-statement migration about to start); error may be NULL.
 * A row that is already there is never overwritten: that fails with kind
 * LOCK_LOST (someone else recorded it: the lock was lost). */
int sg_history_record(struct sg_conn *c, const char *table, const struct sg_migration *m,
		      const char *status, long statements_done, long duration_ms,
		      const char *error, struct sg_error *err);
/* No row for version yet; else kind LOCK_LOST (sg_history_record's check). */
int sg_history_check_absent(struct sg_conn *c, const char *table, const char *version, struct sg_error *err);
/* The same "applied" row and its "apply" event as SQL text with literal
 * values, appended to row and event, for a migration's one-message
 * transaction: the duration is the server's time since the message
 * arrived (driver batch_elapsed_ms_sql). -1 when a value cannot be quoted
 * (the caller runs the statements one by one instead). */
int sg_history_applied_sql(struct sg_conn *c, const char *table, const struct sg_migration *m,
			   struct sg_buf *row, struct sg_buf *event);
/* Delete the row of version, which must be exactly one row in the expected
 * state (applied/baselined, or with failed_row failed/partial); anything
 * else fails with kind LOCK_LOST, so a revert can never apply twice. */
/* A statement-by-statement migration's own row as it goes: status
 * "partial" (note says which statement runs next), "applied" or "failed"
 * (note is the error). Only this instance's partial row is updated;
 * anything else fails with kind LOCK_LOST. Text is stored as valid UTF-8,
 * truncated. */
int sg_history_progress(struct sg_conn *c, const char *table, const char *version, const char *status,
			long statements_done, long duration_ms, const char *note, struct sg_error *err);
/* Make this instance the owner of a partial (or, for repair --resume,
 * failed) row whose writer is gone, if the row still says what the
 * caller read; it becomes partial. Else kind LOCK_LOST. */
int sg_history_take_over(struct sg_conn *c, const char *table, const struct sg_history_row *row,
			 struct sg_error *err);
int sg_history_delete(struct sg_conn *c, const char *table, const char *version, bool failed_row,
		      struct sg_error *err);
/* Stored down script; *down NULL if none recorded. Caller frees. */
int sg_history_down_sql(struct sg_conn *c, const char *table, const char *version, char **down,
			struct sg_error *err);
int sg_history_set_checksum(struct sg_conn *c, const char *table, const char *version,
			    const char *checksum, struct sg_error *err);
/* Set status and error (NULL clears it): repair, and a failed revert. */
int sg_history_set_status(struct sg_conn *c, const char *table, const char *version,
			  const char *status, const char *error, struct sg_error *err);

/* Audit: event is "apply", "revert", "baseline", "repair", "failure". */
int sg_event_record(struct sg_conn *c, const char *table, const char *event, const char *version,
		    const char *outcome, const char *detail, struct sg_error *err);

/* One row of the audit table, as `events` shows it. */
struct sg_event_row {
	char *at;              /* database clock: RFC 3339, UTC, ms (as applied_at) */
	char *instance, *event, *version, *outcome, *detail;   /* NULL = SQL NULL */
};

struct sg_event_list {
	bool exists;           /* the audit table exists */
	struct sg_event_row *rows;
	size_t count;
};

/* The events of history table `table`, oldest first; with since (text
 * as `at` shows it), only those at or after it; with version, only that
 * version's (numerically: 0007 is 7). Reads only; no table is not an
 * error (exists = false). sg_event_list_free() frees it. */
int sg_events_read(struct sg_conn *c, const char *table, const char *since, const char *version,
		   struct sg_event_list *out, struct sg_error *err);
void sg_event_list_free(struct sg_event_list *l);

/* ---- plan -------------------------------------------------------------- */

enum sg_mstate {
	SG_M_PENDING,      /* in dir, <= target, not applied */
	SG_M_APPLIED,      /* applied or baselined, checksum matches */
	SG_M_CHANGED,      /* applied, file checksum differs */
	SG_M_FAILED,       /* status failed: a human must look (repair) */
	SG_M_PARTIAL,      /* status partial: being applied, or interrupted and resumable */
	SG_M_UNKNOWN,      /* in the database, not in the directory */
	SG_M_BEYOND,       /* in dir, newer than the target, not applied */
};

struct sg_plan_item {
	const char *version;
	const struct sg_migration *m;        /* NULL for UNKNOWN */
	const struct sg_history_row *row;    /* NULL if not applied */
	enum sg_mstate state;
	bool out_of_order;                   /* pending but older than newest applied */
};

struct sg_plan {
	struct sg_plan_item *items;   /* union of dir and history, by version */
	size_t count;
	size_t npending, nchanged, nfailed, npartial, nunknown, nout_of_order, napplied;
	const char *target;           /* NULL when the directory is empty */
	const char *newest_applied;   /* set when a pending version is out of order (borrowed from the history) */
};

/* target NULL = newest in the directory. Fails (exit 2) if target is not
 * a version in the directory. */
int sg_plan_build(const struct sg_migration_set *set, const struct sg_history *h, const char *target,
		  struct sg_plan *plan, struct sg_error *err);
void sg_plan_free(struct sg_plan *plan);
/* Integrity check before doing anything (exit 4): failed rows, changed
 * checksums, unknown versions under strict, out-of-order pending unless
 * allowed. Partial rows are not errors: the next lock holder resumes
 * them. The message names file, versions and the fix. */
int sg_plan_check(const struct sg_plan *plan, bool strict, bool allow_out_of_order,
		  struct sg_error *err);
const char *sg_mstate_name(enum sg_mstate s);

#endif
