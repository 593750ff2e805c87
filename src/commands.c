/*
 * commands.c - what each command decides when it has read the database,
 * and what it does under the lock (SPEC section 1).
 *
 * The state machine (coordinator.c) is the same for every command; a
 * command plugs in three functions: check (where to go after reading the
 * history), work (under the lock) and report (on reaching READY).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/adopt.h"
#include "schemagate/lint.h"
#include "schemagate/log.h"
#include "schemagate/run.h"

/* ---- judging the plan ---------------------------------------------------- */

/* At target, nothing failed, interrupted or changed. 1 ready, 0 not yet,
 * -1 integrity error. A partial row is "not yet": it is a migration in
 * progress, or one the next lock holder resumes. */
static int ready_check(struct sg_run *r, bool allow_out_of_order, struct sg_error *err)
{
	if (sg_plan_check(&r->plan, r->cfg->strict, allow_out_of_order, err) != 0)
		return -1;
	return r->plan.npending == 0 && r->plan.npartial == 0 ? 1 : 0;
}

static const struct sg_plan_item *first_in_state(const struct sg_plan *p, enum sg_mstate state)
{
	for (size_t i = 0; i < p->count; i++)
		if (p->items[i].state == state)
			return &p->items[i];
	return NULL;
}

/* `up` before the lock: a failed row is judged under the lock (the
 * message comes from the holder's plan check), so contend. */
static int waiter_check(struct sg_run *r, struct sg_error *err)
{
	if (first_in_state(&r->plan, SG_M_FAILED))
		return 0;
	return ready_check(r, r->cfg->allow_out_of_order, err);
}

/* ---- up ------------------------------------------------------------------ */

/* up --lint: every migration up would apply, before the lock is even
 * contended (the check writes nothing). */
static int lint_gate(const struct sg_run *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->plan.count + r->plan.nreps; i++) {
		const struct sg_plan_item *it = i < r->plan.count ? &r->plan.items[i] : &r->plan.reps[i - r->plan.count];
		if ((it->state == SG_M_PENDING || it->state == SG_M_PARTIAL || it->state == SG_M_REAPPLY) && it->m &&
		    sg_lint_gate(it->m, r->set.dialect, err) != 0)
			return -1;
	}
	return 0;
}

static enum sg_state check_up(struct sg_run *r, const char **reason, struct sg_error *err)
{
	/* a failed or partial row may be a winner at work: contend, and
	 * judge it under the lock */
	int ready = waiter_check(r, err);
	if (ready < 0)
		return SG_ST_FAILED;
	/* creating the history (baseline bootstrap, adoption) needs the lock */
	bool bootstrap = (!r->hist.exists && r->cfg->baseline_version) || r->hist.nadopted > 0;
	if (ready == 1 && !bootstrap) {
		*reason = "fast path: nothing pending, checksums match";
		return SG_ST_READY;
	}
	if (ready == 0 && r->cfg->up_lint && lint_gate(r, err) != 0)
		return SG_ST_FAILED;
	*reason = ready == 0 ? "migrations are pending"
	      : r->hist.nadopted > 0 ? "another tool's history is to be adopted"
				      : "the history table does not exist yet (--baseline-version)";
	return SG_ST_CONTENDING;
}

/* The migrations a baseline up to `upto` records: those not in the history. */
static bool baselines(const struct sg_run *r, const struct sg_migration *m, const char *upto)
{
	return sg_version_cmp(m->version, upto) <= 0 && !sg_history_find(&r->hist, m->version);
}

static int baseline_upto(struct sg_run *r, const char *upto, struct sg_error *err)
{
	int n = 0;
	for (size_t i = 0; i < r->set.count; i++) {
		const struct sg_migration *m = &r->set.items[i];
		if (!baselines(r, m, upto))
			continue;
		struct sg_row_change chg = {.version = m->version, .m = m};
		if (sg_row_move(r->conn, r->cfg->table, SG_ROW_ABSENT, SG_EV_BASELINE, &chg, err) != 0 ||
		    sg_event_record(r->conn, r->cfg->table, "baseline", m->version, "ok", NULL, err) != 0)
			return -1;
		n++;
	}
	sg_info("baselined", "recorded %d migration(s) up to %s as applied without running them", n, upto);
	return 0;
}

/* Under the lock, before anything else touches the history table:
 * another tool's history becomes schemagate's (adopt.h). */
static int adopt(struct sg_run *r, struct sg_error *err)
{
	return sg_adopt_record(r->conn, r->cfg->adopt, r->cfg->table, &r->set, err);
}

/* Has the history never been used: no row, no event? (a run killed
 * between creating the tables and recording anything in them) */
static int never_used(struct sg_run *r, bool *unused, struct sg_error *err)
{
	bool any = true;
	if (sg_session_read(r, err) != 0 || sg_history_has_events(r->conn, r->cfg->table, &any, err) != 0)
		return -1;
	*unused = r->hist.count == 0 && !any;
	return 0;
}

/*
 * up --baseline-version on a database that predates schemagate: the
 * tables and the baseline rows commit in one transaction, so a kill
 * leaves either both or neither. (On MySQL the CREATE commits at once; a
 * history left empty and without events is then still seen as new.)
 */
