/*
 * test_history_model.c - history_model: a stateful random test of the
 * history row (README "The history row"). A reference model written here
 * (it shares no code with src/) and the real binary against a real
 * database take random steps: up, down, up or down killed (SIGKILL or
 * SIGTERM) at a random moment, a server error switched on and off (the
 * table `gate` one statement needs), a migration file's statements
 * edited and restored, every repair a human would make, `rollback` by an
 * old image's directory (0001 or 0001..0002), the history dropped and
 * `baseline V` or `up --baseline-version V` on the schema left behind,
 * and (PostgreSQL, MariaDB) a statement canceled by the server
 * (pg_cancel_backend, KILL QUERY) or the session holding the lock killed
 * (pg_terminate_backend, KILL of the GET_LOCK connection) while it waits
 * for a table the test holds. After every step:
 *
 * - no statement ever ran twice, and a row says `applied` only if every
 *   statement of its file ran (the counter rows and tables prove it);
 *   absent means none did; partial, failed, partial-revert and
 *   failed-revert rows match their statements_done;
 * - the model's prediction holds: exit code and rows after every step that
 *   is not killed; a transactional migration is never half applied;
 * - exit 4 only when the model says a human is needed, and then the
 *   message names `repair` (or says which file to restore).
 *
 * 0002 and 0003 are both no-transaction (statement by statement on every
 * engine), so a partial or failed row can sit below or above another.
 *
 * Seeded and reproducible: SG_MODEL_SEED (printed), SG_MODEL_STEPS steps
 * per engine (default 200; tests/stress/history_model.sh runs thousands).
 *
 * Against the binary of e79a26e (SG_TEST_BINARY_WRAPPER naming a script
 * that runs that build's schemagate with the arguments after its first),
 * on SQLite, the first broken invariant is on the revert side, in every
 * one of 60 seeds: SG_MODEL_SEED=1 step 50 (down, gate missing) "0002_b is
 * failed/0 but statement 1 shows 1" (a failed down script recorded as a
 * failed apply); seed 2 step 10 (down, SIGKILL) and seed 3 step 8
 * (rollback by an old image) "0002_b is failed/4 but statement 4 shows 0";
 * other seeds "0003_c is applied/2 but statement 2 shows 0" (a killed down
 * script left the row applied). The edit steps are never the first to
 * break there. On PostgreSQL (seeds 1-12) the server-cancel steps break
 * first: seed 4 step 57 and seed 8 step 9 (up, its statement canceled)
 * "0003_c is partial/1, the model says failed/1" (issue 21, case 5);
 * seed 2 step 3 (down, canceled) "0003_c is failed/2, the model says
 * failed-revert/0".
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

/* printf into one of a few static buffers: for short-lived SQL text */
__attribute__((format(printf, 1, 2))) static const char *fmt(const char *f, ...)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];
	va_list ap;
	va_start(ap, f);
	vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	return b;
}

/* ---- the migrations ------------------------------------------------------- */

#define NV 3
#define MAXS 4

/* Each statement leaves evidence: a counter row ("2.3") or a table. */
struct stmt_ev {
	const char *counter;   /* the v in stmt_log, or NULL */
	const char *table;     /* or a table that exists */
};

static const struct stmt_ev evidence[NV][MAXS] = {
	{{NULL, "t1"}, {"1.2", NULL}},
	{{"2.1", NULL}, {NULL, "t2"}, {"2.3", NULL}, {"2.4", NULL}},
	{{NULL, "t3"}, {"3.2", NULL}},
};
static const int nstatements[NV] = {2, 4, 2};
static const char *const files[NV] = {"0001_a.up.sql", "0002_b.up.sql", "0003_c.up.sql"};
static const char *const downs[NV] = {"0001_a.down.sql", "0002_b.down.sql", "0003_c.down.sql"};
static const char *const ups[NV] = {
	"CREATE TABLE t1 (id INT);\nINSERT INTO stmt_log (v) VALUES ('1.2');\n",
	/* statement 3 needs `gate`: without it, a server error */
	"-- schemagate:no-transaction\nINSERT INTO stmt_log (v) VALUES ('2.1');\nCREATE TABLE t2 (id INT);\n"
	"INSERT INTO stmt_log (v) SELECT '2.3' FROM gate;\nINSERT INTO stmt_log (v) VALUES ('2.4');\n",
	"-- schemagate:no-transaction\nCREATE TABLE t3 (id INT);\nINSERT INTO stmt_log (v) VALUES ('3.2');\n",
};
/* down statements undo the up statements newest first */
static const char *const down_sql[NV] = {
	"DELETE FROM stmt_log WHERE v = '1.2';\nDROP TABLE t1;\n",
	"-- schemagate:no-transaction\nDELETE FROM stmt_log WHERE v = '2.4';\n"
	"DELETE FROM stmt_log WHERE v IN (SELECT '2.3' FROM gate);\nDROP TABLE t2;\n"
	"DELETE FROM stmt_log WHERE v = '2.1';\n",
	"-- schemagate:no-transaction\nDELETE FROM stmt_log WHERE v = '3.2';\nDROP TABLE t3;\n",
};

