/*
 * postgres.c - the PostgreSQL driver: libpq, non-blocking, on the libuv loop.
 *
 * Every wait for the server (connecting, sending, reading results) goes
 * through sg_io_wait() on PQsocket, so timers, deadlines and signals keep
 * acting while a statement runs. When the loop reports a cancellation the
 * running statement is canceled server-side (PQcancel) and its error
 * collected, so the transaction can be rolled back and the lock released.
 *
 * The lock is a session advisory lock on a dedicated connection; its key
 * is derived from the qualified history table name, so two applications
 * sharing a database with different tables never contend. Waiters LISTEN
 * on a channel derived from the same key and the winner NOTIFYs after its
 * last commit.
 */
#include "schemagate/driver.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/log.h"

/* Cleanup statements (ROLLBACK, unlock) and draining a canceled statement
 * must finish even though the loop already reports a cancellation; they
 * poll the socket directly, bounded so SIGTERM still exits within 2 s. */
#define CLEANUP_TIMEOUT_MS 1000
#define DEFAULT_ATTEMPT_TIMEOUT_MS 10000

struct pg_conn {
	struct sg_conn base;
	PGconn *pg;
	struct sg_io *io;             /* borrowed; NULL = plain poll() */
	char *where;                  /* "host:port/db as user", for messages */
	/* lock key cache: history table as configured -> advisory lock id */
	char *lock_table;
	int64_t lock_id;
	/* before_script(): oids of the invalid indexes that already existed */
	struct sg_buf invalid_before;
	bool have_snapshot;
	bool pooler_probed;           /* the pre-lock probe ran on this connection */
};

static struct pg_conn *pg_of(struct sg_conn *c) { return (struct pg_conn *)c; }

/* ---- errors ------------------------------------------------------------ */



/* libpq messages end in newlines and may span lines; keep the text only. */
static void trim_message(const char *in, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s", in ? in : "");
	size_t n = strlen(out);
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		out[--n] = '\0';
}

static int connection_lost(struct pg_conn *c, struct sg_error *err)
{
	char msg[512];
	trim_message(PQerrorMessage(c->pg), msg, sizeof(msg));
	return sg_fail_db(err, SG_ERRK_CONNECTION, SG_EXIT_DATABASE, "",
			 "postgres %s: connection lost: %s", c->where, msg[0] ? msg : "no reason given");
}

/* The 1-based line of a 1-based character position in sql (UTF-8). */
static int line_of_position(const char *sql, long pos)
{
	int line = 1;
	for (const unsigned char *p = (const unsigned char *)sql; *p && pos > 1; p++) {
		if ((*p & 0xC0) == 0x80)
			continue;   /* continuation byte: same character */
		if (*p == '\n')
			line++;
		pos--;
	}
	return line;
}

