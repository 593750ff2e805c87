/*
 * test_transitions.c - the state machine as the logs show it.
 *
 * Every transition is logged once, as JSON (event "transition", from, to,
 * reason). A winner, a waiter and a fast-path run each walk one path of the
 * transition table, and every command's run is a connected path from
 * "init" to "ready" or "failed" with no transition logged twice. SQLite:
 * the machine is the same for every engine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sgtest.h"

/* A statement that keeps SQLite busy for a few seconds. */
#define SLOW_SQL                                                                                                 \
	"CREATE TABLE slow (x INTEGER);\n"                                                                      \
	"INSERT INTO slow WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) " \
	"SELECT count(*) FROM c;\n"

struct fixture {
	char *dir, *mig, *url;
};

static void setup(struct fixture *f)
{
	f->dir = sgt_tempdir();
	f->mig = sgt_path(f->dir, "migrations");
	cr_assert_eq(mkdir(f->mig, 0755), 0);
	char *db = sgt_path(f->dir, "app.db");
	cr_assert(asprintf(&f->url, "sqlite:%s", db) > 0);
	free(db);
	sgt_write(f->mig, "0001_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY);\n");
	sgt_write(f->mig, "0001_users.down.sql", "DROP TABLE users;\n");
	sgt_write(f->mig, "0002_slow.up.sql", SLOW_SQL);
	sgt_write(f->mig, "0002_slow.down.sql", "DROP TABLE slow;\n");
}

static void teardown(struct fixture *f)
{
	sgt_rmrf(f->dir);
	free(f->dir);
	free(f->mig);
	free(f->url);
}

/* "init>connecting,connecting>checking,..." from a JSON log. */
static char *transitions_of(const char *log)
{
	size_t cap = 1024, len = 0;
	char *out = calloc(1, cap);
	for (const char *line = log; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char *l = strndup(line, n);
		cr_assert(l[0] == '{', "not a JSON line: %s", l);
		if (strstr(l, "\"event\":\"transition\"")) {
			char *from = strstr(l, "\"from\":\""), *to = strstr(l, "\"to\":\"");
			cr_assert(from && to, "transition without from/to: %s", l);
			from += 8;
			to += 6;
			char item[64];
			snprintf(item, sizeof(item), "%s%.*s>%.*s", len ? "," : "", (int)strcspn(from, "\""), from,
				 (int)strcspn(to, "\""), to);
			if (len + strlen(item) + 1 > cap)
				out = realloc(out, cap *= 2);
			strcpy(out + len, item);
			len += strlen(item);
		}
		free(l);
		line = end ? end + 1 : NULL;
	}
	return out;
}

/* A connected path init -> ... -> ready|failed, no transition twice. */
static void assert_path(const char *seq, const char *what)
{
	char *copy = strdup(seq), *save = NULL;
	char prev_to[32] = "init";
	char seen[64][48];
	int n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *gt = strchr(t, '>');
		cr_assert(gt, "%s: malformed %s", what, t);
		*gt = '\0';
		cr_expect_str_eq(t, prev_to, "%s: transition from %s after reaching %s (%s)", what, t, prev_to, seq);
		for (int i = 0; i < n; i++) {
			char pair[48];
			snprintf(pair, sizeof(pair), "%s>%s", t, gt + 1);
			cr_expect_str_neq(seen[i], pair, "%s: %s logged twice (%s)", what, pair, seq);
		}
		if (n < 64)
			snprintf(seen[n++], sizeof(seen[0]), "%s>%s", t, gt + 1);
		snprintf(prev_to, sizeof(prev_to), "%s", gt + 1);
	}
	cr_expect(strcmp(prev_to, "ready") == 0 || strcmp(prev_to, "failed") == 0, "%s ends in %s: %s", what, prev_to,
		  seq);
	free(copy);
}