static int baseline_bootstrap(struct sg_run *r, struct sg_error *err)
{
	bool any = true;
	if (sg_conn_begin(r->conn, err) != 0)
		return -1;
	if (sg_history_ensure(r->conn, r->cfg->table, err) == 0 &&
	    (!r->drv->has_user_tables || r->drv->has_user_tables(r->conn, r->cfg->table, &any, err) == 0) &&
	    (!any || (sg_session_read(r, err) == 0 && baseline_upto(r, r->cfg->baseline_version, err) == 0)) &&
	    sg_conn_commit(r->conn, err) == 0)
		return sg_session_read(r, err);
	struct sg_error e = {0};
	if (!sg_connection_lost(err) && sg_conn_rollback(r->conn, &e) != 0)
		sg_debug("rollback", "rollback failed: %s", e.msg);
	return -1;
}

/* Under the lock, before any work: the state tables exist, and the view of
 * the history is re-read (the previous holder may have done part). */
static int prepare(struct sg_run *r, struct sg_error *err)
{
	bool existed = false, unused = false;
	if (adopt(r, err) != 0 || r->drv->table_exists(r->conn, r->cfg->table, &existed, err) != 0)
		return -1;
	if (r->cfg->baseline_version && r->cfg->command == SG_CMD_UP) {
		if (existed && never_used(r, &unused, err) != 0)
			return -1;
		if (!existed || unused)
			return baseline_bootstrap(r, err);
	}
	return sg_history_ensure(r->conn, r->cfg->table, err) == 0 ? sg_session_read(r, err) : -1;
}

/* Under the lock, a partial row's writer is gone: this holder resumes it,
 * unless this directory does not know it (a newer release's migration). */
static int check_resumable(struct sg_run *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->plan.count; i++) {
		const struct sg_plan_item *it = &r->plan.items[i];
		if (it->state == SG_M_PARTIAL && !it->m)
			return sg_fail(err, SG_OUTCOME_INTEGRITY, "migration %s is partial (%s) and this directory does "
				       "not have it: only a release that has it can resume it", it->version,
				       it->row->error ? it->row->error : "interrupted");
	}
	return 0;
}

/* The first migration ever run here failed because what it creates is
 * there already: a database that predates schemagate. Say how to adopt
 * it rather than leave the operator with the server's words alone. */
static void suggest_baseline(struct sg_run *r, struct sg_error *err)
{
	if (r->changed > 0 || r->plan.napplied > 0 || err->kind != SG_ERRK_STATEMENT || !strstr(err->msg, "already exists"))
		return;
	size_t n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, "; if the database predates schemagate, record what it "
		 "already holds with `schemagate baseline VERSION` (the newest migration whose changes it has), "
		 "then run up again");
}

/* After every versioned migration, under the same lock: each repeatable
 * migration that is new or whose file changed, in name order. */
static int apply_repeatables(struct sg_run *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->plan.nreps; i++) {
		const struct sg_plan_item *it = &r->plan.reps[i];
		if (it->state != SG_M_PENDING && it->state != SG_M_REAPPLY)
			continue;
		if (sg_loop_stopping(&r->loop))
			return sg_stopped_error(r, err, "between two migrations");
		if (sg_reapply_one(r, it->m, it->row, err) != 0)
			return -1;
	}
	return 0;
}

static int work_up(struct sg_run *r, struct sg_error *err)
{
	if (prepare(r, err) != 0 || sg_plan_check(&r->plan, r->cfg->strict, r->cfg->allow_out_of_order, err) != 0 ||
	    check_resumable(r, err) != 0)
		return -1;
	for (size_t i = 0; i < r->plan.count; i++) {
		const struct sg_plan_item *it = &r->plan.items[i];
		if (it->state != SG_M_PENDING && it->state != SG_M_PARTIAL)
			continue;
		if (sg_loop_stopping(&r->loop))
			return sg_stopped_error(r, err, "between two migrations");
		if (sg_apply_one(r, it->m, it->state == SG_M_PARTIAL ? it->row : NULL, true, err) != 0) {
			suggest_baseline(r, err);
			return -1;
		}
	}
	return apply_repeatables(r, err);
}

static int report_ready(struct sg_run *r, struct sg_error *err)
{
	/* after changing the database, read it back */
	if (r->changed > 0 && sg_session_read(r, err) != 0)
		return -1;
	int ready = ready_check(r, true, err);
	if (ready < 0)
		return -1;
	if (ready == 0)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "after applying, %zu migration(s) are still pending",
			       r->plan.npending + r->plan.npartial);
	sg_status_log_ready(r, "");
	return 0;
}

/* ---- wait, verify, status ------------------------------------------------ */

/*
 * `wait` never takes the lock, so it judges what it sees: a failed row is
 * final (exit 4 at once), and so is a partial row that nobody is working
 * on (its writer died and no `up` has taken the lock to resume it yet).
 */
