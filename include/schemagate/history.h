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
	char *status;          /* as stored: sg_row_state_name() */
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
	/* Rows of repeatable migrations (version "R__NAME"), by key: kept
	 * apart, so nothing that orders versions ever meets them. */
	struct sg_history_row *reps;
	size_t nreps;
	/* Rows that adoption would record (sg_adopt_preview): the history
	 * table does not hold them yet. 0 / NULL for real rows. */
	size_t nadopted;
	const char *adopted_from;   /* "golang-migrate's schema_migrations" */
};

/* Never creates anything (wait/verify/status use it). with_applied_at:
 * read the rows' applied_at too (status shows it; nothing else reads it,
 * and formatting it is a good part of the server's work on a long
 * history: a no-op start leaves it NULL). */
int sg_history_read(struct sg_conn *c, const char *table, bool with_applied_at, struct sg_history *h,
		    struct sg_error *err);
void sg_history_free(struct sg_history *h);
const struct sg_history_row *sg_history_find(const struct sg_history *h, const char *version);
/* The row of a repeatable migration's key ("R__NAME"), or NULL. */
const struct sg_history_row *sg_history_find_repeatable(const struct sg_history *h, const char *key);

/* Has this history table any audit event? (an empty history with none
 * was never used: adoption may still run) */
int sg_history_has_events(struct sg_conn *c, const char *table, bool *any, struct sg_error *err);

/* Create history and events tables if missing (under the lock). */
int sg_history_ensure(struct sg_conn *c, const char *table, struct sg_error *err);

/* ---- the row's state machine (README "The history row") -----------------
 *
 * Every change of a history row is one transition of this closed machine:
 * the table of (state, event) -> next state lives in history.c, and
 * sg_row_move() is the only function that writes a row's status. */

enum sg_row_state {
	SG_ROW_ABSENT,          /* no row: never applied, or reverted */
	SG_ROW_APPLIED,         /* every statement of the recorded file ran */
	SG_ROW_BASELINED,       /* recorded without running (baseline, adoption) */
	SG_ROW_REPEATABLE,      /* a repeatable migration: the text whose checksum it records ran */
	SG_ROW_PARTIAL,         /* the up script runs statement by statement, or was interrupted */
	SG_ROW_FAILED,          /* a statement of the up script failed */
	SG_ROW_PARTIAL_REVERT,  /* the down script runs statement by statement, or was interrupted */
	SG_ROW_FAILED_REVERT,   /* a statement of the down script failed */
	SG_ROW_STATE_COUNT
};

enum sg_row_event {
	SG_EV_BASELINE,           /* baseline, up --baseline-version, adoption */
	SG_EV_COMMITTED,          /* a transactional script committed together with its row */
	SG_EV_START,              /* a statement-by-statement script starts */
	SG_EV_STATEMENT_DONE,     /* one more statement committed (its count with it) */
	SG_EV_LAST_STATEMENT_DONE,
	SG_EV_SERVER_ERROR,       /* a statement failed (also a cancel schemagate did not ask for) */
	SG_EV_STOPPED,            /* kill, our own stop, lock or connection lost: nothing is written */
	SG_EV_RESUME,             /* the next lock holder reaches the row (up) */
	SG_EV_FILE_CHANGED,       /* the file's checksum (or its next statement's digest) differs */
	SG_EV_REVERT_COMMITTED,   /* a transactional down script committed with the row's removal */
	SG_EV_REVERT_START,       /* a statement-by-statement down script starts */
	SG_EV_REPAIR_APPLIED,
	SG_EV_REPAIR_REVERTED,
	SG_EV_REPAIR_RESUME,
	SG_EV_ACCEPT_CHECKSUM,
	SG_EV_REPEATABLE_COMMITTED, /* a repeatable migration's text committed with its row */
	SG_EV_COUNT
};