static bool is_connection_sqlstate(const char *state)
{
	/* class 08: connection exception; 57P01-3: the server is going away */
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Turn an error result into err: `postgres 42P07: relation "x" already exists (line 3)`. */
static int result_error(struct pg_conn *c, const PGresult *res, const char *sql, bool canceled,
			struct sg_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	char fallback[512];

	if (!state)
		state = "";
	if (!primary) {
		trim_message(PQresultErrorMessage(res), fallback, sizeof(fallback));
		primary = fallback[0] ? fallback : "unknown error";
	}
	char where[48] = "";
	if (position && sql && strchr(sql, '\n'))
		snprintf(where, sizeof(where), " (line %d)", line_of_position(sql, atol(position)));

	enum sg_err_kind kind = SG_ERRK_STATEMENT;
	int exit_code = SG_EXIT_MIGRATION;
	if (strcmp(state, "55P03") == 0) {
		kind = SG_ERRK_LOCK_TIMEOUT;
	} else if (canceled && strcmp(state, "57014") == 0) {
		kind = SG_ERRK_CANCELED;
		exit_code = SG_EXIT_SIGTERM;   /* the coordinator knows the real reason */
	} else if (is_connection_sqlstate(state) || PQstatus(c->pg) == CONNECTION_BAD) {
		kind = SG_ERRK_CONNECTION;
		exit_code = SG_EXIT_DATABASE;
	}
	return sg_fail_db(err, kind, exit_code, state, "postgres %s%s%s%s%s%s", state, state[0] ? ": " : "",
			 primary, where, detail ? "; " : "", detail ? detail : "");
}

/* ---- waiting on the socket --------------------------------------------- */

/* Plain poll(): for cleanup after the loop has been canceled. */
static int poll_socket(int fd, int events, int64_t timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	if (events & SG_IO_READ)
		p.events |= POLLIN;
	if (events & SG_IO_WRITE)
		p.events |= POLLOUT;
	int rc;
	do {
		rc = poll(&p, 1, timeout_ms < 0 ? -1 : (int)timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return rc < 0 ? events : 0;   /* an error: let libpq find it */
	int ready = 0;
	if (p.revents & (POLLIN | POLLERR | POLLHUP))
		ready |= SG_IO_READ;
	if (p.revents & (POLLOUT | POLLERR | POLLHUP))
		ready |= SG_IO_WRITE;
	return ready ? ready : events;
}

/*
 * One statement's way through the wait states. Normal waits run the loop
 * and can be canceled; after a cancellation (or for cleanup statements)
 * waits poll the socket directly until `deadline`.
 */
struct pg_wait {
	bool cleanup;       /* not cancelable; bounded by deadline */
	bool canceled;      /* we sent PQcancel for this statement */
	uint64_t deadline;  /* sg_now_ms() bound while cleanup */
};

static void enter_cleanup(struct pg_wait *w)
{
	if (!w->cleanup) {
		w->cleanup = true;
		w->deadline = sg_now_ms() + CLEANUP_TIMEOUT_MS;
	}
}

/* Ask the server to cancel what this connection is running. */
static void send_cancel(struct pg_conn *c)
{
	char errbuf[256];
	PGcancel *cancel = PQgetCancel(c->pg);
	if (!cancel)
		return;
	if (!PQcancel(cancel, errbuf, sizeof(errbuf)))
		sg_debug("pg_cancel", "postgres %s: cancel request failed: %s", c->where, errbuf);
	PQfreeCancel(cancel);
}

/* Returns ready events (>0) or 0 when the cleanup deadline passed. A
 * cancellation from the loop cancels the statement and switches to
 * cleanup waiting. */
static int wait_socket(struct pg_conn *c, struct pg_wait *w, int events)
{
	int fd = PQsocket(c->pg);
	if (fd < 0)
		return events;   /* libpq will report the broken connection */
	if (!w->cleanup && c->io) {
		int rc = sg_io_wait(c->io, fd, events, -1);
		if (rc != SG_IO_CANCELED)
			return rc > 0 ? rc : events;
		send_cancel(c);
		w->canceled = true;
		enter_cleanup(w);
	} else if (w->cleanup && c->io) {
		/* let timers run while the loop still allows it */
		uint64_t now = sg_now_ms();
		if (now >= w->deadline)
			return 0;
		int rc = sg_io_wait(c->io, fd, events, (int64_t)(w->deadline - now));
		if (rc != SG_IO_CANCELED)
			return rc;
	}
	if (!w->cleanup)
		return poll_socket(fd, events, -1);   /* no loop at all */
	uint64_t now = sg_now_ms();
	if (now >= w->deadline)
		return 0;
	return poll_socket(fd, events, (int64_t)(w->deadline - now));
}

/* ---- running statements ------------------------------------------------ */

/* Push the whole query to the server (non-blocking mode). */
static int flush_query(struct pg_conn *c, struct pg_wait *w, struct sg_error *err)
{
	int rc;
	while ((rc = PQflush(c->pg)) == 1) {
		int ready = wait_socket(c, w, SG_IO_READ | SG_IO_WRITE);
		if (ready == 0)
			return connection_lost(c, err);
		/* the server may answer (an error) before we finished sending */
		if ((ready & SG_IO_READ) && !PQconsumeInput(c->pg))
			return connection_lost(c, err);
	}
	return rc == 0 ? 0 : connection_lost(c, err);
}

static void drain_copy(struct pg_conn *c, PGresult *res, struct pg_wait *w)
{
	if (PQresultStatus(res) == PGRES_COPY_IN) {
		/* there is no client-side data: end the COPY with an error */
		PQputCopyEnd(c->pg, "COPY FROM STDIN is not supported in migrations");
		PQflush(c->pg);
		return;
	}
	char *buf;
	int n;
	while ((n = PQgetCopyData(c->pg, &buf, 1)) != -1) {
		if (n == -2)
			return;
		if (n > 0) {
			PQfreemem(buf);
			continue;
		}
		if (wait_socket(c, w, SG_IO_READ) == 0 || !PQconsumeInput(c->pg))
			return;
	}
}

static int deliver_rows(const PGresult *res, sg_row_fn fn, void *ctx)
{
	int nrows = PQntuples(res), ncols = PQnfields(res);
	const char **values = sg_calloc((size_t)(ncols ? ncols : 1), sizeof(char *));
	int stop = 0;
	for (int r = 0; r < nrows && !stop; r++) {
		for (int i = 0; i < ncols; i++)
			values[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
		stop = fn(ctx, ncols, (const char *const *)values);
	}
	free(values);
	return stop;
}

/*
 * Send sql (a script when params is NULL and nparams < 0, else one
 * statement with text parameters), wait for every result, hand rows to
 * fn, and report the first error. Every PGresult is cleared here.
 */
static int run(struct pg_conn *c, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
	       void *ctx, bool cleanup, struct sg_error *err)
{
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK)
		return connection_lost(c, err);

	struct pg_wait w = { 0 };
	if (cleanup)
		enter_cleanup(&w);
	int sent = nparams < 0 ? PQsendQuery(c->pg, sql)
			       : PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!sent)
		return connection_lost(c, err);
	if (flush_query(c, &w, err) < 0)
		return -1;

	int rc = 0;
	bool stopped = false;
	for (;;) {
		while (PQisBusy(c->pg)) {
			if (wait_socket(c, &w, SG_IO_READ) == 0) {
				/* the server did not answer the cleanup in time:
				 * drop the session, the server rolls back */
				if (rc == 0)
					rc = w.canceled ? sg_fail_db(err, SG_ERRK_CANCELED, SG_EXIT_SIGTERM, "57014",
								    "postgres %s: statement canceled", c->where)
							: connection_lost(c, err);
				PQfinish(c->pg);
				c->pg = NULL;
				return rc;
			}
			if (!PQconsumeInput(c->pg)) {
				if (rc == 0)
					rc = connection_lost(c, err);
				break;
			}
		}
		PGresult *res = PQgetResult(c->pg);
		if (!res)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_TUPLES_OK:
			if (fn && !stopped && rc == 0)
				stopped = deliver_rows(res, fn, ctx) != 0;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_EMPTY_QUERY:
			break;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
			drain_copy(c, res, &w);
			break;
		default:
			/* only the first error counts: later results of a
			 * script are consequences of it */
			if (rc == 0)
				rc = result_error(c, res, sql, w.canceled, err);
			break;
		}
		PQclear(res);
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			if (rc == 0)
				rc = connection_lost(c, err);
			break;
		}
	}
	return rc;
}