static enum sg_state check_wait(struct sg_run *r, const char **reason, struct sg_error *err)
{
	int ready = ready_check(r, r->cfg->allow_out_of_order, err);
	if (ready < 0)
		return SG_ST_FAILED;
	const struct sg_plan_item *partial = first_in_state(&r->plan, SG_M_PARTIAL);
	if (partial) {
		bool held = true;
		if (sg_lock_probe(r->lock, r->conn, &held, err) != 0)
			return SG_ST_FAILED;
		if (!held) {
			sg_fail(err, SG_OUTCOME_INTEGRITY, "migration %s is partial (%s) and no instance holds the lock: it "
				"was interrupted; the next `schemagate up` resumes it", partial->version,
				partial->row->error ? partial->row->error : "interrupted");
			return SG_ST_FAILED;
		}
	}
	*reason = ready ? "already at the target" : "waiting for another instance to migrate";
	return ready ? SG_ST_READY : SG_ST_WAITING;
}

static enum sg_state check_verify(struct sg_run *r, const char **reason, struct sg_error *err)
{
	int ready = ready_check(r, r->cfg->allow_out_of_order, err);
	if (ready < 0)
		return SG_ST_FAILED;
	if (ready == 0) {
		sg_fail(err, SG_OUTCOME_PENDING, "not ready: %zu migration(s) pending%s (target %s)", r->plan.npending,
			r->plan.npartial ? ", one partly applied" : "", r->plan.target ? r->plan.target : "0");
		return SG_ST_FAILED;
	}
	*reason = "verified: at the target, checksums match";
	return SG_ST_READY;
}

static int report_verified(struct sg_run *r, struct sg_error *err)
{
	sg_status_log_ready(r, ", checksums match");
	return 0;
}

/* lint --pending: what up would apply (pending and partly applied
 * versions up to the target), read only; the exit code is lint's. */
static enum sg_state check_lint_pending(struct sg_run *r, const char **reason, struct sg_error *err)
{
	const char **versions = sg_calloc(r->plan.count + r->plan.nreps + 1, sizeof(*versions));
	size_t n = 0;
	for (size_t i = 0; i < r->plan.count; i++)
		if (r->plan.items[i].state == SG_M_PENDING || r->plan.items[i].state == SG_M_PARTIAL)
			versions[n++] = r->plan.items[i].version;
	for (size_t i = 0; i < r->plan.nreps; i++)
		if (r->plan.reps[i].state == SG_M_PENDING || r->plan.reps[i].state == SG_M_REAPPLY)
			versions[n++] = r->plan.reps[i].version;
	const struct sg_config *cfg = r->cfg;
	struct sg_lint_request req = {.dir = cfg->dir, .dialect = sg_dialect_name(r->set.dialect), .strict = cfg->strict,
				      .format = cfg->lint_format, .only_versions = true, .versions = versions,
				      .nversions = n};
	int rc = sg_lint(&req, err);
	free(versions);
	if (rc != 0)
		return SG_ST_FAILED;
	*reason = "pending migrations linted";
	return SG_ST_READY;
}

static enum sg_state check_status(struct sg_run *r, const char **reason, struct sg_error *err)
{
	*reason = "status read";
	return SG_ST_READY;
}

static int report_status(struct sg_run *r, struct sg_error *err)
{
	sg_status_print(r);
	if (r->unseen.outcome) {
		*err = r->unseen;
		return -1;
	}
	return r->cfg->status_check ? sg_status_check(r, err) : 0;
}

/* ---- down, rollback ------------------------------------------------------ */

static enum sg_state check_writes(struct sg_run *r, const char **reason, struct sg_error *err)
{
	*reason = "this command writes";
	return SG_ST_CONTENDING;
}

/* down --steps N: the version to go down to, fixed once. */
static void fix_down_target(struct sg_run *r)
{
	if (r->down_to || r->cfg->down_to || r->cfg->command != SG_CMD_DOWN)
		return;
	size_t n = 0;
	for (size_t i = r->hist.count; i-- > 0;) {
		if (++n > (size_t)r->cfg->down_steps) {
			r->down_to = sg_strdup(r->hist.rows[i].version);
			return;
		}
	}
	r->down_to = sg_strdup("0");
}

/* One revert: the row, and the down script to run (the directory's file
 * when prefer_file and it has one, else the one stored at apply time). */
static int revert_item(struct sg_run *r, const struct sg_history_row *row, const struct sg_migration *m,
		       bool prefer_file, struct sg_revert_item *it, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	it->version = sg_strdup(row->version);
	it->name = sg_strdup(row->name);
	it->checksum = sg_strdup(row->checksum);
	it->row = row;
	it->from = sg_row_state_of(row);
	if (prefer_file && m && m->down_sql) {
		it->down_sql = m->down_sql;
		it->no_tx = m->down_no_tx;
		it->split = m->down_split;
		it->statements = &m->down_statements;
		return 0;
	}
	char *stored = NULL;
	if (sg_history_down_sql(r->conn, cfg->table, row->version, &stored, err) != 0)
		return -1;
	if (!stored)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "cannot revert %s: no down script in the directory or "
			       "recorded in %s when it was applied", row->version, cfg->table);
	/* the rules the loader applies to a file, before anything runs */
	char *what = sg_asprintf("the down script of %s stored in %s", row->version, cfg->table);
	int prc = sg_script_prepare(stored, false, r->set.dialect, what, &it->stored, err);
	free(what);
	free(stored);
	if (prc != 0)
		return -1;
	it->down_sql = it->stored.sql;
	it->no_tx = it->stored.no_tx;
	it->split = it->stored.split;
	it->statements = &it->stored.statements;
	return 0;
}