static char *run_json(struct fixture *f, int *status, const char *a1, const char *a2, const char *a3)
{
	const char *argv[] = {"--database-url", f->url, "--dir", f->mig, "--log-format", "json", a1, a2, a3, NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	if (status)
		*status = r.status;
	char *seq = transitions_of(r.err);
	sgt_result_free(&r);
	return seq;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* An `up` that is busy in 0002_slow (for seconds) when this returns. */
static pid_t spawn_slow_winner(struct fixture *f, const char *log)
{
	const char *argv[] = {"--database-url", f->url, "--dir", f->mig, "--log-format", "json", "up", NULL};
	pid_t winner = sgt_spawn(NULL, argv, log);
	double t0 = sgt_now_ms();
	char *s = NULL;
	while (sgt_now_ms() - t0 < 20000) {
		free(s);
		s = sgt_slurp(log);
		if (s && strstr(s, "0002_slow"))
			break;
		sleep_ms(20);
	}
	free(s);
	return winner;
}

#define WINNER "init>connecting,connecting>checking,checking>contending,contending>applying,applying>releasing," \
	       "releasing>ready"
#define WAITER "init>connecting,connecting>checking,checking>contending,contending>ready"
#define FAST "init>connecting,connecting>checking,checking>ready"

Test(transitions, winner_waiter_and_fast_path_follow_the_table, .timeout = 120)
{
	struct fixture f;
	setup(&f);
	char *log_w = sgt_path(f.dir, "winner.log"), *log_o = sgt_path(f.dir, "waiter.log");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "--log-format", "json", "up", NULL};
	pid_t winner = spawn_slow_winner(&f, log_w);
	pid_t waiter = sgt_spawn(NULL, argv, log_o);
	cr_expect_eq(sgt_wait(winner), 0);
	cr_expect_eq(sgt_wait(waiter), 0);
	char *lw = sgt_slurp(log_w), *lo = sgt_slurp(log_o);
	char *seq_w = transitions_of(lw), *seq_o = transitions_of(lo);
	cr_expect_str_eq(seq_w, WINNER, "winner: %s\n%s", seq_w, lw);
	cr_expect_str_eq(seq_o, WAITER, "waiter: %s\n%s", seq_o, lo);
	int st = -1;
	char *seq_f = run_json(&f, &st, "up", NULL, NULL);
	cr_expect_eq(st, 0);
	cr_expect_str_eq(seq_f, FAST, "fast path: %s", seq_f);
	free(lw);
	free(lo);
	free(seq_w);
	free(seq_o);
	free(seq_f);
	free(log_w);
	free(log_o);
	teardown(&f);
}

Test(transitions, every_command_logs_a_connected_path_once, .timeout = 120)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0002_slow.up.sql", "CREATE TABLE slow (x INTEGER);\n");
	sgt_write(f.dir, "app.db", "");   /* an empty file is an empty database */
	static const struct {
		const char *a1, *a2, *a3;
		int status;
		const char *expect;   /* NULL: only a valid path */
	} runs[] = {
		{"verify", NULL, NULL, 6, "init>connecting,connecting>checking,checking>failed"},
		{"status", "--json", NULL, 0, FAST},
		{"up", NULL, NULL, 0, WINNER},
		{"wait", NULL, NULL, 0, FAST},
		{"verify", NULL, NULL, 0, FAST},
		{"down", NULL, NULL, 0, WINNER},
		{"baseline", "2", NULL, 0, WINNER},
		{"repair", "--accept-checksums", NULL, 0, WINNER},
		{"rollback", NULL, NULL, 0, WINNER},
		{"repair", "1", "--applied", 2, NULL},
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		int st = -1;
		char *seq = run_json(&f, &st, runs[i].a1, runs[i].a2, runs[i].a3);
		char what[64];
		snprintf(what, sizeof(what), "%s %s", runs[i].a1, runs[i].a2 ? runs[i].a2 : "");
		cr_expect_eq(st, runs[i].status, "%s exited %d", what, st);
		assert_path(seq, what);
		if (runs[i].expect)
			cr_expect_str_eq(seq, runs[i].expect, "%s: %s", what, seq);
		free(seq);
	}
	teardown(&f);
}

/* How many "<state>><state>" moves seq has; *rest gets seq without them. */
static int self_moves(const char *seq, const char *state, char **rest)
{
	char self[64];
	snprintf(self, sizeof(self), "%s>%s", state, state);
	char *copy = strdup(seq), *save = NULL;
	*rest = calloc(1, strlen(seq) + 1);
	int n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, self) == 0) {
			n++;
			continue;
		}
		if (**rest)
			strcat(*rest, ",");
		strcat(*rest, t);
	}
	free(copy);
	return n;
}

/*
 * A waiter polls many times (every 50ms while the winner applies for
 * seconds): each poll after the first is a self-transition of the table
 * (WAITING -> WAITING, CONTENDING -> CONTENDING), logged at DEBUG only.
 * At INFO its log has exactly the moves it had with the polls in a loop
 * of the state; at DEBUG the polls show as self rows, which a loop inside
 * the state would not log.
 */
Test(transitions, a_waiter_that_polls_logs_each_move_once, .timeout = 120)
{
	struct fixture f;
	setup(&f);
	char *log_w = sgt_path(f.dir, "winner.log");
	pid_t winner = spawn_slow_winner(&f, log_w);
	static const struct {
		const char *cmd, *level, *self, *expect;
	} waiters[] = {
		{"wait", "info", "waiting", "init>connecting,connecting>checking,checking>waiting,waiting>ready"},
		{"wait", "debug", "waiting", "init>connecting,connecting>checking,checking>waiting,waiting>ready"},
		{"up", "info", "contending", WAITER},
		{"up", "debug", "contending", WAITER},
	};
	enum { NW = sizeof(waiters) / sizeof(waiters[0]) };
	char *logs[NW];
	pid_t pids[NW];
	for (int i = 0; i < NW; i++) {
		char name[32];
		snprintf(name, sizeof(name), "waiter%d.log", i);
		logs[i] = sgt_path(f.dir, name);
		const char *wargv[] = {"--database-url", f.url, "--dir", f.mig, "--log-format", "json", "--log-level",
				       waiters[i].level, "--poll-interval", "50ms", waiters[i].cmd, NULL};
		pids[i] = sgt_spawn(NULL, wargv, logs[i]);
	}
	cr_expect_eq(sgt_wait(winner), 0);
	for (int i = 0; i < NW; i++) {
		cr_expect_eq(sgt_wait(pids[i]), 0, "%s at %s", waiters[i].cmd, waiters[i].level);
		char *log = sgt_slurp(logs[i]);
		char *seq = transitions_of(log), *rest = NULL;
		int polls = self_moves(seq, waiters[i].self, &rest);
		cr_expect_str_eq(rest, waiters[i].expect, "%s at %s: %s", waiters[i].cmd, waiters[i].level, seq);
		if (strcmp(waiters[i].level, "info") == 0)
			cr_expect_eq(polls, 0, "%s at info logged %d self-transitions: %s", waiters[i].cmd, polls, seq);
		else   /* seconds of 50ms polls: far more than 3, whatever the load */
			cr_expect_geq(polls, 3, "%s at debug logged %d polls as self-transitions: %s", waiters[i].cmd,
				      polls, seq);
		free(log);
		free(seq);
		free(rest);
		free(logs[i]);
	}
	free(log_w);
	teardown(&f);
}