/* ---- connecting -------------------------------------------------------- */

/* Escape a value for libpq's `options` (spaces and backslashes). */
static void options_escape(struct sg_buf *b, const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == ' ' || *p == '\\')
			sg_buf_append(b, "\\", 1);
		sg_buf_append(b, p, 1);
	}
}

static bool libpq_knows(const PQconninfoOption *known, const char *key)
{
	for (const PQconninfoOption *o = known; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0)
			return true;
	return false;
}

struct conninfo {
	const char *keys[64];
	const char *values[64];
	int n;
	char port[16], timeout[24];
	struct sg_buf options;
};

static void conninfo_add(struct conninfo *ci, const char *key, const char *value)
{
	if (!value || !*value || ci->n >= (int)(sizeof(ci->keys) / sizeof(ci->keys[0])) - 1)
		return;
	ci->keys[ci->n] = key;
	ci->values[ci->n] = value;
	ci->n++;
}

/* Keywords/values for PQconnectStartParams from the URL and the options.
 * Later entries win in libpq, so ours come after the URL's parameters. */
static int build_conninfo(const struct sg_conn_opts *opts, struct conninfo *ci, struct sg_error *err)
{
	const struct sg_url *url = opts->url;
	PQconninfoOption *known = PQconndefaults();

	conninfo_add(ci, "host", url->host);
	if (url->port > 0) {
		snprintf(ci->port, sizeof(ci->port), "%d", url->port);
		conninfo_add(ci, "port", ci->port);
	}
	conninfo_add(ci, "dbname", url->database);
	conninfo_add(ci, "user", url->user);

	const char *options = NULL, *search_path = NULL;
	for (size_t i = 0; i < url->nparams; i++) {
		const char *key = url->params[i].key, *value = url->params[i].value;
		if (strcmp(key, "search_path") == 0) {
			search_path = value;
		} else if (strcmp(key, "options") == 0) {
			options = value;
		} else if (strcmp(key, "application_name") == 0 || strcmp(key, "dbname") == 0 ||
			   strcmp(key, "connect_timeout") == 0) {
			continue;   /* set below, from the options */
		} else if (libpq_knows(known, key)) {
			conninfo_add(ci, key, value);
		} else {
			PQconninfoFree(known);
			err->kind = SG_ERRK_PERMANENT;
			return sg_fail(err, SG_EXIT_USAGE,
				       "postgres URL parameter \"%s\" is not a libpq connection option", key);
		}
	}
	PQconninfoFree(known);

	if (options)
		sg_buf_puts(&ci->options, options);
	if (search_path) {
		/* the URL's search_path is a session setting, sent at startup */
		sg_buf_puts(&ci->options, ci->options.len ? " -csearch_path=" : "-csearch_path=");
		options_escape(&ci->options, search_path);
	}
	if (ci->options.len)
		conninfo_add(ci, "options", ci->options.data);

	conninfo_add(ci, "password", opts->password ? opts->password : url->password);
	conninfo_add(ci, "application_name", opts->application_name);
	conninfo_add(ci, "fallback_application_name", "schemagate");
	uint64_t ms = opts->attempt_timeout_ms ? opts->attempt_timeout_ms : DEFAULT_ATTEMPT_TIMEOUT_MS;
	snprintf(ci->timeout, sizeof(ci->timeout), "%" PRIu64, ms < 2000 ? 2 : (ms + 999) / 1000);
	conninfo_add(ci, "connect_timeout", ci->timeout);
	ci->keys[ci->n] = NULL;
	ci->values[ci->n] = NULL;
	return 0;
}