/*
 * What `down` or `rollback` reverts, newest first, with the down script
 * to run: rollback uses the script stored at apply time (the old image
 * does not have the newer files); down prefers the directory's file and
 * falls back to the stored one.
 */
static int collect_reverts(struct sg_run *r, struct sg_revert_item **out, size_t *nout, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	const struct sg_history *h = &r->hist;
	fix_down_target(r);
	const char *down_to = cfg->down_to ? cfg->down_to : r->down_to;
	struct sg_revert_item *items = sg_calloc(h->count + 1, sizeof(*items));
	size_t n = 0;
	const char *below_known = NULL;   /* rollback: the newest row this directory knows */
	for (size_t i = h->count; i-- > 0;) {
		const struct sg_history_row *row = &h->rows[i];
		const struct sg_migration *m = sg_migration_find(&r->set, row->version);
		if (cfg->command == SG_CMD_DOWN && sg_version_cmp(row->version, down_to) <= 0)
			break;
		if (cfg->command == SG_CMD_ROLLBACK && m) {
			below_known = row->version;
			continue;
		}
		if (cfg->command == SG_CMD_ROLLBACK && below_known) {
			sg_revert_items_free(items, n);
			return sg_fail(err, SG_OUTCOME_INTEGRITY,
				       "rollback: applied version %s is missing from the migration directory but older "
				       "than its applied version %s (deleted or renamed, not a newer release's): "
				       "rollback never reverts out of order; restore its file", row->version, below_known);
		}
		const struct sg_row_transition *t = sg_row_transition_find(sg_row_state_of(row), SG_EV_REVERT_START);
		if (t->refusal) {
			sg_revert_items_free(items, n);
			char *what = sg_asprintf("cannot revert: migration %s is %s", row->version, row->status);
			sg_row_refuse(t, row->version, what, err);
			free(what);
			return -1;
		}
		if (revert_item(r, row, m, cfg->command == SG_CMD_DOWN, &items[n++], err) != 0) {
			sg_revert_items_free(items, n);
			return -1;
		}
	}
	*out = items;
	*nout = n;
	return 0;
}

static int work_revert(struct sg_run *r, struct sg_error *err)
{
	if (adopt(r, err) != 0 || sg_session_read(r, err) != 0)
		return -1;
	struct sg_revert_item *items = NULL;
	size_t n = 0;
	if (collect_reverts(r, &items, &n, err) != 0)
		return -1;
	if (n == 0)
		sg_info("nothing_to_revert", "nothing to revert");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (sg_loop_stopping(&r->loop))
			rc = sg_stopped_error(r, err, "between two migrations");
		else
			rc = sg_revert_one(r, &items[i], err);
	}
	sg_revert_items_free(items, n);
	/* rollback (the old image): its own repeatable texts come back where
	 * the database has another one; down never touches them */
	if (rc == 0 && r->cfg->command == SG_CMD_ROLLBACK)
		rc = n == 0 || sg_session_read(r, err) == 0 ? apply_repeatables(r, err) : -1;
	return rc;
}

/* ---- baseline, repair ---------------------------------------------------- */

/* baseline VERSION: a version of the directory (offline check). */
static int validate_baseline(struct sg_run *r, struct sg_error *err)
{
	if (!sg_migration_find(&r->set, r->cfg->baseline_version))
		return sg_fail(err, SG_OUTCOME_USAGE, "baseline %s: the migration directory %s has no version %s",
			       r->cfg->baseline_version, r->cfg->dir, r->cfg->baseline_version);
	return 0;
}

/* Baselining adopts a database that predates schemagate: nothing newer
 * than VERSION may be applied already. */
static int baseline_allowed(struct sg_run *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->hist.count; i++) {
		const struct sg_history_row *row = &r->hist.rows[i];
		if (sg_version_cmp(row->version, r->cfg->baseline_version) > 0 &&
		    (!strcmp(row->status, "applied") || !strcmp(row->status, "baselined")))
			return sg_fail(err, SG_OUTCOME_USAGE, "baseline %s: %s already has version %s %s; a baseline only "
				       "adopts a database that predates schemagate (use up, or down --to)",
				       r->cfg->baseline_version, r->cfg->table, row->version, row->status);
	}
	return 0;
}

static int work_baseline(struct sg_run *r, struct sg_error *err)
{
	if (adopt(r, err) != 0 || sg_history_ensure(r->conn, r->cfg->table, err) != 0 || sg_session_read(r, err) != 0 ||
	    baseline_allowed(r, err) != 0)
		return -1;
	return baseline_upto(r, r->cfg->baseline_version, err);
}

static bool row_is_done_state(const struct sg_history_row *row)
{
	enum sg_row_state st = sg_row_state_of(row);
	return st == SG_ROW_APPLIED || st == SG_ROW_BASELINED;
}

