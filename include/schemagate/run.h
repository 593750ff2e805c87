/*
 * run.h - one command's run, as the coordinator's modules share it.
 *
 *   coordinator.c  the state machine: a table of transitions, one step
 *                  function, the activity of each state
 *   session.c      connecting and retrying, reading the database's state
 *   apply.c        applying or reverting one migration
 *   commands.c     what each command decides when checking and does
 *                  under the lock
 *   status.c       status and readiness output
 *   outcome.c      what a failure means: reconnect, stopped, or failed
 *   events.c       the events command (the audit table)
 *
 * The run owns everything in it; coordinator.c creates and frees it.
 */
#ifndef SCHEMAGATE_RUN_H
#define SCHEMAGATE_RUN_H

#include "schemagate/config.h"
#include "schemagate/driver.h"
#include "schemagate/history.h"
#include "schemagate/lock.h"
#include "schemagate/loop.h"
#include "schemagate/migration.h"
#include "schemagate/url.h"

enum sg_state {
	SG_ST_INIT,
	SG_ST_CONNECTING,
	SG_ST_CHECKING,
	SG_ST_WAITING,
	SG_ST_CONTENDING,
	SG_ST_APPLYING,
	SG_ST_RELEASING,
	SG_ST_READY,
	SG_ST_FAILED,
};

struct sg_run;

/* --dry-run: what a writing command would do, item by item (commands.c
 * fills it from the same decisions the work makes; status.c prints it). */
struct sg_preview_item {
	const char *version, *name;
	char *action;          /* "apply", "revert", "resume at statement 3 of 5", ... (owned) */
	const char *file;      /* the file, or where a stored script comes from */
	int transaction;       /* 1 one transaction, 0 statement by statement, -1 runs nothing */
	size_t statements;     /* statement by statement: how many */
	const char *sql;       /* what would run (--sql); NULL when nothing runs */
};

struct sg_preview {
	struct sg_preview_item *items;
	size_t count;
	char **notes;          /* what else would happen ("would create ..."), owned */
	size_t nnotes;
	struct sg_revert_item *reverts;   /* owns the stored down scripts items point into */
	size_t nreverts;
};

/* What one command decides and does (commands.c). */
struct sg_command_plan {
	enum sg_command cmd;
	bool read_only;       /* never writes, never takes the lock */
	bool one_shot;        /* one connection attempt, no reconnect (probes) */
	bool missing_is_empty;/* a SQLite file that does not exist reads as empty (--dry-run) */
	bool recheck;         /* contending: a winner that finished ends the run */
	bool no_directory;    /* reads neither the directory nor the history (events) */
	/* CHECKING, with r->hist and r->plan read: where to go next (READY,
	 * CONTENDING, WAITING, FAILED with err). A question: writes nothing. */
	enum sg_state (*check)(struct sg_run *r, const char **reason, struct sg_error *err);
	/* APPLYING: the command's work, under the lock. */
	int (*work)(struct sg_run *r, struct sg_error *err);
	/* Entering READY: say so (log "ready", print status...), and verify
	 * what must hold. A failure turns the run to FAILED. */
	int (*report)(struct sg_run *r, struct sg_error *err);
	/* Before connecting, with the directory loaded: what can be refused
	 * offline (baseline VERSION not in the directory). Optional. */
	int (*validate)(struct sg_run *r, struct sg_error *err);
	/* --dry-run: what work would do, from the current view, read only. */
	int (*preview)(struct sg_run *r, struct sg_preview *out, struct sg_error *err);
};

/* The plan of cmd; with dry_run the read-only plan that prints what cmd
 * would do. NULL for commands without a database. */
const struct sg_command_plan *sg_command_plan_for(enum sg_command cmd, bool dry_run);