/*
 * libpq gives no SQLSTATE for a failed connection, but with verbose
 * errors the message reads "FATAL:  28P01: password authentication
 * failed..." whatever the server's language. Find that code.
 */
static void connect_sqlstate(const char *msg, char state[6])
{
	state[0] = '\0';
	const char *markers[] = { "FATAL:  ", "ERROR:  ", "PANIC:  " };
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
		const char *p = strstr(msg, markers[i]);
		if (!p)
			continue;
		p += strlen(markers[i]);
		size_t n = 0;
		while (n < 5 && (isdigit((unsigned char)p[n]) || isupper((unsigned char)p[n])))
			n++;
		if (n == 5 && p[5] == ':') {
			memcpy(state, p, 5);
			state[5] = '\0';
			return;
		}
	}
}

/* Drop verbose noise (LOCATION lines) and the SQLSTATE we report apart. */
static void connect_message(const char *msg, const char *state, char *out, size_t outsz)
{
	struct sg_buf b = { 0 };
	const char *line = msg;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		/* we name host and port ourselves; the severity adds nothing */
		const char *failed = memmem(line, len, " failed: ", 9);
		if (strncmp(line, "connection to server ", 21) == 0 && failed) {
			len -= (size_t)(failed + 9 - line);
			line = failed + 9;
		}
		if (len > 8 && strncmp(line, "FATAL:  ", 8) == 0) {
			line += 8;
			len -= 8;
		}
		while (len > 0 && isspace((unsigned char)*line)) {
			line++;
			len--;
		}
		if (len > 0 && strncmp(line, "LOCATION:", 9) != 0) {
			if (b.len)
				sg_buf_puts(&b, "; ");
			sg_buf_append(&b, line, len);
		}
		line = end ? end + 1 : NULL;
	}
	char *text = b.data ? b.data : "";
	if (state[0]) {
		char tag[8];
		snprintf(tag, sizeof(tag), "%s: ", state);
		char *p = strstr(text, tag);
		if (p)
			memmove(p, p + strlen(tag), strlen(p + strlen(tag)) + 1);
	}
	trim_message(text, out, outsz);
	sg_buf_free(&b);
}

/* Which failures are worth another attempt (SPEC 5.2). */
static bool transient_connect_failure(const char *state, const char *msg)
{
	if (state[0])
		return strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
		       strncmp(state, "57", 2) == 0;
	/* no SQLSTATE: the server never answered (refused, DNS, reset) or
	 * libpq refused before asking it */
	return strstr(msg, "no password supplied") == NULL && strstr(msg, "invalid ") == NULL &&
	       strstr(msg, "does not support SSL") == NULL;
}

static int connect_failed(PGconn *pg, const char *where, bool timed_out, struct sg_error *err)
{
	char state[6], msg[700];
	const char *raw = PQerrorMessage(pg);
	connect_sqlstate(raw, state);
	connect_message(raw, state, msg, sizeof(msg));
	if (timed_out) {
		state[0] = '\0';
		snprintf(msg, sizeof(msg), "no answer within the connection attempt timeout");
	}
	bool transient = timed_out || transient_connect_failure(state, msg);
	return sg_fail_db(err, transient ? SG_ERRK_TRANSIENT : SG_ERRK_PERMANENT, transient ? SG_EXIT_TIMEOUT : SG_EXIT_DATABASE,
			 state, "connecting to postgres %s: %s%s%s", where, state, state[0] ? " " : "", msg);
}

/* Server notices go to our log, not straight to stderr. */
static void on_notice(void *arg, const PGresult *res)
{
	struct pg_conn *c = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!primary)
		return;
	if (severity && strcmp(severity, "WARNING") == 0)
		sg_warn("pg_notice", "postgres %s: WARNING: %s", c->where, primary);
	else
		sg_debug("pg_notice", "postgres %s: %s: %s", c->where, severity ? severity : "NOTICE", primary);
}

static char *describe_target(PGconn *pg)
{
	const char *host = PQhost(pg), *port = PQport(pg), *db = PQdb(pg), *user = PQuser(pg);
	return sg_asprintf("%s:%s/%s as %s", host && *host ? host : "(default)", port && *port ? port : "5432",
			   db && *db ? db : "(default)", user && *user ? user : "(default)");
}