/* ---- the model ------------------------------------------------------------ */

enum mstate { M_ABSENT, M_APPLIED, M_PARTIAL, M_FAILED, M_PARTIAL_REVERT, M_FAILED_REVERT, M_BASELINED };
static const char *const mnames[] = {"absent",        "applied",       "partial",  "failed",
				     "partial-revert", "failed-revert", "baselined"};

/* applied or baselined: every statement's effect is in the database */
static bool done_row(enum mstate st) { return st == M_APPLIED || st == M_BASELINED; }

struct model {
	enum mstate st[NV];
	int done[NV];           /* statements_done: up statements, or down ones in a revert */
	bool file_edited[NV];   /* the file on disk carries the edit */
	bool rec_edited[NV];    /* the row's checksum is the edited file's */
	bool gate;              /* the table statement 3 of 0002 and its down need */
	bool stepwise[NV];      /* runs statement by statement on this engine */
};

/* The file differs from the one the row records. */
static bool mismatch(const struct model *m, int v)
{
	return m->st[v] != M_ABSENT && m->file_edited[v] != m->rec_edited[v];
}

/* A human must act before up can go on. */
static bool human_needed(const struct model *m)
{
	for (int v = 0; v < NV; v++)
		if (m->st[v] == M_FAILED || m->st[v] == M_PARTIAL_REVERT || m->st[v] == M_FAILED_REVERT ||
		    mismatch(m, v))
			return true;
	return false;
}

/* up with nobody in need: predicts the exit code and moves the model. */
static int model_up(struct model *m)
{
	for (int v = 0; v < NV; v++) {
		if (done_row(m->st[v]))
			continue;
		if (m->st[v] == M_ABSENT)
			m->rec_edited[v] = m->file_edited[v];
		int from = m->st[v] == M_PARTIAL ? m->done[v] : 0;
		if (v == 1 && !m->gate && from < 3) {
			m->st[v] = M_FAILED;
			m->done[v] = 2;
			return 1;
		}
		m->st[v] = M_APPLIED;
		m->done[v] = m->stepwise[v] ? nstatements[v] : 0;
	}
	return 0;
}

/* Revert, newest first, the versions from k up that are not absent, at
 * most n of them, with nobody in need (down --steps 1: k 0, n 1;
 * rollback by an image that knows 0001..k: n NV). */
static int model_revert(struct model *m, int k, int n)
{
	for (int v = NV - 1; v >= k && n > 0; v--) {
		if (m->st[v] == M_ABSENT)
			continue;
		if (v == 1 && !m->gate) {
			m->st[v] = M_FAILED_REVERT;
			m->done[v] = 1;
			return 1;
		}
		m->st[v] = M_ABSENT;
		m->done[v] = 0;
		n--;
	}
	return 0;
}

/* ---- the database as it is ------------------------------------------------ */

struct world {
	struct tdb d;
	unsigned seed;
	int step;
	char action[160];
	char *log;               /* every step's command and output */
	int rollbacks, baselines, cancels, lock_kills;   /* the newer steps taken */
};