/* Who wants to know what the run did (serve's metrics). Optional. */
struct sg_run_observer {
	void (*applied)(void *ctx, const struct sg_migration *m, uint64_t duration_ms);
	void (*lock_acquired)(void *ctx, uint64_t waited_ms);
	/* the run has just read the history and built the plan (r->hist,
	 * r->plan; r->state says what for) */
	void (*viewed)(void *ctx, const struct sg_run *r);
	/* a migration's statement has run this long (0: none runs now);
	 * ratio 0..1 as the server last reported it, NAN when it did not */
	void (*statement)(void *ctx, double seconds, double ratio);
	void *ctx;
};

/* The progress report of the migration that runs (progress.c). */
struct sg_progress_watch {
	const char *file;              /* borrowed for the migration: "0002_x.up.sql" */
	const char *version, *name;
	uint64_t since;                /* the statement looked at: when it started */
	uint64_t next_ms;              /* its running time at the next line */
	double ratio;                  /* the server's last word, NAN = none */
	bool warned;                   /* a failed probe said so (once per migration) */
};

struct sg_run {
	const struct sg_config *cfg;
	const struct sg_command_plan *cmd;
	struct sg_run_observer observer;
	struct sg_loop loop;
	bool loop_ready;
	struct sg_url url;
	const struct sg_driver *drv;
	/* The directory, read, hashed and validated on libuv's thread pool
	 * while the run connects and reads the history (SPEC 5 step 1). The
	 * worker owns `set` and `dir_err` until `dir_done`, which the loop
	 * sets; nothing else touches them before (coordinator.c). */
	struct sg_migration_set set;
	uv_work_t dir_work;
	bool dir_started, dir_done;
	int dir_rc;
	struct sg_error dir_err;
	struct sg_conn *conn;          /* the run's one connection; NULL while disconnected */
	struct sg_server_info server;  /* what conn reached (session.c) */
	/* a writer on a read-only server: said so once, and since when it
	 * waits on this connection (it connects again every while) */
	bool said_read_only;
	uint64_t read_only_since_ms;
	struct sg_lock *lock;
	bool listening;
	enum sg_state state;
	/* the latest view of the database (session.c) */
	struct sg_history hist;
	struct sg_plan plan;
	bool have_view;
	/* status: what kept adoption from being previewed (a dirty foreign
	 * history); the view is built without it, printed, then this fails */
	struct sg_error unseen;
	/* clocks, monotonic ms */
	uint64_t contend_started_ms;   /* --lock-timeout counts from the first attempt */
	/* WAITING and CONTENDING, one poll a turn of the machine (each poll
	 * after the first is a self-transition whose action waits an
	 * interval): reset on entering the state (coordinator.c) */
	unsigned polls;                /* polls since the state was entered */
	uint64_t wait_logged_ms;       /* the last "still waiting" lock_wait line */
	uint64_t lock_waited_ms;       /* how long the lock took */
	int changed;                   /* migrations applied or reverted by this run */
	/* down --steps N, fixed to a version at the first plan, so a retry
	 * after a lost lock reverts the same migrations, not N more */
	char *down_to;
	struct sg_error work_err;      /* a failed work, reported after RELEASING */
	/* a run that ended READY but answers with another outcome: a dry
	 * run that would change something (6), with what it would do */
	struct sg_error answer;
	bool work_failed;
	char app_name[320];
	struct sg_progress_watch watch;
};

/* ---- coordinator.c --------------------------------------------------------- */

/* A run of command `as` (a command with a plan: up, wait, verify...; serve
 * drives up or wait): parses the URL, starts the loop (signals, --timeout)
 * and opens the lock. Exit code in err on failure. */
int sg_run_open(const struct sg_config *cfg, enum sg_command as, struct sg_run **out, struct sg_error *err);
/* Drive the state machine to READY or FAILED; returns the outcome. The
 * loop stays up (serve keeps using it); the lock and the connection are
 * given back. */
enum sg_outcome sg_run_drive(struct sg_run *r, struct sg_error *err);
void sg_run_close(struct sg_run *r);