static int pg_connect(const struct sg_conn_opts *opts, struct sg_conn **out, struct sg_error *err)
{
	*out = NULL;
	struct conninfo ci = { .n = 0 };
	if (build_conninfo(opts, &ci, err) < 0) {
		sg_buf_free(&ci.options);
		return -1;
	}
	PGconn *pg = PQconnectStartParams(ci.keys, ci.values, 0);
	sg_buf_free(&ci.options);
	if (!pg)
		return sg_fail_db(err, SG_ERRK_TRANSIENT, SG_EXIT_DATABASE, "", "postgres: out of memory");
	/* verbose: the startup error then carries its SQLSTATE */
	PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
	char *where = describe_target(pg);

	uint64_t budget = opts->attempt_timeout_ms ? opts->attempt_timeout_ms : DEFAULT_ATTEMPT_TIMEOUT_MS;
	uint64_t deadline = sg_now_ms() + budget;
	PostgresPollingStatusType st = PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
	int rc = 0;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			rc = connect_failed(pg, where, false, err);
			break;
		}
		uint64_t now = sg_now_ms();
		int fd = PQsocket(pg), ready = 0;
		if (fd < 0) {
			rc = connect_failed(pg, where, false, err);
			break;
		}
		if (now < deadline) {
			int events = st == PGRES_POLLING_READING ? SG_IO_READ : SG_IO_WRITE;
			int64_t left = (int64_t)(deadline - now);
			ready = opts->io ? sg_io_wait(opts->io, fd, events, left) : poll_socket(fd, events, left);
		}
		if (ready == SG_IO_CANCELED) {
			rc = sg_fail_db(err, SG_ERRK_CANCELED, SG_EXIT_SIGTERM, "", "connecting to postgres %s: canceled",
				       where);
			break;
		}
		if (ready == 0) {
			rc = connect_failed(pg, where, true, err);
			break;
		}
		st = PQconnectPoll(pg);
	}
	if (rc < 0) {
		PQfinish(pg);
		free(where);
		return rc;
	}

	struct pg_conn *c = sg_calloc(1, sizeof(*c));
	c->base.driver = &sg_driver_postgres;
	c->pg = pg;
	c->io = opts->io;
	c->where = where;
	PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
	PQsetNoticeReceiver(pg, on_notice, c);
	if (PQsetnonblocking(pg, 1) != 0) {
		rc = connection_lost(c, err);
	} else if (opts->ddl_lock_timeout_ms > 0 || opts->row_lock_wait_ms > 0) {
		/* migrations then give up on a table lock instead of queueing
		 * live traffic behind them; the coordinator retries on 55P03.
		 * On the lease connection it bounds a blocked renewal. */
		char sql[64];
		uint64_t ms = opts->row_lock_wait_ms ? opts->row_lock_wait_ms : opts->ddl_lock_timeout_ms;
		snprintf(sql, sizeof(sql), "SET lock_timeout = '%" PRIu64 "ms'", ms);
		rc = run(c, sql, -1, NULL, NULL, NULL, false, err);
	}
	if (rc < 0) {
		sg_driver_postgres.close(&c->base);
		return -1;
	}
	*out = &c->base;
	return 0;
}

static void pg_close(struct sg_conn *conn)
{
	if (!conn)
		return;
	struct pg_conn *c = pg_of(conn);
	if (c->pg)
		PQfinish(c->pg);
	free(c->where);
	free(c->lock_table);
	sg_buf_free(&c->invalid_before);
	free(c);
}

/* ---- statements and transactions --------------------------------------- */

static int pg_exec(struct sg_conn *conn, const char *sql, struct sg_error *err)
{
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, false, err);
}

static int pg_query(struct sg_conn *conn, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
		    void *ctx, struct sg_error *err)
{
	return run(pg_of(conn), sql, nparams < 0 ? 0 : nparams, params, fn, ctx, false, err);
}

static int pg_begin(struct sg_conn *conn, struct sg_error *err)
{
	return run(pg_of(conn), "BEGIN", -1, NULL, NULL, NULL, false, err);
}

static int pg_commit(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	/* COMMIT of an aborted transaction "succeeds" as ROLLBACK */
	bool aborted = c->pg && PQtransactionStatus(c->pg) == PQTRANS_INERROR;
	if (run(c, "COMMIT", -1, NULL, NULL, NULL, false, err) < 0)
		return -1;
	if (aborted)
		return sg_fail_db(err, SG_ERRK_STATEMENT, SG_EXIT_MIGRATION, "25P02",
				 "postgres %s: the transaction had failed and was rolled back", c->where);
	return 0;
}

static int pg_rollback(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	/* no session, no transaction: the server rolled it back already */
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return 0;
	return run(c, "ROLLBACK", -1, NULL, NULL, NULL, true, err);
}

/* ---- identifiers and the lock key -------------------------------------- */

/* "app.t" -> "app"."t" */
static void pg_quote_ident(const char *name, struct sg_buf *out)
{
	sg_quote_ident(name, '"', out);
}