static int repair_checksums(struct sg_run *r, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	int n = 0, rc = 0;
	/* a name that differs is another migration, not an edit: refuse
	 * before touching any row */
	for (size_t i = 0; i < r->hist.count; i++) {
		const struct sg_history_row *row = &r->hist.rows[i];
		const struct sg_migration *m = sg_migration_find(&r->set, row->version);
		if (m && row_is_done_state(row) && sg_row_check_name(row, m, err) != 0)
			return -1;
	}
	for (size_t i = 0; rc == 0 && i < r->hist.count; i++) {
		const struct sg_history_row *row = &r->hist.rows[i];
		const struct sg_migration *m = sg_migration_find(&r->set, row->version);
		if (!m || strcmp(m->checksum, row->checksum) == 0)
			continue;
		const struct sg_row_transition *t = sg_row_transition_find(sg_row_state_of(row), SG_EV_ACCEPT_CHECKSUM);
		if (t->refusal) {
			/* the checksum of a partial or failed row names the file
			 * that ran: the row's own repair decides what it becomes */
			sg_warn("repair", "version %s is %s: its checksum is left as it is; repair it with `schemagate "
				"repair %s --applied|--reverted|--resume`", row->version, row->status, row->version);
			continue;
		}
		char *detail = sg_asprintf("checksum %s -> %s (%s)", row->checksum, m->checksum, m->up_file);
		struct sg_row_change chg = {.version = row->version, .checksum = m->checksum};
		rc = sg_row_move(r->conn, cfg->table, t->from, SG_EV_ACCEPT_CHECKSUM, &chg, err);
		if (rc == 0)
			rc = sg_event_record(r->conn, cfg->table, "repair", row->version, "accept-checksum", detail, err);
		if (rc == 0)
			sg_info("repaired", "accepted the current checksum of %s", m->up_file);
		free(detail);
		n++;
	}
	if (rc == 0 && n == 0)
		sg_info("repaired", "every checksum already matches");
	return rc;
}

static bool is_revert(enum sg_row_state s) { return s == SG_ROW_PARTIAL_REVERT || s == SG_ROW_FAILED_REVERT; }

/* The failed or partial row `repair VERSION` is about. */
static const struct sg_history_row *repair_row(struct sg_run *r, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	if (!r->hist.exists) {
		sg_fail(err, SG_OUTCOME_USAGE, "nothing to repair: history table %s does not exist", cfg->table);
		return NULL;
	}
	const struct sg_history_row *row = sg_history_find(&r->hist, cfg->repair_version);
	if (!row) {
		sg_fail(err, SG_OUTCOME_USAGE, "nothing to repair: version %s is not in %s", cfg->repair_version, cfg->table);
		return NULL;
	}
	enum sg_row_state st = sg_row_state_of(row);
	if (st == SG_ROW_APPLIED || st == SG_ROW_BASELINED) {
		sg_fail(err, SG_OUTCOME_USAGE, "version %s is %s, not failed or partial: nothing to repair", row->version,
			row->status);
		return NULL;
	}
	if (cfg->repair_action == SG_REPAIR_RESUME && !is_revert(st) && !sg_migration_find(&r->set, row->version)) {
		sg_fail(err, SG_OUTCOME_USAGE, "cannot resume %s: this directory does not have it", row->version);
		return NULL;
	}
	return row;
}

static int repair_version(struct sg_run *r, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	const struct sg_history_row *row = repair_row(r, err);
	if (!row)
		return -1;
	bool applied = cfg->repair_action == SG_REPAIR_APPLIED;
	char *detail = sg_asprintf("was %s after %ld statement(s)%s%s", row->status, row->statements_done,
				   row->error ? ": " : "", row->error ? row->error : "");
	struct sg_row_change chg = {.version = row->version};
	int rc = sg_row_move(r->conn, cfg->table, sg_row_state_of(row),
			     applied ? SG_EV_REPAIR_APPLIED : SG_EV_REPAIR_REVERTED, &chg, err);
	if (rc == 0)
		rc = sg_event_record(r->conn, cfg->table, "repair", row->version,
				     applied ? "marked-applied" : "marked-reverted", detail, err);
	if (rc == 0)
		sg_info("repaired", "version %s marked %s", row->version, applied ? "applied" : "reverted");
	free(detail);
	return rc;
}

/*
 * repair VERSION --resume: a human completed statement done+1 of the
 * script that stopped (the up script for partial/failed, the down script
 * for partial-revert/failed-revert); the rest of it runs under this lock.
 * The statements of the current file are the ones that run (the up file's
 * checksum is recorded with them); with no statement after the one done by
 * hand left, or no such script, it refuses (exit 4) naming the other
 * repairs. *plan (when not NULL) receives the script and the first
 * statement to run, for --dry-run.
 */
struct resume_plan {
	const struct sg_migration *m;         /* the up script, or NULL */
	struct sg_revert_item revert;         /* the down script (revert.down_sql set) */
	size_t first;                         /* the first statement to run */
	size_t count;                         /* statements in the script */
};

static void resume_plan_free(struct resume_plan *rp)
{
	free(rp->revert.version);
	free(rp->revert.name);
	free(rp->revert.checksum);
	sg_script_free(&rp->revert.stored);
}