/* ---- session.c ------------------------------------------------------------ */

/* Connect r->conn, retrying transient failures with backoff (100 ms -> 2 s,
 * jitter) for up to --connect-timeout; one attempt for one-shot commands. */
int sg_session_connect(struct sg_run *r, struct sg_error *err);
/* Open another connection like r->conn (the lease's renewal connection). */
int sg_session_open_extra(void *run, uint64_t lock_wait_ms, struct sg_conn **out, struct sg_error *err);
/* Ask the server once more what it is (r->server): a standby that was
 * promoted, read_only switched off. */
int sg_session_learn_server(struct sg_run *r, struct sg_error *err);
/* Close r->conn and forget everything tied to it (the lock, LISTEN). */
void sg_session_drop(struct sg_run *r);
/* Read the history and build the plan into r->hist / r->plan. */
int sg_session_read(struct sg_run *r, struct sg_error *err);
/* The same in two halves: the history alone (read only, needs no
 * directory, so it may run before the directory's verdict), then another
 * tool's history and the plan, from the directory. */
int sg_session_read_history(struct sg_run *r, struct sg_error *err);
int sg_session_build_view(struct sg_run *r, struct sg_error *err);
void sg_session_forget_view(struct sg_run *r);
/* ms * (0.8 .. 1.2): 200 pods polling in lockstep would hit the server together. */
uint64_t sg_jitter(uint64_t ms);

/* Ask the server, on a short-lived connection beside r->conn, what the
 * statement in flight on r->conn does (the driver's progress()); io is
 * the side io every wait of the probe goes through. */
int sg_session_progress(struct sg_run *r, struct sg_io *io, uint64_t budget_ms, struct sg_progress *out,
			struct sg_error *err);

/* ---- progress.c ----------------------------------------------------------- */

/* Around one migration: while one of its statements runs longer than
 * --progress-interval (10 s), the log says what it does every interval
 * (SPEC 8). file names it in the log; the strings are
 * borrowed until the end. Engines without a progress view (SQLite)
 * report nothing. */
void sg_progress_watch_begin(struct sg_run *r, const char *file, const char *version, const char *name);
void sg_progress_watch_end(struct sg_run *r);

/* ---- outcome.c ------------------------------------------------------------ */

/* Is this error a lost connection or a read-only server (connect again)
 * rather than a failure? */
bool sg_connection_lost(const struct sg_error *err);
/* Was it a stop schemagate asked for (a cancel of the loop's)? */
bool sg_stop_requested(const struct sg_error *err);
/* Did the statement itself fail: an error, a lock timeout, or a cancel
 * the server did on its own (statement_timeout, pg_cancel_backend)? */
bool sg_statement_failed(const struct sg_error *err);
/* The outcome err means; in_migration: a migration's own script was
 * running. A module's verdict (err->outcome already set) stands. */
enum sg_outcome sg_outcome_of(const struct sg_run *r, const struct sg_error *err, bool in_migration);
/* Is this failure the migration's own (exit 1, recorded), rather than one
 * the state machine handles (lost lock, lost connection, a stop, a
 * database error)? Sets err->outcome. */
bool sg_migration_failed(struct sg_run *r, struct sg_error *err);
/* After a failure in r->state: where the run goes (CONNECTING,
 * CONTENDING, or FAILED with err->outcome decided; a stop makes err the
 * stop's error, naming `doing`). A question: changes nothing but err. */
enum sg_state sg_outcome_next(struct sg_run *r, struct sg_error *err, const char *doing);
/* Fill err for a stopped run (signal 130/143, --timeout or lease 3, the
 * directory's own error when the bad directory stopped it). */
int sg_stopped_error(struct sg_run *r, struct sg_error *err, const char *doing);

/* ---- apply.c -------------------------------------------------------------- */