static int first_value(void *ctx, int ncols, const char *const *values)
{
	char **out = ctx;
	if (ncols > 0 && !*out)
		*out = sg_strdup(values[0] ? values[0] : "");
	return 1;
}

/*
 * The advisory lock id of a history table: the first 8 bytes of
 * SHA-256("schemagate:" + schema.table). An unqualified name is resolved
 * with current_schema() once, so "t" and "public.t" share a lock.
 * Advisory locks are per database already, so the database is not part
 * of the key.
 */
static int lock_id(struct pg_conn *c, const char *table, int64_t *id, struct sg_error *err)
{
	if (c->lock_table && strcmp(c->lock_table, table) == 0) {
		*id = c->lock_id;
		return 0;
	}
	char *qualified = NULL;
	if (strchr(table, '.')) {
		qualified = sg_strdup(table);
	} else {
		char *schema = NULL;
		if (run(c, "SELECT coalesce(current_schema(), 'public')", 0, NULL, first_value, &schema, false, err) < 0)
			return -1;
		qualified = sg_asprintf("%s.%s", schema ? schema : "public", table);
		free(schema);
	}
	char *material = sg_asprintf("schemagate:%s", qualified);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int ok = EVP_Digest(material, strlen(material), digest, &len, EVP_sha256(), NULL);
	free(material);
	free(qualified);
	if (!ok || len < 8)
		return sg_fail_db(err, SG_ERRK_PERMANENT, SG_EXIT_DATABASE, "", "SHA-256 failed (OpenSSL)");
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | digest[i];
	free(c->lock_table);
	c->lock_table = sg_strdup(table);
	c->lock_id = (int64_t)v;
	*id = c->lock_id;
	return 0;
}

static int bool_value(void *ctx, int ncols, const char *const *values)
{
	int *out = ctx;
	*out = ncols > 0 && values[0] && values[0][0] == 't';
	return 1;
}

struct lock_probe {
	int got;
	long pid;
};

static int take_probe(void *ctx, int ncols, const char *const *values)
{
	struct lock_probe *p = ctx;
	p->got = ncols > 1 && values[0] && values[0][0] == 't';
	p->pid = ncols > 1 && values[1] ? atol(values[1]) : -1;
	return 1;
}

#define POOLER_ADVICE                                                                                   \
	"a transaction-mode pooler (PgBouncer) is between schemagate and PostgreSQL, so a session lock " \
	"cannot protect the migration; use --lock=table"

/*
 * Before the first lock attempt: do consecutive statements reach the same
 * backend? Behind a transaction-mode pooler they often do not, and then we
 * can refuse before taking a lock that could be stranded on a pooled
 * server connection. (It can pass by chance; the check after acquiring
 * and the unlock check remain.)
 */
static int probe_for_pooler(struct pg_conn *c, struct sg_error *err)
{
	c->pooler_probed = true;
	struct lock_probe first = { 0 };
	for (int i = 0; i < 3; i++) {
		struct lock_probe p = { 0 };
		if (run(c, "SELECT true, pg_backend_pid()", 0, NULL, take_probe, &p, false, err) < 0)
			return -1;
		if (i == 0)
			first = p;
		else if (p.pid != first.pid)
			return sg_fail_db(err, SG_ERRK_PERMANENT, SG_EXIT_DATABASE, "",
					  "consecutive statements ran on backends %ld and %ld: " POOLER_ADVICE,
					  first.pid, p.pid);
	}
	return 0;
}

static int pg_try_lock(struct sg_conn *conn, const char *key, bool *acquired, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	int64_t id;
	*acquired = false;
	if (!c->pooler_probed && probe_for_pooler(c, err) < 0)
		return -1;
	if (lock_id(c, key, &id, err) < 0)
		return -1;
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	const char *params[] = { idtext };
	struct lock_probe probe = {0};
	if (run(c, "SELECT pg_try_advisory_lock($1::bigint), pg_backend_pid()", 1, params, take_probe, &probe,
		false, err) < 0)
		return -1;
	if (!probe.got)
		return 0;
	/* A session lock is only a lock if the next statement reaches the
	 * same backend. Behind a transaction-mode pooler it may not: then
	 * the "lock" protects nothing, and other instances would race. */
	struct lock_probe again = {0};
	if (run(c, "SELECT true, pg_backend_pid()", 0, NULL, take_probe, &again, false, err) < 0)
		return -1;
	if (again.pid != probe.pid) {
		/* free the orphaned lock on whichever pooled backend holds it */
		for (int i = 0; i < 32; i++) {
			int released = 0;
			struct sg_error ignored = {0};
			if (run(c, "SELECT pg_advisory_unlock($1::bigint)", 1, params, bool_value, &released, true,
				&ignored) < 0 || released)
				break;
		}
		return sg_fail_db(err, SG_ERRK_PERMANENT, SG_EXIT_DATABASE, "",
				 "the advisory lock was taken by backend %ld but the next statement ran on backend "
				 "%ld: " POOLER_ADVICE, probe.pid, again.pid);
	}
	*acquired = true;
	return 0;
}