static int plan_resume(struct sg_run *r, const struct sg_history_row *row, struct resume_plan *rp,
		       struct sg_error *err)
{
	memset(rp, 0, sizeof(*rp));
	enum sg_row_state st = sg_row_state_of(row);
	const struct sg_migration *m = sg_migration_find(&r->set, row->version);
	rp->first = (size_t)(row->statements_done < 0 ? 0 : row->statements_done) + 1;
	const char *script = "up script";
	if (is_revert(st)) {
		script = "down script";
		if (revert_item(r, row, m, true, &rp->revert, err) != 0) {
			sg_error_prefix(err, "cannot resume the revert of %s", row->version);
			err->outcome = SG_OUTCOME_INTEGRITY;
			return -1;
		}
		rp->count = rp->revert.split ? rp->revert.statements->count : 0;
	} else {
		rp->m = m;
		rp->count = m->up_split ? m->up_statements.count : 0;
	}
	/* an interrupted script whose every statement ran (killed before its
	 * row moved on): nothing is in doubt, resuming only finishes it */
	if ((st == SG_ROW_PARTIAL || st == SG_ROW_PARTIAL_REVERT) && rp->count > 0 &&
	    (size_t)row->statements_done == rp->count)
		rp->first = rp->count;
	if (rp->count == 0 || rp->first > rp->count)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "cannot resume %s: its %s now has %zu statement(s) run one by one, "
			       "and statement %zu is the one counted as done by hand; finish by hand and run `schemagate "
			       "repair %s --%s`", row->version, script, rp->count, rp->first, row->version,
			       is_revert(st) ? "reverted` (or `--applied` if everything is back)" : "applied` (or "
			       "`--reverted` if none of its changes are in the database)");
	return 0;
}

static int repair_resume(struct sg_run *r, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	const struct sg_history_row *row = repair_row(r, err);
	struct resume_plan rp;
	if (!row)
		return -1;
	if (plan_resume(r, row, &rp, err) != 0) {
		resume_plan_free(&rp);
		return -1;
	}
	char *note = sg_asprintf("statement %zu of the %s completed by hand (repair --resume)", rp.first,
				 rp.m ? "up script" : "down script");
	struct sg_row_change chg = {.version = row->version, .row = row, .statements_done = (long)rp.first,
				    .note = note, .checksum = rp.m ? rp.m->checksum : NULL};
	int rc = sg_row_move(r->conn, cfg->table, sg_row_state_of(row), SG_EV_REPAIR_RESUME, &chg, err);
	if (rc == 0)
		rc = sg_event_record(r->conn, cfg->table, "repair", row->version, "resume", note, err);
	free(note);
	if (rc == 0 && rp.first == rp.count)
		sg_info("repaired", "version %s: the last statement of its %s was done by hand", row->version,
			rp.m ? "up script" : "down script");
	else if (rc == 0)
		sg_info("repaired", "version %s: statement %zu counted as done by hand; running statements %zu-%zu of its "
			"%s", row->version, rp.first, rp.first + 1, rp.count, rp.m ? "up script" : "down script");
	if (rc == 0 && rp.m) {
		rc = sg_session_read(r, err);
		/* the statements after it never ran: none is in doubt */
		if (rc == 0)
			rc = sg_apply_one(r, rp.m, sg_history_find(&r->hist, rp.m->version), false, err);
	} else if (rc == 0) {
		rp.revert.from = SG_ROW_PARTIAL_REVERT;
		rp.revert.start = rp.first;
		rp.revert.row = NULL;
		rc = sg_revert_one(r, &rp.revert, err);
	}
	resume_plan_free(&rp);
	return rc;
}

static int work_repair(struct sg_run *r, struct sg_error *err)
{
	if (sg_session_read(r, err) != 0)
		return -1;
	if (!r->hist.exists)
		return sg_fail(err, SG_OUTCOME_USAGE, "nothing to repair: history table %s does not exist", r->cfg->table);
	switch (r->cfg->repair_action) {
	case SG_REPAIR_ACCEPT_CHECKSUMS: return repair_checksums(r, err);
	case SG_REPAIR_RESUME: return repair_resume(r, err);
	default: return repair_version(r, err);
	}
}

static int report_nothing(struct sg_run *r, struct sg_error *err) { return 0; }

/* ---- --dry-run: the same decisions, printed ------------------------------- */

static struct sg_preview_item *add_item(struct sg_preview *p, const char *version, const char *name, char *action)
{
	p->items = sg_realloc(p->items, (p->count + 1) * sizeof(*p->items));
	struct sg_preview_item *it = &p->items[p->count++];
	*it = (struct sg_preview_item){.version = version, .name = name, .action = action, .transaction = -1};
	return it;
}

static void add_note(struct sg_preview *p, char *note)
{
	p->notes = sg_realloc(p->notes, (p->nnotes + 1) * sizeof(*p->notes));
	p->notes[p->nnotes++] = note;
}

/* What runs a migration's up script: one transaction, or statements. */
static void runs_up(struct sg_preview_item *it, const struct sg_migration *m)
{
	it->file = m->up_file;
	it->transaction = m->up_split ? 0 : 1;
	it->statements = m->up_split ? m->up_statements.count : 0;
	it->sql = m->up_sql;
}