static long table_exists(struct tdb *d, const char *name)
{
	if (d->eng == ENG_LITE)
		return tdb_long(d, fmt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", name));
	if (d->eng == ENG_PG)
		return tdb_long(d, fmt("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '%s'",
					   name));
	return tdb_long(d, fmt("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
				   "TABLE_NAME = '%s'", name));
}

/* How often statement k (0-based) of version v took effect. */
static long ran(struct world *w, int v, int k)
{
	const struct stmt_ev *e = &evidence[v][k];
	if (e->table)
		return table_exists(&w->d, e->table);
	return tdb_long(&w->d, fmt("SELECT count(*) FROM stmt_log WHERE v = '%s'", e->counter));
}

#define FAIL_AT(w, fmt_, ...)                                                                                    \
	cr_assert_fail("SG_MODEL_SEED=%u engine %s step %d (%s; log %s): " fmt_, (w)->seed, tdb_eng_name((w)->d.eng), \
		       (w)->step, (w)->action, (w)->log, ##__VA_ARGS__)

/* All rows and all evidence, in three queries (steps stay cheap). */
struct snap {
	enum mstate st[NV];
	int done[NV];
	long c[NV][MAXS];
};

static const char *agg(const struct world *w)
{
	return w->d.eng == ENG_PG ? "string_agg" : "group_concat";
}

static void take_snap(struct world *w, struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	char *rows = tdb_value(&w->d, "SELECT %s(%s, ','%s) FROM schemagate_migrations", agg(w),
			       w->d.eng == ENG_LITE ? "version || ':' || status || ':' || statements_done"
						    : "concat(version, ':', status, ':', statements_done)",
			       w->d.eng == ENG_MY ? " SEPARATOR ','" : "");
	for (char *save = NULL, *r = rows ? strtok_r(rows, ",", &save) : NULL; r; r = strtok_r(NULL, ",", &save)) {
		char status[32] = "";
		int version = 0, done = 0;
		if (sscanf(r, "%d:%31[a-z-]:%d", &version, status, &done) != 3 || version < 1 || version > NV)
			FAIL_AT(w, "a history row I cannot read: %s", r);
		bool known = false;
		for (int i = 1; i <= M_BASELINED; i++)
			if (strcmp(status, mnames[i]) == 0) {
				sn->st[version - 1] = (enum mstate)i;
				known = true;
			}
		if (!known)
			FAIL_AT(w, "status \"%s\" of %d is not a state", status, version);
		sn->done[version - 1] = done;
	}
	free(rows);
	char *log = tdb_value(&w->d, "SELECT %s(v, ','%s) FROM stmt_log", agg(w),
			      w->d.eng == ENG_MY ? " SEPARATOR ','" : "");
	char *tables;
	if (w->d.eng == ENG_LITE)
		tables = tdb_value(&w->d, "SELECT group_concat(name, ',') FROM sqlite_master WHERE type = 'table' AND name "
				   "IN ('t1', 't2', 't3')");
	else if (w->d.eng == ENG_PG)
		tables = tdb_value(&w->d, "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public' AND "
				   "tablename IN ('t1', 't2', 't3')");
	else
		tables = tdb_value(&w->d, "SELECT group_concat(TABLE_NAME SEPARATOR ',') FROM information_schema.TABLES "
				   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('t1', 't2', 't3')");
	for (int v = 0; v < NV; v++)
		for (int k = 0; k < nstatements[v]; k++) {
			const struct stmt_ev *e = &evidence[v][k];
			const char *hay = e->table ? tables : log, *word = e->table ? e->table : e->counter;
			size_t len = strlen(word);
			for (const char *p = hay; p && (p = strstr(p, word)) != NULL; p += len)
				if ((p == hay || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
					sn->c[v][k]++;
		}
	free(log);
	free(tables);
}

/* The invariants, whatever the model predicted. */
static void check_invariants(struct world *w, const struct model *m, const struct snap *sn)
{
	for (int v = 0; v < NV; v++) {
		enum mstate st = sn->st[v];
		int done = sn->done[v];
		int n = nstatements[v];
		const long *c = sn->c[v];
		for (int k = 0; k < n; k++) {
			if (c[k] > 1)
				FAIL_AT(w, "statement %d of %s ran %ld times", k + 1, files[v], c[k]);
		}
		if (!m->stepwise[v] && st != M_ABSENT && !done_row(st))
			FAIL_AT(w, "transactional %s is %s", files[v], mnames[st]);
		for (int k = 0; k < n; k++) {
			/* what statement k must show: 1, 0, or -1 either (in doubt) */
			int want;
			switch (st) {
			case M_APPLIED:
			case M_BASELINED: want = 1; break;
			case M_ABSENT: want = 0; break;
			case M_PARTIAL: want = k < done ? 1 : k == done ? -1 : 0; break;
			case M_FAILED: want = k < done ? 1 : 0; break;
			/* down statement j undoes up statement n-1-j */
			case M_PARTIAL_REVERT: want = k < n - done - 1 ? 1 : k == n - done - 1 ? -1 : 0; break;
			default: want = k < n - done ? 1 : 0; break;
			}
			if (want >= 0 && c[k] != want)
				FAIL_AT(w, "%s is %s/%d but statement %d shows %ld (want %d)", files[v], mnames[st], done, k + 1,
					c[k], want);
		}
	}
}

/* The model's rows are the database's (after a step it predicts). */
static void check_prediction(struct world *w, const struct model *m, const struct snap *sn)
{
	for (int v = 0; v < NV; v++) {
		enum mstate st = sn->st[v];
		int done = sn->done[v];
		if (st != m->st[v] || (!done_row(st) && st != M_ABSENT && done != m->done[v]))
			FAIL_AT(w, "%s is %s/%d, the model says %s/%d", files[v], mnames[st], done, mnames[m->st[v]],
				m->done[v]);
	}
}

/* After a step the model could not predict (a kill): adopt what the
 * database says, once the invariants allow it. */
static void sync_model(struct world *w, struct model *m, bool up, const struct snap *sn)
{
	/* an up meeting a changed file refuses before it touches anything */
	bool frozen = up && human_needed(m);
	for (int v = 0; v < NV; v++) {
		enum mstate st = sn->st[v];
		m->done[v] = sn->done[v];
		if (m->st[v] != st && frozen)
			FAIL_AT(w, "%s changed state (%s -> %s) although up had to refuse", files[v], mnames[m->st[v]],
				mnames[st]);
		if (m->st[v] == M_ABSENT && st != M_ABSENT)
			m->rec_edited[v] = m->file_edited[v];
		m->st[v] = st;
	}
}

/* After every step: the invariants, then the model's prediction, or (after
 * a kill, which it cannot predict) what the database says. */
static void after_step(struct world *w, struct model *m, bool predicted, bool up)
{
	struct snap sn;
	take_snap(w, &sn);
	check_invariants(w, m, &sn);
	if (predicted)
		check_prediction(w, m, &sn);
	else
		sync_model(w, m, up, &sn);
}

/* ---- steps ---------------------------------------------------------------- */

static void logf_step(struct world *w, const char *what, const struct sgt_result *r)
{
	FILE *f = fopen(w->log, "a");
	if (!f)
		return;
	fprintf(f, "==== step %d: %s -> %d\n%s", w->step, what, r ? r->status : -1, r ? r->err : "");
	fclose(f);
}

static int run(struct world *w, struct sgt_result *r, const char *a1, const char *a2, const char *a3)
{
	int st = tdb_run(&w->d, NULL, r, a1, a2, a3, NULL);
	logf_step(w, w->action, r);
	return st;
}

/* A human is needed: exit 4 naming the repair (or the file to restore). */
static void expect_refusal(struct world *w, const struct sgt_result *r)
{
	if (r->status != 4 || !(strstr(r->err, "repair") || strstr(r->err, "restore the file")))
		FAIL_AT(w, "exit %d, the model says a human is needed (exit 4 naming the repair):\n%s", r->status, r->err);
}

/* The edited files change statements (a column type, a statement's form),
 * not only a comment, with the same evidence: for a partial 0002 the
 * checksum and the digest of the next statement both change. */
static const char *const ups_edited[NV] = {
	"CREATE TABLE t1 (id BIGINT);\nINSERT INTO stmt_log (v) VALUES ('1.2');\n",
	"-- schemagate:no-transaction\nINSERT INTO stmt_log (v) VALUES ('2.1');\nCREATE TABLE t2 (id BIGINT);\n"
	"INSERT INTO stmt_log (v) SELECT '2.3' FROM gate;\nINSERT INTO stmt_log (v) SELECT '2.4';\n",
	"-- schemagate:no-transaction\nCREATE TABLE t3 (id BIGINT);\nINSERT INTO stmt_log (v) SELECT '3.2';\n",
};

static void write_file(struct world *w, int v, bool edited)
{
	sgt_write(w->d.mig, files[v], edited ? ups_edited[v] : ups[v]);
}

static void by_hand(struct world *w, const char *sql) { free(tdb_value(&w->d, "%s", sql)); }

/* What the human does to make statement k of v's up script have run. */
static void do_up_statement(struct world *w, int v, int k)
{
	const struct stmt_ev *e = &evidence[v][k];
	if (ran(w, v, k))
		return;
	if (e->table)
		by_hand(w, fmt("CREATE TABLE %s (id INT)", e->table));
	else
		by_hand(w, fmt("INSERT INTO stmt_log (v) VALUES ('%s')", e->counter));
}

static void undo_up_statement(struct world *w, int v, int k)
{
	const struct stmt_ev *e = &evidence[v][k];
	if (!ran(w, v, k))
		return;
	if (e->table)
		by_hand(w, fmt("DROP TABLE %s", e->table));
	else
		by_hand(w, fmt("DELETE FROM stmt_log WHERE v = '%s'", e->counter));
}

/* The first version a human must look at, or -1. */
static int needing(const struct model *m)
{
	for (int v = 0; v < NV; v++)
		if (m->st[v] == M_FAILED || m->st[v] == M_PARTIAL_REVERT || m->st[v] == M_FAILED_REVERT ||
		    mismatch(m, v))
			return v;
	return -1;
}

/* The human's repair of version v, chosen at random. */
static void repair(struct world *w, struct model *m, int v)
{
	struct sgt_result r;
	char ver[16];
	snprintf(ver, sizeof(ver), "000%d", v + 1);
	int n = nstatements[v], choice = rand() % 3;
	if (mismatch(m, v)) {
		if (done_row(m->st[v]) && choice == 0) {
			snprintf(w->action, sizeof(w->action), "repair --accept-checksums (%s edited)", files[v]);
			cr_assert_eq(run(w, &r, "repair", "--accept-checksums", NULL), 0, "%s", r.err);
			sgt_result_free(&r);
			/* every applied row takes its file's checksum */
			for (int u = 0; u < NV; u++)
				if (done_row(m->st[u]))
					m->rec_edited[u] = m->file_edited[u];
		} else {
			snprintf(w->action, sizeof(w->action), "restore %s", files[v]);
			m->file_edited[v] = m->rec_edited[v];
			write_file(w, v, m->file_edited[v]);
		}
		return;
	}
	bool reverting = m->st[v] == M_PARTIAL_REVERT || m->st[v] == M_FAILED_REVERT;
	int done = m->done[v];
	/* --resume refuses when no statement is left after the one done by
	 * hand (a server cancel can fail the last one): finish it by hand */
	if (choice == 0 && done + 1 >= n)
		choice = 1 + done % 2;
	if (choice == 0) {
		/* the statement it stopped at, by hand; the rest runs */
		if (reverting && done < n)
			undo_up_statement(w, v, n - done - 1);
		else if (!reverting && done < n)
			do_up_statement(w, v, done);
		snprintf(w->action, sizeof(w->action), "repair %s --resume (%s %d)", ver, mnames[m->st[v]], done);
		int want = 0;
		/* the rest of the script may meet the missing gate again */
		if (!m->gate && v == 1 && !reverting && done + 1 < 3)
			want = 1;
		if (!m->gate && v == 1 && reverting && done + 1 < 2)
			want = 1;
		int st = run(w, &r, "repair", ver, "--resume");
		if (st != want)
			FAIL_AT(w, "exit %d, expected %d:\n%s", st, want, r.err);
		sgt_result_free(&r);
		if (!reverting)
			m->rec_edited[v] = m->file_edited[v];   /* it records the file it ran */
		if (want == 0) {
			m->st[v] = reverting ? M_ABSENT : M_APPLIED;
			m->done[v] = reverting || !m->stepwise[v] ? 0 : n;
		} else {
			m->st[v] = reverting ? M_FAILED_REVERT : M_FAILED;
			m->done[v] = reverting ? 1 : 2;
		}
	} else if (choice == 1) {
		/* everything is in, by hand */
		for (int k = 0; k < n; k++)
			do_up_statement(w, v, k);
		snprintf(w->action, sizeof(w->action), "repair %s --applied (%s %d)", ver, mnames[m->st[v]], done);
		cr_assert_eq(run(w, &r, "repair", ver, "--applied"), 0, "%s", r.err);
		sgt_result_free(&r);
		m->st[v] = M_APPLIED;
		m->done[v] = 0;
	} else {
		for (int k = n - 1; k >= 0; k--)
			undo_up_statement(w, v, k);
		snprintf(w->action, sizeof(w->action), "repair %s --reverted (%s %d)", ver, mnames[m->st[v]], done);
		cr_assert_eq(run(w, &r, "repair", ver, "--reverted"), 0, "%s", r.err);
		sgt_result_free(&r);
		m->st[v] = M_ABSENT;
		m->done[v] = 0;
	}
}

/* A killed client's server session may still run what it sent (on
 * PostgreSQL a whole one-message transaction commits after the client
 * died): wait until no other session works on the database. */
static void quiesce(struct world *w)
{
	const char *sql = w->d.eng == ENG_PG ? "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
					       "AND pid <> pg_backend_pid()"
			: w->d.eng == ENG_MY ? "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND "
					       "ID <> CONNECTION_ID()"
					     : NULL;
	double t0 = sgt_now_ms();
	while (sql && tdb_long(&w->d, sql) > 0) {
		if (sgt_now_ms() - t0 > 30000)
			FAIL_AT(w, "the killed instance's session is still at work after 30 s");
		sleep_ms(20);
	}
}

/* up or down, stopped by sig after a random moment. */
static void killed(struct world *w, struct model *m, const char *command, int sig)
{
	const char *argv[] = {"--database-url", w->d.url, "--dir", w->d.mig, "--stop-grace", "0", command,
			      strcmp(command, "down") == 0 ? "--steps" : NULL, "1", NULL};
	long at = rand() % 250;
	snprintf(w->action, sizeof(w->action), "%s, %s after %ld ms", command, sig == SIGKILL ? "SIGKILL" : "SIGTERM",
		 at);
	char *out = sgt_path(w->d.dir, "killed.log");
	pid_t pid = sgt_spawn(NULL, argv, out);
	sleep_ms(at);
	kill(pid, sig);
	int st = sgt_wait(pid);
	struct sgt_result r = {.status = st, .err = sgt_slurp(out)};
	logf_step(w, w->action, &r);
	free(out);
	quiesce(w);
	if (sig == SIGTERM && st != 143 && st != 0 && st != 1 && st != 4)
		FAIL_AT(w, "SIGTERM: exit %d:\n%s", st, r.err ? r.err : "");
	free(r.err);
	after_step(w, m, false, strcmp(command, "up") == 0);
}


/* up, or down --steps 1, that ran to its end: the model's exit code, and
 * the model moves. down refuses only for the rows it meets (an edit of an
 * applied file does not stop it). */
static void expect_outcome(struct world *w, struct model *m, bool up, const struct sgt_result *r)
{
	bool blocked = up && human_needed(m);
	for (int v = NV - 1; v >= 0 && !up; v--)
		if (m->st[v] != M_ABSENT) {
			blocked = !done_row(m->st[v]);
			break;
		}
	if (blocked) {
		expect_refusal(w, r);
		return;
	}
	int want = up ? model_up(m) : model_revert(m, 0, 1);
	if (r->status != want)
		FAIL_AT(w, "exit %d, the model says %d:\n%s", r->status, want, r->err);
}

/* ---- an old image, a baseline, a server that interferes ------------------ */

static bool any_partial(const struct model *m)
{
	for (int v = 0; v < NV; v++)
		if (m->st[v] == M_PARTIAL)
			return true;
	return false;
}

static int run_in(struct world *w, const char *dir, struct sgt_result *r, const char *a1, const char *a2)
{
	int st = tdb_run(&w->d, dir, r, a1, a2, NULL);
	logf_step(w, w->action, r);
	return st;
}

static bool rollback_step(struct world *w, struct model *m)
{
	if (human_needed(m) || any_partial(m))
		return false;
	int k = 1 + rand() % 2;
	char *old = sgt_path(w->d.dir, fmt("old%d", k));
	mkdir(old, 0755);
	for (int v = 0; v < k; v++) {
		sgt_write(old, files[v], m->file_edited[v] ? ups_edited[v] : ups[v]);
		sgt_write(old, downs[v], down_sql[v]);
	}
	snprintf(w->action, sizeof(w->action), "rollback by an old image (0001..000%d; gate %s)", k,
		 m->gate ? "there" : "missing");
	struct sgt_result r;
	w->rollbacks++;
	int st = run_in(w, old, &r, "rollback", NULL);
	int want = model_revert(m, k, NV);   /* what the old image does not know */
	if (st != want)
		FAIL_AT(w, "exit %d, the model says %d:\n%s", st, want, r.err);
	sgt_result_free(&r);
	free(old);
	return true;
}

/* The schema of 0001..V-1 is there but the history is not (a database
 * restored without it, or one that predates schemagate): `baseline V-1`,
 * or `up --baseline-version V-1`, which then applies the rest. */
static bool baseline_step(struct world *w, struct model *m)
{
	int v0 = 0;
	while (v0 < NV && done_row(m->st[v0]))
		v0++;
	for (int v = v0; v < NV; v++)
		if (m->st[v] != M_ABSENT)
			return false;
	if (v0 == 0 || human_needed(m))
		return false;
	by_hand(w, "DROP TABLE schemagate_migrations");
	by_hand(w, "DROP TABLE schemagate_events");
	bool via_up = rand() % 2;
	char ver[16];
	snprintf(ver, sizeof(ver), "000%d", v0);
	snprintf(w->action, sizeof(w->action), "history dropped, then %s %s (gate %s)",
		 via_up ? "up --baseline-version" : "baseline", ver, m->gate ? "there" : "missing");
	for (int v = 0; v < v0; v++) {
		m->st[v] = M_BASELINED;
		m->done[v] = 0;
		m->rec_edited[v] = m->file_edited[v];
	}
	w->baselines++;
	struct sgt_result r;
	int st = via_up ? run(w, &r, "up", "--baseline-version", ver) : run(w, &r, "baseline", ver, NULL);
	int want = via_up ? model_up(m) : 0;
	if (st != want)
		FAIL_AT(w, "exit %d, the model says %d:\n%s", st, want, r.err);
	sgt_result_free(&r);
	return true;
}

/* failure events per version, to prove a failed row came with its event */
static void failure_events(struct world *w, long out[NV])
{
	for (int v = 0; v < NV; v++)
		out[v] = tdb_long(&w->d, fmt("SELECT count(*) FROM schemagate_events WHERE event = 'failure' AND "
					     "version = '000%d'", v + 1));
}

/* Every other session of the database: canceled (its running statement)
 * or, with lock_only, the one holding schemagate's lock terminated. */
static int interfere_now(struct world *w, bool lock_only)
{
	if (w->d.eng == ENG_PG)
		return (int)tdb_long(&w->d, lock_only
			? "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND "
			  "granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE "
			  "datname = current_database())"
			: "SELECT count(pg_cancel_backend(pid)) FROM pg_locks WHERE relation = 'stmt_log'::regclass AND "
			  "NOT granted");
	char *ids = lock_only
		? tdb_value(&w->d, "SELECT IS_USED_LOCK(CONCAT('schemagate:', DATABASE(), '.schemagate_migrations'))")
		: tdb_value(&w->d, "SELECT group_concat(ID SEPARATOR ',') FROM information_schema.PROCESSLIST WHERE DB "
			    "= DATABASE() AND ID <> CONNECTION_ID() AND COMMAND = 'Query'");
	int n = 0;
	for (char *save = NULL, *id = ids ? strtok_r(ids, ",", &save) : NULL; id; id = strtok_r(NULL, ",", &save))
		if (mysql_query(w->d.my, fmt("KILL %s%s", lock_only ? "" : "QUERY ", id)) == 0)   /* may be gone */
			n++;
	free(ids);
	return n;
}

/* The test's session holds stmt_log (every migration writes it), so the
 * next statement that needs it waits: the interference lands inside a
 * statement, not between two. */
static void hold_stmt_log(struct world *w, bool hold)
{
	if (w->d.eng == ENG_PG)
		by_hand(w, hold ? "BEGIN; LOCK TABLE stmt_log IN ACCESS EXCLUSIVE MODE" : "COMMIT");
	else
		by_hand(w, hold ? "LOCK TABLES stmt_log WRITE" : "UNLOCK TABLES");
}

/* Until a session waits for stmt_log (1; also after 5 s), or pid exits
 * (0, and its status). pg_locks, unlike pg_stat_activity, is not a
 * snapshot taken once per transaction. */
static int await_waiter(struct world *w, pid_t pid, int *status)
{
	const char *sql = w->d.eng == ENG_PG
		? "SELECT count(*) FROM pg_locks WHERE relation = 'stmt_log'::regclass AND NOT granted"
		: "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE LIKE "
		  "'Waiting for table metadata lock%'";
	double t0 = sgt_now_ms();
	while (sgt_now_ms() - t0 < 5000) {
		if (tdb_long(&w->d, sql) > 0)
			return 1;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			*status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
			return 0;
		}
		sleep_ms(5);
	}
	return 1;
}

/* The statement a run that meets stmt_log held stops at: the first of
 * version v's from `from` on that writes stmt_log (every version has one
 * after any point it can resume from; down scripts start with one). */
static int first_logging(int v, int from, bool up)
{
	if (!up)
		return 0;
	for (int k = from; k < nstatements[v]; k++)
		if (evidence[v][k].counter)
			return k;
	return -1;
}

/*
 * up or down --steps 1 while the server interferes, at the moment its
 * statement waits for stmt_log (held by the test's session):
 *
 * - a cancel schemagate did not ask for (a DBA's pg_cancel_backend, KILL
 *   QUERY) fails that statement: exit 1 and a `failure` event; a
 *   statement-by-statement script's row is `failed` (`failed-revert`) at
 *   that statement, a transactional one is rolled back with its row;
 * - the session holding the lock killed (pg_terminate_backend, KILL of the
 *   GET_LOCK connection): the run connects again, takes the lock again,
 *   and ends as an undisturbed run would; except in a statement-by-
 *   statement down script, whose statement is then in doubt: the row
 *   stays partial-revert and the run exits 4 naming the repair.
 *
 * A run that never waits (nothing to do, a refusal) is predicted as usual.
 */
static bool interfere_step(struct world *w, struct model *m, bool lock_only)
{
	if (w->d.eng == ENG_LITE)
		return false;
	bool up = rand() % 3;
	const char *argv[] = {"--database-url", w->d.url, "--dir", w->d.mig, up ? "up" : "down",
			      up ? NULL : "--steps", "1", NULL};
	long events[NV], after[NV];
	failure_events(w, events);
	char *out = sgt_path(w->d.dir, "interfered.log");
	hold_stmt_log(w, true);
	pid_t pid = sgt_spawn(NULL, argv, out);
	int st = -1, hit = 0;
	bool waiting = await_waiter(w, pid, &st);
	if (waiting)
		hit = interfere_now(w, lock_only);
	hold_stmt_log(w, false);
	if (lock_only)
		w->lock_kills += hit > 0;
	else
		w->cancels += hit > 0;
	snprintf(w->action, sizeof(w->action), "%s, %s (%d session(s); gate %s)", up ? "up" : "down --steps 1",
		 lock_only ? "the lock's session killed" : "its statement canceled by the server", hit,
		 m->gate ? "there" : "missing");
	if (waiting)
		st = sgt_wait(pid);
	struct sgt_result r = {.status = st, .err = sgt_slurp(out)};
	logf_step(w, w->action, &r);
	free(out);
	quiesce(w);
	/* the version the run works on first */
	int v = -1;
	for (int u = 0; u < NV && up && v < 0; u++)
		if (!done_row(m->st[u]))
			v = u;
	for (int u = NV - 1; u >= 0 && !up && v < 0; u--)
		if (m->st[u] != M_ABSENT)
			v = u;
	if (hit > 0 && v < 0)
		FAIL_AT(w, "a statement waited although there is nothing to %s", up ? "apply" : "revert");
	if (hit > 0 && lock_only && !up && m->stepwise[v]) {
		/* the run connects again, but the down statement it was in is
		 * in doubt, and only a human resumes a down script */
		expect_refusal(w, &r);
		free(r.err);
		after_step(w, m, false, false);
		if (m->st[v] != M_PARTIAL_REVERT || m->done[v] > 1)
			FAIL_AT(w, "%s is %s/%d, the model says partial-revert at its first or second statement", files[v],
				mnames[m->st[v]], m->done[v]);
		return true;
	}
	if (hit == 0 || lock_only) {
		expect_outcome(w, m, up, &r);
		free(r.err);
		after_step(w, m, true, false);
		return true;
	}
	int k = first_logging(v, m->st[v] == M_PARTIAL ? m->done[v] : 0, up);
	if (r.status != 1)
		FAIL_AT(w, "exit %d, the model says 1 (%s's statement %d canceled):\n%s", r.status, files[v], k + 1, r.err);
	free(r.err);
	if (m->stepwise[v]) {
		if (m->st[v] == M_ABSENT)
			m->rec_edited[v] = m->file_edited[v];
		m->st[v] = up ? M_FAILED : M_FAILED_REVERT;
		m->done[v] = k;
	}
	after_step(w, m, true, false);
	failure_events(w, after);
	for (int u = 0; u < NV; u++)
		if (after[u] != events[u] + (u == v))
			FAIL_AT(w, "%s has %ld failure event(s), the model says %ld", files[u], after[u], events[u] + (u == v));
	return true;
}

static void step(struct world *w, struct model *m)
{
	struct sgt_result r;
	int dice = rand() % 100;
	if (human_needed(m) && dice < 50) {
		repair(w, m, needing(m));
		after_step(w, m, true, false);
		return;
	}
	if (dice < 30) {
		snprintf(w->action, sizeof(w->action), "up (gate %s)", m->gate ? "there" : "missing");
		run(w, &r, "up", NULL, NULL);
		expect_outcome(w, m, true, &r);
		sgt_result_free(&r);
	} else if (dice < 45) {
		snprintf(w->action, sizeof(w->action), "down --steps 1 (gate %s)", m->gate ? "there" : "missing");
		run(w, &r, "down", "--steps", "1");
		expect_outcome(w, m, false, &r);
		sgt_result_free(&r);
	} else if (dice < 58) {
		killed(w, m, rand() % 3 ? "up" : "down", rand() % 2 ? SIGKILL : SIGTERM);
		return;
	} else if (dice < 61 && rollback_step(w, m)) {
		/* predicted, checked below */
	} else if (dice < 64 && baseline_step(w, m)) {
	} else if (dice < 67 && interfere_step(w, m, false)) {
		return;
	} else if (dice < 70 && interfere_step(w, m, true)) {
		return;
	} else if (dice < 80) {
		m->gate = !m->gate;
		snprintf(w->action, sizeof(w->action), "%s gate", m->gate ? "create" : "drop");
		by_hand(w, m->gate ? "CREATE TABLE gate (id INT)" : "DROP TABLE gate");
		if (m->gate)
			by_hand(w, "INSERT INTO gate (id) VALUES (1)");
	} else {
		int v = rand() % NV;
		m->file_edited[v] = !m->file_edited[v];
		snprintf(w->action, sizeof(w->action), "%s %s", m->file_edited[v] ? "edit" : "unedit", files[v]);
		write_file(w, v, m->file_edited[v]);
	}
	after_step(w, m, true, false);
}

static void history_model(enum eng eng)
{
	const char *s = getenv("SG_MODEL_SEED"), *n = getenv("SG_MODEL_STEPS");
	struct world w = {.seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid()};
	int steps = n && *n ? atoi(n) : 200;
	fprintf(stderr, "history_model %s: SG_MODEL_SEED=%u SG_MODEL_STEPS=%d\n", tdb_eng_name(eng), w.seed, steps);
	srand(w.seed);
	tdb_create(&w.d, eng, tdb_server_for(eng));
	w.log = sgt_path(w.d.dir, "model.log");
	by_hand(&w, "CREATE TABLE stmt_log (v VARCHAR(8))");
	by_hand(&w, "CREATE TABLE gate (id INT)");
	by_hand(&w, "INSERT INTO gate (id) VALUES (1)");
	struct model m = {.gate = true};
	for (int v = 0; v < NV; v++) {
		write_file(&w, v, false);
		sgt_write(w.d.mig, downs[v], down_sql[v]);
		m.stepwise[v] = eng == ENG_MY || v >= 1;   /* 0002 and 0003 are no-transaction */
	}
	/* the history table exists from here on: the first up */
	struct sgt_result r;
	snprintf(w.action, sizeof(w.action), "the first up");
	cr_assert_eq(run(&w, &r, "up", NULL, NULL), model_up(&m), "%s", r.err);
	sgt_result_free(&r);
	after_step(&w, &m, true, false);
	for (w.step = 1; w.step <= steps; w.step++)
		step(&w, &m);
	fprintf(stderr, "history_model %s: %d steps, seed %u: every invariant held (%d rollbacks, %d baselines, %d "
		"steps with a server cancel, %d with the lock's session killed)\n", tdb_eng_name(eng), steps, w.seed,
		w.rollbacks, w.baselines, w.cancels, w.lock_kills);
	free(w.log);
	tdb_drop(&w.d);
}

Test(history_model, sqlite, .timeout = 900) { history_model(ENG_LITE); }
Test(history_model, postgres, .timeout = 900) { history_model(ENG_PG); }
Test(history_model, mariadb, .timeout = 900) { history_model(ENG_MY); }