static int pg_unlock(struct sg_conn *conn, const char *key, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	int64_t id;
	if (lock_id(c, key, &id, err) < 0)
		return -1;
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	const char *params[] = { idtext };
	int released = 0;
	if (run(c, "SELECT pg_advisory_unlock($1::bigint)", 1, params, bool_value, &released, true, err) < 0)
		return -1;
	if (!released)
		return sg_fail_db(err, SG_ERRK_PERMANENT, SG_EXIT_DATABASE, "",
				 "advisory unlock returned false: the lock was not held by this session; a "
				 "transaction-mode pooler (PgBouncer) is probably between schemagate and "
				 "PostgreSQL; use --lock=table");
	return 0;
}

struct holder {
	char *out;
	size_t outsz;
};

static int holder_row(void *ctx, int ncols, const char *const *v)
{
	struct holder *h = ctx;
	if (ncols < 3)
		return 1;
	if (v[2])
		snprintf(h->out, h->outsz, "%s (pid %s) for %ss", v[0] ? v[0] : "?", v[1] ? v[1] : "?", v[2]);
	else
		snprintf(h->out, h->outsz, "%s (pid %s)", v[0] ? v[0] : "?", v[1] ? v[1] : "?");
	return 1;
}

/* pg_locks shows a bigint advisory key split in two: classid holds the
 * high 32 bits, objid the low 32 bits, objsubid 1. */
static int pg_lock_holder(struct sg_conn *conn, const char *key, char *out, size_t outsz, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	int64_t id;
	if (outsz)
		out[0] = '\0';
	if (lock_id(c, key, &id, err) < 0)
		return -1;
	char high[16], low[16];
	snprintf(high, sizeof(high), "%" PRIu32, (uint32_t)((uint64_t)id >> 32));
	snprintf(low, sizeof(low), "%" PRIu32, (uint32_t)((uint64_t)id & 0xffffffffu));
	const char *params[] = { high, low };
	struct holder h = { out, outsz };
	/* state_change of the idle lock session is when its successful
	 * pg_try_advisory_lock finished: close to when it took the lock */
	return run(c,
		   "SELECT coalesce(nullif(a.application_name, ''), a.usename, '?'), l.pid, "
		   "extract(epoch FROM now() - coalesce(a.state_change, a.backend_start))::bigint "
		   "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
		   "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
		   "AND l.classid = $1::oid AND l.objid = $2::oid "
		   "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
		   "LIMIT 1",
		   2, params, holder_row, &h, false, err);
}

/* ---- notifications ----------------------------------------------------- */

static int channel_sql(struct pg_conn *c, const char *verb, const char *key, char *sql, size_t sqlsz,
		       struct sg_error *err)
{
	int64_t id;
	if (lock_id(c, key, &id, err) < 0)
		return -1;
	snprintf(sql, sqlsz, "%s \"schemagate_%016" PRIx64 "\"", verb, (uint64_t)id);
	return 0;
}

static int pg_listen(struct sg_conn *conn, const char *key, struct sg_error *err)
{
	char sql[64];
	if (channel_sql(pg_of(conn), "LISTEN", key, sql, sizeof(sql), err) < 0)
		return -1;
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, false, err);
}

static int pg_notify(struct sg_conn *conn, const char *key, struct sg_error *err)
{
	char sql[64];
	if (channel_sql(pg_of(conn), "NOTIFY", key, sql, sizeof(sql), err) < 0)
		return -1;
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, false, err);
}

static int pg_consume_notifications(struct sg_conn *conn, bool *got, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	*got = false;
	if (!c->pg || !PQconsumeInput(c->pg))
		return connection_lost(c, err);
	/* notifications that arrived during earlier queries wait here too */
	PGnotify *n;
	while ((n = PQnotifies(c->pg)) != NULL) {
		*got = true;
		PQfreemem(n);
	}
	return 0;
}

static int pg_socket(struct sg_conn *conn)
{
	struct pg_conn *c = pg_of(conn);
	return c->pg ? PQsocket(c->pg) : -1;
}

/* ---- history support --------------------------------------------------- */

static int pg_table_exists(struct sg_conn *conn, const char *table, bool *exists, struct sg_error *err)
{
	struct sg_buf quoted = { 0 };
	pg_quote_ident(table, &quoted);
	const char *params[] = { quoted.data };
	int found = 0;
	int rc = run(pg_of(conn), "SELECT to_regclass($1) IS NOT NULL", 1, params, bool_value, &found, false, err);
	sg_buf_free(&quoted);
	*exists = found != 0;
	return rc;
}