/* What the history table sees on a transition. */
enum sg_row_write {
	SG_WRITE_NONE,      /* nothing (the row already says it, or a human must act) */
	SG_WRITE_INSERT,    /* the row appears */
	SG_WRITE_PROGRESS,  /* this instance's own row moves on */
	SG_WRITE_TAKE_OVER, /* this instance becomes the row's writer (the old one is gone) */
	SG_WRITE_STATUS,    /* a human's verdict: the status changes, the error is cleared */
	SG_WRITE_CHECKSUM,  /* the file's current checksum is recorded */
	SG_WRITE_REAPPLIED, /* a repeatable's new text ran: checksum, time and writer recorded */
	SG_WRITE_DELETE,    /* the row goes */
};

struct sg_row_transition {
	enum sg_row_state from;
	enum sg_row_event event;
	enum sg_row_state to;
	enum sg_row_write write;
	/* non-NULL: a human must act first (exit 4); what to run. "{V}"
	 * stands for the version. */
	const char *refusal;
	const char *why;
};

/* The arguments of one transition; unused fields stay 0/NULL. */
struct sg_row_change {
	const char *version;
	const struct sg_migration *m;      /* INSERT: the migration recorded */
	const struct sg_history_row *row;  /* TAKE_OVER: the row as read */
	long statements_done;
	long duration_ms;
	const char *note;                  /* progress note, or the error */
	const char *checksum;              /* CHECKSUM, and TAKE_OVER when not NULL */
	const char *old_checksum;          /* REAPPLIED: the row must still record it */
	/* Not NULL: run nothing; append the transition's write to *batch as
	 * SQL text with literal values, for a migration's one-message
	 * transaction, with duration_sql (the server's own expression, raw
	 * SQL) as its duration. Only an INSERT batches (every other write
	 * checks the rows it matched); anything else, or a value that
	 * cannot be quoted, fails and the caller writes it by itself. */
	struct sg_buf *batch;
	const char *duration_sql;
};

enum sg_row_state sg_row_state_of(const struct sg_history_row *row);   /* NULL: ABSENT */
const char *sg_row_state_name(enum sg_row_state s);                    /* as stored */
const char *sg_row_event_name(enum sg_row_event e);
/* The transition for (from, event), or NULL when the machine has none. */
const struct sg_row_transition *sg_row_transition_find(enum sg_row_state from, enum sg_row_event event);
/* The whole table (README and tests walk it). */
const struct sg_row_transition *sg_row_transitions(size_t *count);
/* The transition's refusal as an exit-4 error naming the repair. */
int sg_row_refuse(const struct sg_row_transition *t, const char *version, const char *what, struct sg_error *err);
/*
 * Move the row of chg->version from `from` by `event`: look the transition
 * up, refuse (exit 4) where a human must act, else write it. A write only
 * matches a row still in `from` (for PROGRESS, this instance's own row);
 * anything else fails with kind LOCK_LOST: someone else changed the row,
 * so nothing can apply twice. An INSERT over an existing row fails the
 * same way.
 */
int sg_row_move(struct sg_conn *c, const char *table, enum sg_row_state from, enum sg_row_event event,
		const struct sg_row_change *chg, struct sg_error *err);
/* The same write as SQL text with literal values, appended to out, for a
 * multi-statement round trip (MySQL): INSERT and PROGRESS writes only,
 * and no check that the row moved (the caller checks that one row was
 * affected: sg_row_lost). duration_sql, when not NULL, is an SQL
 * expression for duration_ms. -1 when the write cannot be text. */
int sg_row_move_sql(struct sg_conn *c, const char *table, enum sg_row_state from, enum sg_row_event event,
		    const struct sg_row_change *chg, const char *duration_sql, struct sg_buf *out);
/* After sg_row_move_sql's statement: 0 when it moved one row, else
 * kind LOCK_LOST as sg_row_move says it. */
int sg_row_check_moved(const char *table, enum sg_row_state from, enum sg_row_event event, const char *version,
		       long affected, struct sg_error *err);