static void note_history_changes(struct sg_run *r, struct sg_preview *p)
{
	if (!r->hist.exists)
		add_note(p, sg_asprintf("would create the history table %s and its audit table", r->cfg->table));
	if (r->hist.nadopted > 0)
		add_note(p, sg_asprintf("would adopt %zu version(s) from %s as baselined", r->hist.nadopted,
					r->hist.adopted_from ? r->hist.adopted_from : "another tool's history"));
}

/* The repeatable migrations up and rollback would (re-)apply. */
static void preview_repeatables(struct sg_run *r, struct sg_preview *p)
{
	for (size_t i = 0; i < r->plan.nreps; i++) {
		const struct sg_plan_item *it = &r->plan.reps[i];
		if (it->state == SG_M_PENDING || it->state == SG_M_REAPPLY)
			runs_up(add_item(p, it->version, it->m->name, sg_strdup(it->row ? "re-apply (changed)" : "apply")),
				it->m);
	}
}

static int preview_up(struct sg_run *r, struct sg_preview *p, struct sg_error *err)
{
	if (sg_plan_check(&r->plan, r->cfg->strict, r->cfg->allow_out_of_order, err) != 0 || check_resumable(r, err) != 0)
		return -1;
	note_history_changes(r, p);
	if (!r->hist.exists && r->cfg->baseline_version) {
		bool any = true;
		if (r->drv->has_user_tables && r->drv->has_user_tables(r->conn, r->cfg->table, &any, err) != 0)
			return -1;
		if (any)
			for (size_t i = 0; i < r->set.count; i++)
				if (baselines(r, &r->set.items[i], r->cfg->baseline_version))
					add_item(p, r->set.items[i].version, r->set.items[i].name,
						 sg_strdup("record as baselined (--baseline-version: not run)"));
	}
	for (size_t i = 0; i < r->plan.count; i++) {
		const struct sg_plan_item *it = &r->plan.items[i];
		bool baselined = false;
		for (size_t k = 0; k < p->count; k++)
			baselined |= sg_version_cmp(p->items[k].version, it->version) == 0;
		if (baselined || (it->state != SG_M_PENDING && it->state != SG_M_PARTIAL))
			continue;
		char *action = it->state == SG_M_PENDING ? sg_strdup("apply")
			     : sg_asprintf("resume at statement %ld of %zu (interrupted)", it->row->statements_done + 1,
					   it->m->up_statements.count);
		runs_up(add_item(p, it->version, it->m->name, action), it->m);
	}
	preview_repeatables(r, p);
	return 0;
}

static int preview_revert(struct sg_run *r, struct sg_preview *p, struct sg_error *err)
{
	if (collect_reverts(r, &p->reverts, &p->nreverts, err) != 0)
		return -1;
	for (size_t i = 0; i < p->nreverts; i++) {
		const struct sg_revert_item *rv = &p->reverts[i];
		const struct sg_migration *m = sg_migration_find(&r->set, rv->version);
		struct sg_preview_item *it = add_item(p, rv->version, rv->name, sg_strdup("revert"));
		it->file = rv->down_sql == (m ? m->down_sql : NULL) ? m->down_file : "down script stored in the history table";
		it->transaction = rv->split ? 0 : 1;
		it->statements = rv->split ? rv->statements->count : 0;
		it->sql = rv->down_sql;
	}
	if (r->cfg->command == SG_CMD_ROLLBACK)
		preview_repeatables(r, p);
	return 0;
}

static int preview_baseline(struct sg_run *r, struct sg_preview *p, struct sg_error *err)
{
	if (baseline_allowed(r, err) != 0)
		return -1;
	note_history_changes(r, p);
	for (size_t i = 0; i < r->set.count; i++)
		if (baselines(r, &r->set.items[i], r->cfg->baseline_version))
			add_item(p, r->set.items[i].version, r->set.items[i].name, sg_strdup("record as baselined (not run)"));
	return 0;
}