/* Any table outside the system schemas besides schemagate's own? */
static int pg_has_user_tables(struct sg_conn *conn, const char *table, bool *any, struct sg_error *err)
{
	const char *dot = strrchr(table, '.');
	const char *params[] = { dot ? dot + 1 : table };
	int found = 0;
	int rc = run(pg_of(conn),
		     "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		     "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
		     "AND n.nspname NOT LIKE 'pg\\_%' "
		     "AND c.relname NOT IN ($1, 'schemagate_events', 'schemagate_lock'))",
		     1, params, bool_value, &found, false, err);
	*any = found != 0;
	return rc;
}

#define INVALID_INDEXES_SQL                                                                      \
	"SELECT i.indexrelid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "  \
	"FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "                               \
	"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid ORDER BY 1"

static int collect_oid(void *ctx, int ncols, const char *const *v)
{
	struct sg_buf *b = ctx;
	if (ncols >= 1 && v[0])
		sg_buf_printf(b, " %s ", v[0]);
	return 0;
}

/* A failed or interrupted CREATE INDEX CONCURRENTLY leaves an invalid
 * index behind that PostgreSQL keeps maintaining but never uses:
 * remember the ones that were there before the script. */
static int pg_before_script(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	sg_buf_free(&c->invalid_before);
	sg_buf_puts(&c->invalid_before, " ");
	c->have_snapshot = false;
	if (run(c, INVALID_INDEXES_SQL, 0, NULL, collect_oid, &c->invalid_before, false, err) < 0)
		return -1;
	c->have_snapshot = true;
	return 0;
}

struct new_invalid {
	const struct sg_buf *before;
	struct sg_buf names;
	int count;
};

static int collect_new_invalid(void *ctx, int ncols, const char *const *v)
{
	struct new_invalid *ni = ctx;
	if (ncols < 2 || !v[0] || !v[1])
		return 0;
	char needle[40];
	snprintf(needle, sizeof(needle), " %s ", v[0]);
	if (ni->before->data && strstr(ni->before->data, needle))
		return 0;
	sg_buf_printf(&ni->names, "%s%s", ni->count ? ", " : "", v[1]);
	ni->count++;
	return 0;
}

static int pg_after_script(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	if (!c->have_snapshot)
		return 0;
	struct new_invalid ni = { .before = &c->invalid_before };
	int rc = run(c, INVALID_INDEXES_SQL, 0, NULL, collect_new_invalid, &ni, false, err);
	if (rc == 0 && ni.count > 0)
		rc = sg_fail_db(err, SG_ERRK_STATEMENT, SG_EXIT_MIGRATION, "",
			       "the script left invalid %s %s (a CREATE INDEX CONCURRENTLY failed or was "
			       "interrupted); drop it with DROP INDEX CONCURRENTLY and run again",
			       ni.count > 1 ? "indexes" : "index", ni.names.data);
	sg_buf_free(&ni.names);
	c->have_snapshot = false;
	return rc;
}

const struct sg_driver sg_driver_postgres = {
	.name = "postgres",
	.engine = SG_ENGINE_POSTGRES,
	.caps = SG_CAP_TRANSACTIONAL_DDL | SG_CAP_DEDICATED_LOCK_CONN | SG_CAP_NOTIFY | SG_CAP_CANCEL |
		SG_CAP_POLLABLE,
	.connect = pg_connect,
	.close = pg_close,
	.exec = pg_exec,
	.query = pg_query,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.try_lock = pg_try_lock,
	.unlock = pg_unlock,
	.lock_holder = pg_lock_holder,
	.listen = pg_listen,
	.notify = pg_notify,
	.consume_notifications = pg_consume_notifications,
	.socket = pg_socket,
	.table_exists = pg_table_exists,
	.has_user_tables = pg_has_user_tables,
	.quote_ident = pg_quote_ident,
	.before_script = pg_before_script,
	.after_script = pg_after_script,
	.history_ddl = "CREATE TABLE IF NOT EXISTS %s ("
		       "version TEXT PRIMARY KEY, "
		       "name TEXT NOT NULL, "
		       "checksum VARCHAR(64) NOT NULL, "
		       "status VARCHAR(16) NOT NULL, "
		       "statements_done INTEGER NOT NULL DEFAULT 0, "
		       "applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
		       "applied_by TEXT, "
		       "duration_ms BIGINT, "
		       "down_sql TEXT, "
		       "tool_version TEXT, "
		       "error TEXT)",
	.events_ddl = "CREATE TABLE IF NOT EXISTS %s ("
		      "id BIGSERIAL PRIMARY KEY, "
		      "at TIMESTAMPTZ NOT NULL DEFAULT now(), "
		      "instance TEXT, "
		      "history_table TEXT, "
		      "event VARCHAR(32), "
		      "version VARCHAR(255), "
		      "outcome VARCHAR(32), "
		      "detail TEXT)",
	.now_sql = "now()",
	.now_ms_sql = "(extract(epoch from clock_timestamp()) * 1000)::bigint",
};
