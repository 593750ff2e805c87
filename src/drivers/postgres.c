/*
 * postgres.c - the PostgreSQL driver: libpq, non-blocking, on the libuv loop.
 *
 * Every wait for the server (connecting, sending, reading results) goes
 * through sg_io_wait() on PQsocket, so timers, deadlines and signals keep
 * acting while a statement runs. When the loop stops it calls pg_cancel(),
 * which sends the cancel request from a detached thread (PQcancel blocks
 * on a connect of its own), and the statement's error is collected as
 * usual; past the loop's cleanup deadline the session is dropped and the
 * server rolls back.
 *
 * The lock is a session advisory lock taken on the same connection that
 * runs the migrations, so it cannot outlive the work or be lost while the
 * work goes on; its key is derived from the qualified history table name,
 * so two applications sharing a database with different tables never
 * contend. Waiters LISTEN on a channel derived from the same key and the
 * winner NOTIFYs after its last commit.
 */
#include "schemagate/driver.h"

#include <arpa/inet.h>
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
#include "schemagate/sqlwords.h"

#define DEFAULT_ATTEMPT_TIMEOUT_MS 10000

struct pg_conn {
	struct sg_conn base;
	PGconn *pg;
	struct sg_io *io;             /* borrowed; NULL = plain poll() */
	char *where;                  /* "host:port/db as user", for messages */
	uint64_t lock_wait_ms;        /* SET LOCAL lock_timeout in begin(); 0 = off */
	bool past_script;             /* exec_transaction: the script's marker row came back */
	/* lock key cache: history table as configured -> advisory lock id */
	char *lock_table;
	int64_t lock_id;
	bool pooler_probed;           /* the pre-lock probe ran on this connection */
	bool cancel_sent;             /* pg_cancel ran: a 57014 is schemagate's stop */
	/* the server process of this session (pg_backend_pid(), which a
	 * session pooler does not fake as it fakes PQbackendPID) */
	int backend_pid;
	/* Whether the history table exists, asked by server_info() in the
	 * same query: good for the one table_exists() that comes next on
	 * this connection, before any other statement (run() forgets it). */
	char *history_table;          /* as configured; NULL = not asked */
	bool history_known, history_exists;
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
	trim_message(c->pg ? PQerrorMessage(c->pg) : "connection closed", msg, sizeof(msg));
	return sg_fail_db(err, SG_ERRK_CONNECTION, "",
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

#define POOLER_ADVICE                                                                                   \
	"a transaction-mode pooler (PgBouncer) is between schemagate and PostgreSQL, so a session lock " \
	"cannot protect the migration; use --lock=table"

/* The column of the row exec_transaction asks for right after the script:
 * an error that comes after it is the bookkeeping's, not the script's. */
#define SCRIPT_DONE_MARKER "schemagate_script_done"

/* What the DO block of pg_verify_lock_sql raises (a class of our own). */
#define LOCK_NOT_HELD_SQLSTATE "SGL01"

static int lock_not_held(struct sg_error *err)
{
	return sg_fail_db(err, SG_ERRK_LOCK_LOST, "",
			  "the server connection running this migration does not hold the advisory lock: " POOLER_ADVICE);
}

/* Turn an error result into err: `postgres 42P07: relation "x" already exists (line 3)`. */
static int result_error(struct pg_conn *c, const PGresult *res, const char *sql, struct sg_error *err)
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
	if (strcmp(state, LOCK_NOT_HELD_SQLSTATE) == 0)
		return lock_not_held(err);
	if (strcmp(state, "55P03") == 0) {
		kind = SG_ERRK_LOCK_TIMEOUT;
	} else if (strcmp(state, "57014") == 0) {
		/* ours (the loop stopped), or the server's own: statement_timeout,
		 * pg_cancel_backend() by a DBA */
		sg_fail_canceled(err, c->cancel_sent, state, "postgres %s: %s%s%s%s", state, primary, where,
				 detail ? "; " : "", detail ? detail : "");
		return -1;
	} else if (is_connection_sqlstate(state) || PQstatus(c->pg) == CONNECTION_BAD) {
		kind = SG_ERRK_CONNECTION;
	} else if (strcmp(state, "25006") == 0) {
		/* read_only_sql_transaction: a standby, or a primary demoted
		 * under us (a failover) */
		kind = SG_ERRK_READ_ONLY;
	}
	return sg_fail_db(err, kind, state, "postgres %s%s%s%s%s%s", state, state[0] ? ": " : "",
			 primary, where, detail ? "; " : "", detail ? detail : "");
}

/* ---- waiting on the socket --------------------------------------------- */

/* Plain poll(), when there is no loop (never in the product). */
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

/* Ready events, or SG_IO_CANCELED once the loop's cleanup window is over. */
static int wait_socket(struct pg_conn *c, int events)
{
	int fd = PQsocket(c->pg);
	if (fd < 0)
		return events;   /* libpq will report the broken connection */
	if (!c->io)
		return poll_socket(fd, events, -1);
	int rc = sg_io_wait(c->io, fd, events, -1);
	return rc == 0 ? events : rc;
}

static void *cancel_thread(void *arg)
{
	PGcancel *cancel = arg;
	char errbuf[256];
	/* blocks on a connect of its own; the process may exit meanwhile */
	PQcancel(cancel, errbuf, sizeof(errbuf));
	PQfreeCancel(cancel);
	return NULL;
}

/* The loop stops: ask the server to cancel what this session runs. */
static void pg_cancel(struct sg_conn *conn)
{
	struct pg_conn *c = pg_of(conn);
	PGcancel *cancel = c->pg ? PQgetCancel(c->pg) : NULL;
	if (!cancel)
		return;
	c->cancel_sent = true;
	if (sg_start_detached(cancel_thread, cancel) != 0)
		PQfreeCancel(cancel);
}

/* The cleanup window closed with a statement still running: drop the
 * session (the server rolls back) and say so. */
static int abandon(struct pg_conn *c, struct sg_error *err)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	/* only the loop's cleanup window abandons */
	return sg_fail_canceled(err, true, "57014", "postgres %s: the statement did not stop in time; connection closed",
				c->where);
}

/* ---- running statements ------------------------------------------------ */