/* Does the partial row still describe m's file (checksum, and the digest
 * of the next statement recorded in its note)? 0, or exit 4 naming the
 * repair. */
int sg_row_check_resumable(const struct sg_history_row *row, const struct sg_migration *m, struct sg_error *err);

/* No row for version yet; else kind LOCK_LOST (a row is only ever
 * inserted over none). */
int sg_history_check_absent(struct sg_conn *c, const char *table, const char *version, struct sg_error *err);
/* The "apply" event of m as SQL text with literal values, appended to
 * event, for a migration's one-message transaction (its row is
 * sg_row_move with chg->batch): the duration is the server's time since
 * the message arrived (driver batch_elapsed_ms_sql). -1 when a value
 * cannot be quoted (the caller runs the statements one by one instead). */
int sg_event_applied_sql(struct sg_conn *c, const char *table, const struct sg_migration *m, struct sg_buf *event);

/* Stored down script; *down NULL if none recorded. Caller frees. */
int sg_history_down_sql(struct sg_conn *c, const char *table, const char *version, char **down,
			struct sg_error *err);

/* Audit: event is "apply", "revert", "baseline", "repair", "failure". */
int sg_event_record(struct sg_conn *c, const char *table, const char *event, const char *version,
		    const char *outcome, const char *detail, struct sg_error *err);

/* The same as text (see sg_row_move_sql); detail_sql is an SQL
 * expression, or NULL. */
int sg_event_sql(struct sg_conn *c, const char *table, const char *event, const char *version, const char *outcome,
		 const char *detail_sql, struct sg_buf *out);

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
	SG_M_UNKNOWN,      /* in the database, newer than every version in the directory: a newer release's */
	SG_M_MISSING,      /* in the database, not in the directory, below a version it has: deleted or renamed */
	SG_M_BEYOND,       /* in dir, newer than the target, not applied */
	SG_M_REAPPLY,      /* a repeatable whose file changed: pending, re-applied by up */
};

/* A done row whose recorded name is not the directory's file name for
 * its version: another release applied a different migration under this
 * version, or the file was renamed. Exit 4 naming both; 0 when they agree
 * (or the row records no name: adopted from another tool). */
int sg_row_check_name(const struct sg_history_row *row, const struct sg_migration *m, struct sg_error *err);

struct sg_plan_item {
	const char *version;
	const struct sg_migration *m;        /* NULL for UNKNOWN */
	const struct sg_history_row *row;    /* NULL if not applied */
	enum sg_mstate state;
	bool out_of_order;                   /* pending but older than newest applied */
	bool renamed;                        /* CHANGED: the row's name is not the file's */
};

struct sg_plan {
	struct sg_plan_item *items;   /* union of dir and history, by version */
	size_t count;
	/* Repeatable migrations, union of dir and history, by key: PENDING
	 * (no row), REAPPLY (changed), APPLIED, UNKNOWN (a row without a
	 * file: left alone). PENDING and REAPPLY count in npending. */
	struct sg_plan_item *reps;
	size_t nreps;
	size_t npending, nchanged, nfailed, npartial, nunknown, nmissing, nout_of_order, napplied;
	const char *target;           /* NULL when the directory is empty */
	const char *newest_applied;   /* set when a pending version is out of order (borrowed from the history) */
};

/* target NULL = newest in the directory. Fails (exit 2) if target is not
 * a version in the directory. */
int sg_plan_build(const struct sg_migration_set *set, const struct sg_history *h, const char *target,
		  struct sg_plan *plan, struct sg_error *err);
void sg_plan_free(struct sg_plan *plan);
/* Integrity check before doing anything (exit 4): failed rows, changed
 * checksums, missing versions, unknown versions under strict, out-of-order pending unless
 * allowed. Partial rows are not errors: the next lock holder resumes
 * them. The message names file, versions and the fix. */
int sg_plan_check(const struct sg_plan *plan, bool strict, bool allow_out_of_order,
		  struct sg_error *err);
const char *sg_mstate_name(enum sg_mstate s);

#endif