/* Apply m under the lock; with resume, continue its partial row from the
 * first statement not known to be done: in doubt (it may have run) when
 * the row's writer is gone, not when a human counted the one before it as
 * done (repair --resume). On failure err->kind tells the coordinator what
 * happened: LOCK_LOST (rolled back), CONNECTION, CANCELED, or a failure. */
int sg_apply_one(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *resume, bool in_doubt,
		 struct sg_error *err);
/* Run a repeatable migration's text under the lock and record its
 * checksum: a new row, or over prev (its row as read, which must still
 * record the checksum read, else LOCK_LOST). Failures as sg_apply_one. */
int sg_reapply_one(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *prev,
		   struct sg_error *err);

/* One migration to revert, with the down script to run: the directory's
 * (prepared by the loader) or the one stored in the history table
 * (prepared by the loader's rules into `stored`, which owns it). */
struct sg_revert_item {
	char *version, *name, *checksum;
	const char *down_sql;
	bool no_tx, split;
	const struct sg_statement_list *statements;
	struct sg_script stored;
	const struct sg_history_row *row;   /* as read */
	enum sg_row_state from;             /* its state */
	size_t start;                       /* down statements done (repair --resume) */
};
int sg_revert_one(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err);
void sg_revert_items_free(struct sg_revert_item *items, size_t n);

/* ---- events.c ------------------------------------------------------------- */

/* CHECKING for `events`: read the audit table, print it, READY. */
enum sg_state sg_events_check(struct sg_run *r, const char **reason, struct sg_error *err);

/* ---- stepwise.c ----------------------------------------------------------- */

/* A script run statement by statement with exact progress. */
struct sg_steps {
	const char *version;
	const char *file;              /* for messages */
	const struct sg_statement_list *list;
	/* the row's state while the script runs, its count kept in it:
	 * SG_ROW_PARTIAL (up) or SG_ROW_PARTIAL_REVERT (down) */
	enum sg_row_state row;
	size_t start;                  /* statements known done before this run */
	bool start_in_doubt;           /* resuming: statement `start` may have run already */
	/* A fresh apply where sg_steps_batch() says yes; else NULL. */
	struct sg_steps_fresh *fresh;
};

/*
 * Where the lock check, a statement that runs alone and the record that
 * counts it share one multi-statement round trip (MariaDB), a fresh apply
 * also sends the row's first write with the first statement and the row's
 * move to applied and the audit event with the last one.
 */
struct sg_steps_fresh {
	const char *insert;   /* SQL text of the row's first write (sg_row_move_sql) */
	const char *event;    /* the audit event's name ("apply") */
	uint64_t t0;          /* when the migration began (its duration) */
	bool inserted;        /* out: the row's first write is done */
	bool finished;        /* out: the row is applied and the event recorded */
};

/* Does this connection and lock send a statement with its bookkeeping in
 * one round trip (sg_steps.fresh may be set)? */
bool sg_steps_batch(struct sg_run *r);

/* Run list->items[start..]. *done ends at the number of statements known
 * done (all of them on success). A stop lets a statement that runs alone
 * finish within --stop-grace; err->outcome is 4 when a statement in
 * doubt neither succeeds nor proves it had run. */
int sg_steps_run(struct sg_run *r, const struct sg_steps *s, size_t *done, struct sg_error *err);

/* ---- status.c ------------------------------------------------------------- */

void sg_status_print(const struct sg_run *r);
/* --dry-run output on stdout (text, or JSON with --json). */
void sg_preview_print(const struct sg_run *r, const struct sg_preview *p);
void sg_preview_free(struct sg_preview *p);
/* status --check: 0, or -1 with err: exit 4 (failed, partial, changed;
 * unknown under --strict; out of order) or 6 (pending). */
int sg_status_check(const struct sg_run *r, struct sg_error *err);
/* "ready: database is at version X" and the database-ahead warning. */
void sg_status_log_ready(const struct sg_run *r, const char *suffix);

#endif