static int preview_repair(struct sg_run *r, struct sg_preview *p, struct sg_error *err)
{
	if (r->cfg->repair_action == SG_REPAIR_ACCEPT_CHECKSUMS) {
		for (size_t i = 0; i < r->hist.count; i++) {
			const struct sg_history_row *row = &r->hist.rows[i];
			const struct sg_migration *m = sg_migration_find(&r->set, row->version);
			if (m && strcmp(m->checksum, row->checksum) != 0)
				add_item(p, row->version, row->name,
					 sg_asprintf("record checksum %.12s... of %s (was %.12s...)", m->checksum, m->up_file,
						     row->checksum))->file = m->up_file;
		}
		return 0;
	}
	const struct sg_history_row *row = repair_row(r, err);
	if (!row)
		return -1;
	struct resume_plan rp;
	struct sg_preview_item *it;
	switch (r->cfg->repair_action) {
	case SG_REPAIR_APPLIED:
		add_item(p, row->version, row->name, sg_asprintf("mark applied (was %s after %ld statement(s))", row->status,
							      row->statements_done));
		break;
	case SG_REPAIR_REVERTED:
		add_item(p, row->version, row->name, sg_asprintf("forget it: delete its row (was %s after %ld statement(s));"
							      " the next up runs it from the start", row->status,
							      row->statements_done));
		break;
	default:
		if (plan_resume(r, row, &rp, err) != 0) {
			resume_plan_free(&rp);
			return -1;
		}
		/* exactly what runs: the statements after the one done by hand */
		const struct sg_statement_list *list = rp.m ? &rp.m->up_statements : rp.revert.statements;
		const char *script = rp.m ? rp.m->up_sql : rp.revert.down_sql;
		it = add_item(p, row->version, row->name,
			      rp.first == rp.count
				      ? sg_asprintf("count statement %zu as done by hand (the last of its %s); nothing "
						    "else runs", rp.first, rp.m ? "up script" : "down script")
				      : sg_asprintf("count statement %zu as done by hand, then run statements %zu-%zu of "
						    "its %s", rp.first, rp.first + 1, rp.count,
						    rp.m ? "up script" : "down script"));
		it->file = rp.m ? rp.m->up_file : rp.revert.down_sql == (rp.revert.stored.sql) ?
			"down script stored in the history table" : sg_migration_find(&r->set, row->version)->down_file;
		it->transaction = 0;
		it->statements = rp.count - rp.first;
		it->sql = rp.first < rp.count ? script + list->items[rp.first].start : NULL;
		if (!rp.m) {
			/* the preview owns the stored script the SQL points into */
			p->reverts = sg_realloc(p->reverts, (p->nreverts + 1) * sizeof(*p->reverts));
			p->reverts[p->nreverts++] = rp.revert;
		}
		break;
	}
	return 0;
}

void sg_preview_free(struct sg_preview *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->items[i].action);
	free(p->items);
	for (size_t i = 0; i < p->nnotes; i++)
		free(p->notes[i]);
	free(p->notes);
	sg_revert_items_free(p->reverts, p->nreverts);
	memset(p, 0, sizeof(*p));
}

/* The dry-run plan of every writing command: read only, one connection
 * attempt, nothing created; prints, then exits 0 (nothing to do) or 6. */
static enum sg_state check_dry_run(struct sg_run *r, const char **reason, struct sg_error *err)
{
	struct sg_preview p = {0};
	int rc = r->cmd->preview(r, &p, err);
	if (rc == 0)
		sg_preview_print(r, &p);
	size_t n = p.count;
	sg_preview_free(&p);
	if (rc != 0)
		return SG_ST_FAILED;
	if (n == 0) {
		*reason = "dry run: nothing to do";
		return SG_ST_READY;
	}
	/* an answer, not a failure: the run is over and nothing went wrong */
	sg_fail(&r->answer, SG_OUTCOME_PENDING, "dry run: %zu action(s) would be taken; nothing was changed", n);
	*reason = r->answer.msg;
	return SG_ST_READY;
}

/* ---- the table ----------------------------------------------------------- */

static const struct sg_command_plan plans[] = {
	{.cmd = SG_CMD_UP, .recheck = true, .check = check_up, .work = work_up, .report = report_ready,
	 .preview = preview_up},
	{.cmd = SG_CMD_WAIT, .read_only = true, .check = check_wait, .report = report_ready},
	{.cmd = SG_CMD_VERIFY, .read_only = true, .one_shot = true, .check = check_verify, .report = report_verified},
	{.cmd = SG_CMD_STATUS, .read_only = true, .one_shot = true, .check = check_status, .report = report_status},
	{.cmd = SG_CMD_LINT, .read_only = true, .one_shot = true, .check = check_lint_pending, .report = report_nothing},
	{.cmd = SG_CMD_EVENTS, .read_only = true, .one_shot = true, .no_directory = true, .missing_is_empty = true,
	 .check = sg_events_check, .report = report_nothing},
	{.cmd = SG_CMD_DOWN, .check = check_writes, .work = work_revert, .report = report_nothing,
	 .preview = preview_revert},
	{.cmd = SG_CMD_ROLLBACK, .check = check_writes, .work = work_revert, .report = report_nothing,
	 .preview = preview_revert},
	{.cmd = SG_CMD_BASELINE, .check = check_writes, .work = work_baseline, .report = report_nothing,
	 .validate = validate_baseline, .preview = preview_baseline},
	{.cmd = SG_CMD_REPAIR, .check = check_writes, .work = work_repair, .report = report_nothing,
	 .preview = preview_repair},
};

#define NPLANS (sizeof(plans) / sizeof(plans[0]))

/* The same commands under --dry-run: read only, a probe's single
 * connection attempt, and the check prints what work would do. */
static struct sg_command_plan dry_plans[NPLANS];

const struct sg_command_plan *sg_command_plan_for(enum sg_command cmd, bool dry_run)
{
	for (size_t i = 0; i < NPLANS; i++) {
		if (plans[i].cmd != cmd)
			continue;
		if (!dry_run || !plans[i].preview)
			return &plans[i];
		dry_plans[i] = plans[i];
		dry_plans[i].read_only = dry_plans[i].one_shot = dry_plans[i].missing_is_empty = true;
		dry_plans[i].recheck = false;
		dry_plans[i].check = check_dry_run;
		dry_plans[i].work = NULL;
		dry_plans[i].report = report_nothing;
		return &dry_plans[i];
	}
	return NULL;
}