/* Push the whole query to the server (non-blocking mode). */
static int flush_query(struct pg_conn *c, struct sg_error *err)
{
	int rc;
	while ((rc = PQflush(c->pg)) == 1) {
		int ready = wait_socket(c, SG_IO_READ | SG_IO_WRITE);
		if (ready == SG_IO_CANCELED)
			return abandon(c, err);
		/* the server may answer (an error) before we finished sending */
		if ((ready & SG_IO_READ) && !PQconsumeInput(c->pg))
			return connection_lost(c, err);
	}
	return rc == 0 ? 0 : connection_lost(c, err);
}

static void drain_copy(struct pg_conn *c, PGresult *res)
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
		if (wait_socket(c, SG_IO_READ) == SG_IO_CANCELED || !PQconsumeInput(c->pg))
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
 * Send sql (a script when nparams < 0, else one statement with text
 * parameters), wait for every result, hand rows to fn, and report the
 * first error. Every PGresult is cleared here.
 */
static int run_busy(struct pg_conn *c, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
		    void *ctx, struct sg_error *err)
{
	int sent = nparams < 0 ? PQsendQuery(c->pg, sql)
			       : PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!sent)
		return connection_lost(c, err);
	if (flush_query(c, err) < 0)
		return -1;

	int rc = 0;
	bool stopped = false;
	for (;;) {
		while (PQisBusy(c->pg)) {
			if (wait_socket(c, SG_IO_READ) == SG_IO_CANCELED)
				return rc == 0 ? abandon(c, err) : (abandon(c, &(struct sg_error){0}), rc);
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
			if (PQnfields(res) == 1 && strcmp(PQfname(res, 0), SCRIPT_DONE_MARKER) == 0)
				c->past_script = true;
			if (fn && !stopped && rc == 0)
				stopped = deliver_rows(res, fn, ctx) != 0;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_EMPTY_QUERY: {
			const char *n = PQcmdTuples(res);
			if (n && *n)
				c->base.affected = atol(n);
			break;
		}
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
			drain_copy(c, res);
			break;
		default:
			/* only the first error counts: later results of a
			 * script are consequences of it */
			if (rc == 0)
				rc = result_error(c, res, sql, err);
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

static int run(struct pg_conn *c, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
	       void *ctx, struct sg_error *err)
{
	c->history_known = false;   /* another statement: the answer may be stale */
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK)
		return connection_lost(c, err);
	c->base.affected = -1;
	sg_io_busy(c->io, &c->base, true);
	int rc = run_busy(c, sql, nparams, params, fn, ctx, err);
	sg_io_busy(c->io, &c->base, false);
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

/* Every URL parameter is one of libpq's (target_session_attrs, sslmode,
 * ...) or ours (search_path): a typo ("sslmod") is refused before any
 * connection is tried, not after --connect-timeout of retries. */
static int pg_check_url(const struct sg_url *url, struct sg_error *err)
{
	PQconninfoOption *known = PQconndefaults();
	int rc = 0;
	for (size_t i = 0; i < url->nparams && rc == 0; i++) {
		const char *key = url->params[i].key;
		if (strcmp(key, "search_path") != 0 && !libpq_knows(known, key)) {
			rc = sg_fail_db(err, SG_ERRK_USAGE, NULL,
					"postgres URL parameter \"%s\" is not a libpq connection option", key);
		}
	}
	PQconninfoFree(known);
	return rc;
}

struct conninfo {
	const char *keys[64];
	const char *values[64];
	int n;
	char timeout[24];
	char hostaddr[128];           /* resolved on the loop, "" = let libpq */
	struct sg_buf host, port, options;
};

static void conninfo_add(struct conninfo *ci, const char *key, const char *value)
{
	if (!value || !*value || ci->n >= (int)(sizeof(ci->keys) / sizeof(ci->keys[0])) - 1)
		return;
	ci->keys[ci->n] = key;
	ci->values[ci->n] = value;
	ci->n++;
}

static void conninfo_free(struct conninfo *ci)
{
	sg_buf_free(&ci->host);
	sg_buf_free(&ci->port);
	sg_buf_free(&ci->options);
}

/* Keywords/values for PQconnectStartParams from the URL and the options.
 * Later entries win in libpq, so ours come after the URL's parameters. */
static int build_conninfo(const struct sg_conn_opts *opts, struct conninfo *ci, struct sg_error *err)
{
	const struct sg_url *url = opts->url;
	if (pg_check_url(url, err) < 0)
		return -1;
	PQconninfoOption *known = PQconndefaults();

	/* libpq's lists: "h1,h2" and "p1,p2", an empty port meaning 5432 */
	bool any_port = false;
	for (size_t i = 0; i < url->nhosts; i++) {
		const struct sg_url_host *h = &url->hosts[i];
		sg_buf_printf(&ci->host, "%s%s", i ? "," : "", h->host ? h->host : "");
		if (h->port > 0)
			any_port = true;
		if (h->port > 0)
			sg_buf_printf(&ci->port, "%s%d", i ? "," : "", h->port);
		else if (i > 0)
			sg_buf_puts(&ci->port, ",");
	}
	conninfo_add(ci, "host", ci->host.data);
	conninfo_add(ci, "hostaddr", ci->hostaddr);
	if (any_port)
		conninfo_add(ci, "port", ci->port.data);
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
	return sg_fail_db(err, transient ? SG_ERRK_TRANSIENT : SG_ERRK_PERMANENT, state, "connecting to postgres %s: %s%s%s", where, state, state[0] ? " " : "", msg);
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

/*
 * libpq resolves host names inside PQconnectStartParams, synchronously: a
 * hanging resolver (a DNS outage in a cluster) would hold the process past
 * its connect timeout. Resolve on the loop instead and hand libpq the
 * address (it still uses the name for TLS verification).
 */
static int resolve_host(const struct sg_conn_opts *opts, char *addr, size_t n, uint64_t budget_ms,
			struct sg_error *err)
{
	const char *host = opts->url->host;
	unsigned char buf[sizeof(struct in6_addr)];
	addr[0] = '\0';
	if (!opts->io || !host || !*host || host[0] == '/' || opts->url->nhosts > 1 ||
	    sg_url_param(opts->url, "hostaddr") || sg_url_param(opts->url, "host") || inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1)
		return 0;
	char result[128];
	int rc = sg_io_resolve(opts->io, host, result, sizeof(result), (int64_t)budget_ms);
	if (rc == SG_IO_CANCELED)
		return sg_fail_canceled(err, true, "", "resolving %s: canceled", host);
	if (rc != 0)
		return sg_fail_db(err, SG_ERRK_TRANSIENT, "",
				  "connecting to postgres: could not resolve host \"%s\": %s", host, result);
	snprintf(addr, n, "%s", result);
	return 0;
}

/* The server beside reached, and no other: later entries win in libpq,
 * over a list of hosts too. */
static void conninfo_beside(struct conninfo *ci, const struct pg_conn *beside)
{
	const char *addr = PQhostaddr(beside->pg);
	conninfo_add(ci, "host", PQhost(beside->pg));
	conninfo_add(ci, "hostaddr", addr);
	conninfo_add(ci, "port", PQport(beside->pg));
	ci->keys[ci->n] = NULL;
	ci->values[ci->n] = NULL;
}

/* One connection attempt; beside: to the server that connection reached. */
static int connect_to(const struct sg_conn_opts *opts, const struct pg_conn *beside, struct sg_conn **out,
		      struct sg_error *err)
{
	*out = NULL;
	struct conninfo ci = { .n = 0 };
	uint64_t budget = opts->attempt_timeout_ms ? opts->attempt_timeout_ms : DEFAULT_ATTEMPT_TIMEOUT_MS;
	uint64_t deadline = sg_now_ms() + budget;
	if (!beside && resolve_host(opts, ci.hostaddr, sizeof(ci.hostaddr), budget, err) < 0)
		return -1;
	if (build_conninfo(opts, &ci, err) < 0) {
		conninfo_free(&ci);
		return -1;
	}
	if (beside)
		conninfo_beside(&ci, beside);
	PGconn *pg = PQconnectStartParams(ci.keys, ci.values, 0);
	conninfo_free(&ci);
	if (!pg)
		return sg_fail_db(err, SG_ERRK_TRANSIENT, "", "postgres: out of memory");
	/* verbose: the startup error then carries its SQLSTATE */
	PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
	char *where = describe_target(pg);

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
			rc = sg_fail_canceled(err, true, "", "connecting to postgres %s: canceled",
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

	/* with a list of hosts, PQhost/PQport now name the one reached */
	free(where);
	where = describe_target(pg);
	struct pg_conn *c = sg_calloc(1, sizeof(*c));
	c->base.driver = &sg_driver_postgres;
	c->pg = pg;
	c->io = opts->io;
	c->where = where;
	c->lock_wait_ms = opts->lock_wait_ms;
	c->backend_pid = PQbackendPID(pg);
	c->history_table = opts->history_table ? sg_strdup(opts->history_table) : NULL;
	c->base.affected = -1;
	PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
	PQsetNoticeReceiver(pg, on_notice, c);
	if (PQsetnonblocking(pg, 1) != 0)
		rc = connection_lost(c, err);
	if (rc < 0) {
		sg_driver_postgres.close(&c->base);
		return -1;
	}
	*out = &c->base;
	return 0;
}

static int pg_connect(const struct sg_conn_opts *opts, struct sg_conn **out, struct sg_error *err)
{
	return connect_to(opts, NULL, out, err);
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
	free(c->history_table);
	free(c);
}

/* ---- statements and transactions --------------------------------------- */

static int pg_exec(struct sg_conn *conn, const char *sql, struct sg_error *err)
{
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, err);
}

static int pg_query(struct sg_conn *conn, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
		    void *ctx, struct sg_error *err)
{
	return run(pg_of(conn), sql, nparams < 0 ? 0 : nparams, params, fn, ctx, err);
}

/*
 * Settings for the transaction only (SET LOCAL ends with it, so nothing
 * leaks into a pooled server connection):
 * - with a lock wait bound, give up on a table or row lock instead of
 *   queueing live traffic behind it (the coordinator retries on 55P03);
 * - check twice a second that we are still there (PostgreSQL 14+): a
 *   migration whose client was killed is canceled and rolled back, and its
 *   advisory lock freed, at once instead of when the statement ends.
 */
static void begin_sql(struct pg_conn *c, struct sg_buf *sql)
{
	sg_buf_puts(sql, "BEGIN");
	if (c->pg && PQserverVersion(c->pg) >= 140000)
		sg_buf_puts(sql, "; SET LOCAL client_connection_check_interval = '500ms'");
	if (c->lock_wait_ms > 0)
		sg_buf_printf(sql, "; SET LOCAL lock_timeout = '%" PRIu64 "ms'", c->lock_wait_ms);
}

static int pg_begin(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	struct sg_buf sql = { 0 };
	begin_sql(c, &sql);
	int rc = run(c, sql.data, -1, NULL, NULL, NULL, err);
	sg_buf_free(&sql);
	return rc;
}

/*
 * One simple-query message: the server runs the statements in order and
 * skips the rest at the first error, leaving the explicit transaction
 * aborted for rollback(). BEGIN shares the script's first line, so an
 * error's line number is the script's own. A newline before each ';'
 * ends a script whose last line is a comment. SAVEPOINT fails outside a
 * transaction block (25P01): a script that ended the transaction itself
 * stops there, before anything is recorded. The marker row after it tells
 * the script's errors from the bookkeeping's.
 */
static int pg_exec_transaction(struct sg_conn *conn, const char *const *parts, size_t n, bool *script_done,
			       struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	c->past_script = false;
	struct sg_buf sql = { 0 };
	begin_sql(c, &sql);
	sg_buf_puts(&sql, "; ");
	for (size_t i = 0; i < n; i++) {
		sg_buf_puts(&sql, parts[i]);
		sg_buf_puts(&sql, "\n;\n");
		if (i == 0)
			sg_buf_puts(&sql, "SAVEPOINT schemagate_script_done; RELEASE SAVEPOINT schemagate_script_done; "
					  "SELECT 1 AS " SCRIPT_DONE_MARKER ";\n");
	}
	sg_buf_puts(&sql, "COMMIT");
	int rc = run(c, sql.data, -1, NULL, NULL, NULL, err);
	sg_buf_free(&sql);
	*script_done = c->past_script;
	return rc;
}

static int pg_quote_literal(struct sg_conn *conn, const char *value, struct sg_buf *out)
{
	struct pg_conn *c = pg_of(conn);
	char *q = c->pg ? PQescapeLiteral(c->pg, value, strlen(value)) : NULL;
	if (!q)
		return -1;
	sg_buf_puts(out, q);
	PQfreemem(q);
	return 0;
}

static bool pg_in_transaction(struct sg_conn *conn)
{
	struct pg_conn *c = pg_of(conn);
	if (!c->pg)
		return false;
	PGTransactionStatusType st = PQtransactionStatus(c->pg);
	return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

static int pg_commit(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	/* COMMIT of an aborted transaction "succeeds" as ROLLBACK */
	bool aborted = c->pg && PQtransactionStatus(c->pg) == PQTRANS_INERROR;
	if (run(c, "COMMIT", -1, NULL, NULL, NULL, err) < 0)
		return -1;
	if (aborted)
		return sg_fail_db(err, SG_ERRK_STATEMENT, "25P02",
				 "postgres %s: the transaction had failed and was rolled back", c->where);
	return 0;
}

static int pg_rollback(struct sg_conn *conn, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	/* no session, no transaction: the server rolled it back already */
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return 0;
	return run(c, "ROLLBACK", -1, NULL, NULL, NULL, err);
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

/* "t" -> "public.t": the schema PostgreSQL would put an unqualified name in. */
static int pg_qualify(struct sg_conn *conn, const char *table, char **out, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	*out = NULL;
	if (strchr(table, '.')) {
		*out = sg_strdup(table);
		return 0;
	}
	char *schema = NULL;
	if (run(c, "SELECT coalesce(current_schema(), 'public')", 0, NULL, first_value, &schema, err) < 0)
		return -1;
	*out = sg_asprintf("%s.%s", schema ? schema : "public", table);
	free(schema);
	return 0;
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
	if (pg_qualify(&c->base, table, &qualified, err) < 0)
		return -1;
	char *material = sg_asprintf("schemagate:%s", qualified);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int ok = EVP_Digest(material, strlen(material), digest, &len, EVP_sha256(), NULL);
	free(material);
	free(qualified);
	if (!ok || len < 8)
		return sg_fail_db(err, SG_ERRK_PERMANENT, "", "SHA-256 failed (OpenSSL)");
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | digest[i];
	free(c->lock_table);
	c->lock_table = sg_strdup(table);
	c->lock_id = (int64_t)v;
	*id = c->lock_id;
	return 0;
}

/* pg_locks shows a bigint advisory key split in two: classid holds the
 * high 32 bits, objid the low 32 bits, objsubid 1. */
#define ADVISORY_LOCK_ROW_OF(high, low)                                          \
	"l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "                 \
	"AND l.classid = " high "::oid AND l.objid = " low "::oid "                 \
	"AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
#define ADVISORY_LOCK_ROW ADVISORY_LOCK_ROW_OF("$1", "$2")

struct lock_key_params {
	char high[16], low[16];
	const char *values[2];
};

static int lock_key_params(struct pg_conn *c, const char *table, struct lock_key_params *k, struct sg_error *err)
{
	int64_t id;
	if (lock_id(c, table, &id, err) < 0)
		return -1;
	snprintf(k->high, sizeof(k->high), "%" PRIu32, (uint32_t)((uint64_t)id >> 32));
	snprintf(k->low, sizeof(k->low), "%" PRIu32, (uint32_t)((uint64_t)id & 0xffffffffu));
	k->values[0] = k->high;
	k->values[1] = k->low;
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
		if (run(c, "SELECT true, pg_backend_pid()", 0, NULL, take_probe, &p, err) < 0)
			return -1;
		if (i == 0)
			first = p;
		else if (p.pid != first.pid)
			return sg_fail_db(err, SG_ERRK_PERMANENT, "",
					  "consecutive statements ran on backends %ld and %ld: " POOLER_ADVICE,
					  first.pid, p.pid);
	}
	return 0;
}

/* wait_ms is not used: waiters sleep on LISTEN and the winner's NOTIFY. */
static int pg_try_lock(struct sg_conn *conn, const char *key, uint64_t wait_ms, bool *acquired, struct sg_error *err)
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
		err) < 0)
		return -1;
	if (!probe.got)
		return 0;
	/* A session lock is only a lock if the next statement reaches the
	 * same backend. Behind a transaction-mode pooler it may not: then
	 * the "lock" protects nothing, and other instances would race. */
	struct lock_probe again = {0};
	if (run(c, "SELECT true, pg_backend_pid()", 0, NULL, take_probe, &again, err) < 0)
		return -1;
	if (again.pid != probe.pid) {
		/* free the orphaned lock on whichever pooled backend holds it */
		for (int i = 0; i < 32; i++) {
			int released = 0;
			struct sg_error ignored = {0};
			if (run(c, "SELECT pg_advisory_unlock($1::bigint)", 1, params, bool_value, &released,
				&ignored) < 0 || released)
				break;
		}
		return sg_fail_db(err, SG_ERRK_PERMANENT, "",
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
	if (run(c, "SELECT pg_advisory_unlock($1::bigint)", 1, params, bool_value, &released, err) < 0)
		return -1;
	if (!released)
		return sg_fail_db(err, SG_ERRK_PERMANENT, "",
				 "advisory unlock returned false: the lock was not held by this session; a "
				 "transaction-mode pooler (PgBouncer) is probably between schemagate and "
				 "PostgreSQL; use --lock=table");
	return 0;
}

/*
 * Inside the migration's transaction: does the backend running it hold
 * the advisory lock? The lock was taken on this very session, so the
 * only way to fail is a transaction-mode pooler that handed this
 * transaction to another server connection.
 */
static int pg_verify_lock(struct sg_conn *conn, const char *key, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	struct lock_key_params k;
	if (lock_key_params(c, key, &k, err) < 0)
		return -1;
	int held = 0;
	if (run(c, "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND " ADVISORY_LOCK_ROW ")",
		2, k.values, bool_value, &held, err) < 0)
		return -1;
	if (!held)
		return lock_not_held(err);
	return 0;
}

/* The same check inside a one-message transaction: a DO block raising
 * LOCK_NOT_HELD_SQLSTATE, which result_error turns into the same error. */
static int pg_verify_lock_sql(struct sg_conn *conn, const char *key, struct sg_buf *out, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	struct lock_key_params k;
	if (lock_key_params(c, key, &k, err) < 0)
		return -1;
	sg_buf_printf(out, "DO $schemagate$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() "
			   "AND " ADVISORY_LOCK_ROW_OF("%s", "%s") ") THEN RAISE EXCEPTION USING ERRCODE = '"
			   LOCK_NOT_HELD_SQLSTATE "', MESSAGE = 'advisory lock not held'; END IF; END$schemagate$",
		      k.high, k.low);
	return 0;
}

struct holder {
	char *out;
	size_t outsz;
};

static int holder_row(void *ctx, int ncols, const char *const *v)
{
	struct holder *h = ctx;
	if (ncols < 4)
		return 1;
	snprintf(h->out, h->outsz, "%s (pid %s, %s for %ss)", v[0] ? v[0] : "?", v[1] ? v[1] : "?",
		 v[2] ? v[2] : "?", v[3] ? v[3] : "?");
	return 1;
}

/* The holder works on its lock session, so what that session is doing
 * (and since when) is what a waiting operator wants to see. */
static int pg_lock_holder(struct sg_conn *conn, const char *key, char *out, size_t outsz, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	if (outsz)
		out[0] = '\0';
	struct lock_key_params k;
	if (lock_key_params(c, key, &k, err) < 0)
		return -1;
	struct holder h = { out, outsz };
	return run(c,
		   "SELECT coalesce(nullif(a.application_name, ''), a.usename, '?'), l.pid, coalesce(a.state, '?'), "
		   "extract(epoch FROM now() - coalesce(a.state_change, a.backend_start))::bigint "
		   "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE " ADVISORY_LOCK_ROW " LIMIT 1",
		   2, k.values, holder_row, &h, err);
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
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, err);
}

static int pg_notify(struct sg_conn *conn, const char *key, struct sg_error *err)
{
	char sql[64];
	if (channel_sql(pg_of(conn), "NOTIFY", key, sql, sizeof(sql), err) < 0)
		return -1;
	return run(pg_of(conn), sql, -1, NULL, NULL, NULL, err);
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

/* ---- what the server is ------------------------------------------------ */

struct role {
	struct sg_server_info *info;
	struct pg_conn *c;
	bool history_exists;
};

static int take_role(void *ctx, int ncols, const char *const *v)
{
	struct role *role = ctx;
	struct sg_server_info *info = role->info;
	if (ncols < 4)
		return 1;
	if (v[2] && atoi(v[2]) > 0)
		role->c->backend_pid = atoi(v[2]);
	if (v[0] && strcmp(v[0], "t") == 0)
		snprintf(info->read_only_why, sizeof(info->read_only_why), "standby");
	else if (v[1] && strcmp(v[1], "on") == 0)
		snprintf(info->read_only_why, sizeof(info->read_only_why), "transaction_read_only=on");
	info->read_only = info->read_only_why[0] != '\0';
	role->history_exists = v[3] && strcmp(v[3], "t") == 0;
	return 1;
}

static int pg_server_info(struct sg_conn *conn, struct sg_server_info *info, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	memset(info, 0, sizeof(*info));
	/* PQhost/PQport: with a list of hosts, the one libpq settled on */
	const char *host = c->pg ? PQhost(c->pg) : NULL, *port = c->pg ? PQport(c->pg) : NULL;
	bool v6 = host && strchr(host, ':');
	snprintf(info->where, sizeof(info->where), "%s%s%s:%s", v6 ? "[" : "", host && *host ? host : "(default)",
		 v6 ? "]" : "", port && *port ? port : "5432");
	/* the history read that follows a connect starts with "does the
	 * table exist?": asked here, in the same round trip */
	struct sg_buf regclass = {0};
	if (c->history_table)
		pg_quote_ident(c->history_table, &regclass);
	const char *params[] = {regclass.data};
	struct role role = {.info = info, .c = c};
	int rc = run(c, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), pg_backend_pid(), "
		     "to_regclass($1) IS NOT NULL", 1, params, take_role, &role, err);
	sg_buf_free(&regclass);
	if (rc == 0 && c->history_table) {
		c->history_known = true;
		c->history_exists = role.history_exists;
	}
	return rc;
}

/* ---- history support --------------------------------------------------- */

static int pg_table_exists(struct sg_conn *conn, const char *table, bool *exists, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	if (c->history_known && strcmp(table, c->history_table) == 0) {
		/* asked with server_info(), and nothing ran since */
		c->history_known = false;
		*exists = c->history_exists;
		return 0;
	}
	struct sg_buf quoted = { 0 };
	pg_quote_ident(table, &quoted);
	const char *params[] = { quoted.data };
	int found = 0;
	int rc = run(c, "SELECT to_regclass($1) IS NOT NULL", 1, params, bool_value, &found, err);
	sg_buf_free(&quoted);
	*exists = found != 0;
	return rc;
}

/* Any table in the history table's schema besides schemagate's own? A
 * table in another schema says nothing about this application's state. */
static int pg_has_user_tables(struct sg_conn *conn, const char *table, bool *any, struct sg_error *err)
{
	char *qualified = NULL;
	if (pg_qualify(conn, table, &qualified, err) < 0)
		return -1;
	char *dot = strrchr(qualified, '.');
	*dot = '\0';
	const char *params[] = { qualified, dot + 1 };
	int found = 0;
	int rc = run(pg_of(conn),
		     "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		     "WHERE c.relkind IN ('r', 'p') AND n.nspname = $1 "
		     "AND c.relname NOT IN ($2, 'schemagate_events', 'schemagate_lock'))",
		     2, params, bool_value, &found, err);
	free(qualified);
	*any = found != 0;
	return rc;
}

/* ---- statement by statement ------------------------------------------- */

static enum sg_stmt_kind pg_classify(const char *sql)
{
	static const char *const tx_control[] = { "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
						  "SAVEPOINT", "RELEASE", NULL };
	char w[6][SG_SQL_WORD_MAX];
	size_t n = sg_sql_words(sql, w, 6);
	if (n == 0)
		return SG_STMT_TRANSACTIONAL;
	if (sg_sql_word_in(w[0], tx_control))
		return SG_STMT_TX_CONTROL;
	/* what PostgreSQL refuses inside a transaction block, or must see
	 * committed before the next statement uses it */
	for (size_t i = 1; i < n; i++)
		if (strcmp(w[i], "CONCURRENTLY") == 0)
			return SG_STMT_STANDALONE;   /* CREATE/DROP/REINDEX ... CONCURRENTLY */
	if (!strcmp(w[0], "VACUUM") || !strcmp(w[0], "CLUSTER") ||
	    ((!strcmp(w[0], "CREATE") || !strcmp(w[0], "DROP") || !strcmp(w[0], "ALTER")) && n > 1 &&
	     (!strcmp(w[1], "DATABASE") || !strcmp(w[1], "TABLESPACE") || !strcmp(w[1], "SUBSCRIPTION") ||
	      !strcmp(w[1], "SYSTEM"))) ||
	    (!strcmp(w[0], "ALTER") && n > 4 && !strcmp(w[1], "TYPE") && !strcmp(w[3], "ADD") && !strcmp(w[4], "VALUE")))
		return SG_STMT_STANDALONE;
	return SG_STMT_TRANSACTIONAL;
}

/*
 * Re-running a statement that was in doubt: these SQLSTATEs prove it had
 * taken effect. "Already exists" for anything that creates; "does not
 * exist" only for a DROP (elsewhere it means something else is wrong).
 */
static bool pg_already_done(const char *sql, const struct sg_error *err)
{
	static const char *const exists[] = {
		"42P07", /* duplicate_table: relation (table, index, sequence, view) exists */
		"42701", /* duplicate_column */
		"42710", /* duplicate_object: constraint, trigger, type, enum label... */
		"42P06", /* duplicate_schema */
		"42723", /* duplicate_function */
		"42P04", /* duplicate_database */
		NULL,
	};
	static const char *const missing[] = {
		"42P01", /* undefined_table */
		"42703", /* undefined_column */
		"42704", /* undefined_object */
		"42883", /* undefined_function */
		"3F000", /* invalid_schema_name */
		"3D000", /* invalid_catalog_name (DROP DATABASE) */
		NULL,
	};
	if (sg_sql_word_in(err->sqlstate, exists))
		return true;
	char w[1][SG_SQL_WORD_MAX];
	return sg_sql_words(sql, w, 1) == 1 && !strcmp(w[0], "DROP") && sg_sql_word_in(err->sqlstate, missing);
}

/* One token of sql as written: an identifier (quoted or not, possibly
 * qualified) or a keyword. Returns the position after it. */
static const char *raw_token(const char *p, char *out, size_t outsz)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	size_t n = 0;
	while (*p && !isspace((unsigned char)*p) && *p != '(' && *p != ';') {
		if (*p == '"') {
			do {
				if (n + 1 < outsz)
					out[n++] = *p;
				p++;
			} while (*p && *p != '"');
			if (*p == '"' && n + 1 < outsz)
				out[n++] = *p;
			if (*p)
				p++;
			continue;
		}
		if (n + 1 < outsz)
			out[n++] = *p;
		p++;
	}
	out[n] = '\0';
	return p;
}

/*
 * CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON [ONLY] table:
 * the index name and the table, as written. false for anything else, or
 * an index without a name.
 */
static bool cic_target(const char *sql, char *index, size_t isz, char *table, size_t tsz)
{
	char w[4][SG_SQL_WORD_MAX];
	size_t n = sg_sql_words(sql, w, 4);
	size_t at = n > 2 && !strcmp(w[1], "UNIQUE") ? 2 : 1;
	if (n < at + 2 || strcmp(w[0], "CREATE") || strcmp(w[at], "INDEX") || strcmp(w[at + 1], "CONCURRENTLY"))
		return false;
	const char *p = strcasestr(sql, "CONCURRENTLY") + strlen("CONCURRENTLY");
	char tok[256];
	p = raw_token(p, tok, sizeof(tok));
	if (!strcasecmp(tok, "IF")) {
		p = raw_token(p, tok, sizeof(tok));   /* NOT */
		p = raw_token(p, tok, sizeof(tok));   /* EXISTS */
		p = raw_token(p, tok, sizeof(tok));
	}
	if (!strcasecmp(tok, "ON") || !tok[0])
		return false;
	snprintf(index, isz, "%s", tok);
	p = raw_token(p, tok, sizeof(tok));
	if (strcasecmp(tok, "ON"))
		return false;
	p = raw_token(p, tok, sizeof(tok));
	if (!strcasecmp(tok, "ONLY"))
		raw_token(p, tok, sizeof(tok));
	snprintf(table, tsz, "%s", tok);
	return tok[0] != '\0';
}

struct index_state {
	bool found, valid;
	char qualified[300];
};

static int take_index_state(void *ctx, int ncols, const char *const *v)
{
	struct index_state *s = ctx;
	s->found = true;
	s->valid = v[0] && v[0][0] == 't';
	snprintf(s->qualified, sizeof(s->qualified), "%s", v[1] ? v[1] : "");
	return 1;
}

/* The index an unqualified name in a CREATE INDEX on table names: it lives
 * in the table's schema. The name folds like any identifier. */
static int index_state(struct pg_conn *c, const char *index, const char *table, struct index_state *st,
		       struct sg_error *err)
{
	memset(st, 0, sizeof(*st));
	const char *params[] = { index, table };
	return run(c,
		   "SELECT i.indisvalid, quote_ident(n.nspname) || '.' || quote_ident(x.relname) "
		   "FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_namespace n ON n.oid = "
		   "x.relnamespace WHERE i.indrelid = to_regclass($2) AND x.relname = "
		   "CASE WHEN left($1, 1) = '\"' THEN replace(substr($1, 2, length($1) - 2), '\"\"', '\"') "
		   "ELSE lower($1) END",
		   2, params, take_index_state, st, err);
}

/* The index a CREATE INDEX CONCURRENTLY statement builds, as it stands:
 * 1 (st filled), 0 when sql is no such statement, -1 on error. */
static int cic_index(struct pg_conn *c, const char *sql, char *index, size_t isz, struct index_state *st,
		     struct sg_error *err)
{
	char table[256];
	if (!cic_target(sql, index, isz, table, sizeof(table)))
		return 0;
	return index_state(c, index, table, st, err) < 0 ? -1 : 1;
}

/* An invalid index named like the one this statement creates is what an
 * interrupted CREATE INDEX CONCURRENTLY leaves: PostgreSQL keeps
 * maintaining it but never uses it, and IF NOT EXISTS would keep it.
 * Drop it so the statement builds it again. */
static int pg_before_statement(struct sg_conn *conn, const char *sql, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	char index[256];
	struct index_state st;
	int is = cic_index(c, sql, index, sizeof(index), &st, err);
	if (is <= 0 || !st.found || st.valid)
		return is < 0 ? -1 : 0;
	sg_warn("invalid_index", "dropping the invalid index %s left by an interrupted CREATE INDEX CONCURRENTLY, to "
		"build it again", st.qualified);
	char *drop = sg_asprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", st.qualified);
	int rc = run(c, drop, -1, NULL, NULL, NULL, err);
	free(drop);
	return rc;
}

/* A CREATE INDEX CONCURRENTLY that "succeeded" must have left a valid
 * index: catches one that was invalid before (IF NOT EXISTS kept it). */
static int pg_after_statement(struct sg_conn *conn, const char *sql, struct sg_error *err)
{
	struct pg_conn *c = pg_of(conn);
	char index[256];
	struct index_state st;
	int is = cic_index(c, sql, index, sizeof(index), &st, err);
	if (is <= 0 || (st.found && st.valid))
		return is < 0 ? -1 : 0;
	return sg_fail_db(err, SG_ERRK_STATEMENT, "",
			  st.found ? "index %s is invalid after CREATE INDEX CONCURRENTLY; drop it with DROP INDEX "
				     "CONCURRENTLY and run again"
				   : "index %s does not exist after CREATE INDEX CONCURRENTLY", st.found ? st.qualified : index);
}

/* ---- progress of a long statement ---------------------------------------
 * One statement on a connection of its own: the session's activity, its
 * row in pg_stat_progress_create_index or pg_stat_progress_cluster, and
 * who blocks it (pg_blocking_pids; for a concurrent build waiting for old
 * snapshots, also the transaction it waits for now). */

static const char progress_sql[] =
	"SELECT a.state, a.wait_event_type, a.wait_event, "
	"extract(epoch FROM clock_timestamp() - a.query_start)::float8, "
	"coalesce(ci.command, cl.command), coalesce(ci.phase, cl.phase), "
	"coalesce(ci.blocks_done, cl.heap_blks_scanned), coalesce(ci.blocks_total, cl.heap_blks_total), "
	"coalesce(ci.tuples_done, cl.heap_tuples_written), ci.tuples_total, "
	"(SELECT string_agg(format('pid %s (application_name \"%s\", %s%s)', p, coalesce(b.application_name, ''), "
	"coalesce(b.state, 'state unknown'), CASE WHEN b.xact_start IS NULL THEN '' ELSE format(', transaction "
	"open %ss', round(extract(epoch FROM clock_timestamp() - b.xact_start))) END), ', ' ORDER BY o) "
	"FROM (SELECT p, min(o) AS o FROM unnest(pg_blocking_pids(a.pid) || CASE WHEN ci.current_locker_pid > 0 "
	"THEN ARRAY[ci.current_locker_pid] ELSE '{}'::int[] END) WITH ORDINALITY AS n(p, o) GROUP BY p) AS u "
	"LEFT JOIN pg_stat_activity b ON b.pid = u.p), "
	"ci.lockers_done, ci.lockers_total, left(a.query, 200) "
	"FROM pg_stat_activity a "
	"LEFT JOIN pg_stat_progress_create_index ci ON ci.pid = a.pid "
	"LEFT JOIN pg_stat_progress_cluster cl ON cl.pid = a.pid "
	"WHERE a.pid = $1";

static int64_t count_or_unknown(const char *v) { return v && *v ? strtoll(v, NULL, 10) : -1; }

static int take_progress(void *ctx, int ncols, const char *const *v)
{
	struct sg_progress *p = ctx;
	if (ncols < 14 || !v[0] || strcmp(v[0], "active") != 0)
		return 1;
	p->found = true;
	if (v[1] && v[2])
		snprintf(p->wait, sizeof(p->wait), "%s:%s", v[1], v[2]);
	p->seconds = v[3] ? strtod(v[3], NULL) : -1;
	snprintf(p->command, sizeof(p->command), "%s", v[4] ? v[4] : "");
	/* no progress view covers it: what it is, past the BEGIN and SET
	 * LOCALs a migration's one message starts with (begin_sql) */
	char words[2][SG_SQL_WORD_MAX];
	size_t nwords = 0;
	for (const char *q = p->command[0] ? NULL : v[13]; q; q = strchr(q, ';') ? strchr(q, ';') + 1 : NULL) {
		nwords = sg_sql_words(q, words, 2);
		if (nwords == 0 || (strcmp(words[0], "BEGIN") != 0 && strcmp(words[0], "SET") != 0))
			break;
	}
	if (nwords > 0 && strcmp(words[0], "BEGIN") != 0 && strcmp(words[0], "SET") != 0)
		snprintf(p->command, sizeof(p->command), "%s%s%s", words[0], nwords > 1 ? " " : "",
			 nwords > 1 ? words[1] : "");
	snprintf(p->phase, sizeof(p->phase), "%s", v[5] ? v[5] : "");
	p->blocks_done = count_or_unknown(v[6]);
	p->blocks_total = count_or_unknown(v[7]);
	p->tuples_done = count_or_unknown(v[8]);
	p->tuples_total = count_or_unknown(v[9]);
	snprintf(p->blockers, sizeof(p->blockers), "%s", v[10] ? v[10] : "");
	int64_t lockers_done = count_or_unknown(v[11]), lockers_total = count_or_unknown(v[12]);
	if (strncmp(p->phase, "waiting for", 11) == 0 && lockers_total > 0) {
		size_t n = strlen(p->phase);
		snprintf(p->phase + n, sizeof(p->phase) - n, " (%lld of %lld transactions)", (long long)lockers_done,
			 (long long)lockers_total);
	}
	/* the phase says which counter moves: tuples while loading the
	 * tree, blocks while scanning the table */
	bool tuples = strstr(p->phase, "loading tuples") || strstr(p->phase, "writing new heap");
	if (tuples && p->tuples_total > 0)
		p->percent = 100.0 * (double)p->tuples_done / (double)p->tuples_total;
	else if (p->blocks_total > 0 && p->blocks_done >= 0)
		p->percent = 100.0 * (double)p->blocks_done / (double)p->blocks_total;
	else if (p->tuples_total > 0 && p->tuples_done >= 0)
		p->percent = 100.0 * (double)p->tuples_done / (double)p->tuples_total;
	return 1;
}

static int pg_progress(struct sg_conn *work, const struct sg_conn_opts *opts, struct sg_progress *out,
		       struct sg_error *err)
{
	struct pg_conn *w = pg_of(work);
	if (!w->pg || !w->backend_pid)
		return sg_fail_db(err, SG_ERRK_CONNECTION, "", "postgres: the session to look at is gone");
	struct sg_conn *probe = NULL;
	if (connect_to(opts, w, &probe, err) != 0)
		return -1;
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", w->backend_pid);
	const char *params[] = {pid};
	/* a catalog view must never queue behind a DDL lock: give up fast */
	int rc = pg_exec(probe, "SET statement_timeout = 2000; SET lock_timeout = 500", err);
	if (rc == 0)
		rc = pg_query(probe, progress_sql, 1, params, take_progress, out, err);
	pg_close(probe);
	return rc;
}

static bool pg_unknown_database(const struct sg_error *err)
{
	return strcmp(err->sqlstate, "3D000") == 0;   /* invalid_catalog_name */
}

static bool pg_auth_failed(const struct sg_error *err)
{
	return strncmp(err->sqlstate, "28", 2) == 0;   /* invalid_authorization_specification, invalid_password */
}

static int found_database(void *ctx, int ncols, const char *const *v)
{
	*(bool *)ctx = true;
	return 1;
}

/*
 * CREATE DATABASE cannot run in a transaction and has no IF NOT EXISTS,
 * so the race between instances is settled by the server: a loser gets
 * duplicate_database (42P04), or a unique violation on pg_database's name
 * index (23505) when both passed the catalog check at once.
 */
static int pg_create_database(const struct sg_conn_opts *opts, bool *created, struct sg_error *err)
{
	*created = false;
	const char *name = opts->url->database;
	if (!name || !*name)
		return sg_fail_db(err, SG_ERRK_PERMANENT, "",
				  "--create-database: the URL names no database to create");
	static const char *const maintenance[] = {"postgres", "template1"};
	struct sg_url url = *opts->url;
	struct sg_conn_opts o = *opts;
	o.url = &url;
	struct sg_conn *c = NULL;
	for (size_t i = 0; i < 2 && !c; i++) {
		url.database = (char *)maintenance[i];
		sg_error_clear(err);
		if (pg_connect(&o, &c, err) != 0 && !pg_unknown_database(err))
			break;
	}
	if (!c)
		return sg_error_prefix(err, "--create-database: connecting to the maintenance database");
	bool exists = false;
	const char *p[] = {name};
	int rc = pg_query(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, p, found_database, &exists, err);
	if (rc == 0 && !exists) {
		struct sg_buf sql = {0};
		sg_buf_puts(&sql, "CREATE DATABASE ");
		pg_quote_ident(name, &sql);
		rc = pg_exec(c, sql.data, err);
		sg_buf_free(&sql);
		if (rc == 0)
			*created = true;
		else if (strcmp(err->sqlstate, "42P04") == 0 || strcmp(err->sqlstate, "23505") == 0)
			rc = 0;
		else
			sg_error_prefix(err, "--create-database: creating database %s", name);
	}
	if (rc == 0)
		sg_error_clear(err);
	pg_close(c);
	return rc;
}

const struct sg_driver sg_driver_postgres = {
	.name = "postgres",
	.engine = SG_ENGINE_POSTGRES,
	.caps = SG_CAP_TRANSACTIONAL_DDL | SG_CAP_NOTIFY | SG_CAP_POLLABLE,
	.check_url = pg_check_url,
	.connect = pg_connect,
	.server_info = pg_server_info,
	.close = pg_close,
	.unknown_database = pg_unknown_database,
	.auth_failed = pg_auth_failed,
	.create_database = pg_create_database,
	.cancel = pg_cancel,
	.progress = pg_progress,
	.exec = pg_exec,
	.query = pg_query,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.in_transaction = pg_in_transaction,
	.try_lock = pg_try_lock,
	.verify_lock = pg_verify_lock,
	.unlock = pg_unlock,
	.lock_holder = pg_lock_holder,
	.listen = pg_listen,
	.notify = pg_notify,
	.consume_notifications = pg_consume_notifications,
	.socket = pg_socket,
	.qualify = pg_qualify,
	.table_exists = pg_table_exists,
	.has_user_tables = pg_has_user_tables,
	.quote_ident = pg_quote_ident,
	.classify = pg_classify,
	.already_done = pg_already_done,
	.before_statement = pg_before_statement,
	.after_statement = pg_after_statement,
	.exec_transaction = pg_exec_transaction,
	.quote_literal = pg_quote_literal,
	.verify_lock_sql = pg_verify_lock_sql,
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
	/* the history row is inserted, updated and deleted (down); the events
	 * table takes rows, its id from a sequence */
	.history_rights_sql = "SELECT t, string_agg(p, ', ' ORDER BY o) FROM (SELECT o, t, p FROM (VALUES "
			      "(1, $1::text, 'INSERT'), (2, $1::text, 'UPDATE'), (3, $1::text, 'DELETE'), "
			      "(4, $2::text, 'INSERT')) AS v (o, t, p) WHERE NOT has_table_privilege(t, p) "
			      "UNION ALL SELECT 5, s, 'USAGE' FROM pg_get_serial_sequence($2::text, 'id') AS s "
			      "WHERE s IS NOT NULL AND NOT has_sequence_privilege(s, 'USAGE') "
			      "AND NOT has_sequence_privilege(s, 'UPDATE')) AS missing GROUP BY t ORDER BY min(o)",
	.now_sql = "now()",
	.applied_at_sql = "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
	.now_ms_sql = "(extract(epoch from clock_timestamp()) * 1000)::bigint",
	/* statement_timestamp(): when the latest message from the client arrived */
	.batch_elapsed_ms_sql = "(extract(epoch from clock_timestamp() - statement_timestamp()) * 1000)::bigint",
};
