/*
 * mysql.c - the MySQL/MariaDB driver (MariaDB Connector/C, non-blocking API).
 *
 * MySQL commits DDL implicitly, so this driver declares no transactional
 * DDL: the coordinator runs each migration statement by statement and
 * records its progress. The lock is GET_LOCK() on a dedicated connection;
 * its name carries the database and the history table because GET_LOCK
 * names are server-wide.
 *
 * Every network wait goes through sg_io_wait(), so the coordinator's loop
 * (signals, --timeout) keeps running during a statement. When the loop
 * stops, drv_cancel() sends KILL QUERY from a detached thread over a short-
 * lived second connection, and the statement's error is collected as
 * usual; the session (and its GET_LOCK) stays usable for the cleanup that
 * follows. Past the loop's cleanup deadline the session is abandoned.
 */
#include "schemagate/driver.h"
#include "schemagate/sqlwords.h"

#include <mysql.h>
#include <errmsg.h>
#include <limits.h>
#include <mysqld_error.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* GET_LOCK names longer than this are rejected by the server. */
#define LOCK_NAME_MAX 64
/* KILL QUERY is sent again this often while the statement runs on (the
 * first one can arrive before the server has started the statement). */
#define KILL_ATTEMPTS 3
#define KILL_RETRY_MS 300

enum ssl_mode { SSL_UNSET, SSL_DISABLED, SSL_PREFERRED, SSL_REQUIRED, SSL_VERIFY_CA, SSL_VERIFY_IDENTITY };

/* Everything needed to open a connection to the same server again (the
 * KILL QUERY connection). Owned by the connection. */
struct my_target {
	char *host, *user, *password, *database, *socket_path;
	char *ssl_ca, *ssl_cert, *ssl_key;
	char *program_name;
	char *display;          /* redacted URL for messages */
	int port;
	enum ssl_mode ssl_mode;
};

struct my_conn {
	struct sg_conn base;
	MYSQL *mysql;
	struct sg_io *io;
	struct my_target target;
	unsigned long thread_id;
	/* state of the operation in progress */
	uint64_t deadline_ms;   /* 0 = none; past it the wait fails (connect) */
	bool timed_out;         /* deadline_ms passed */
	bool abandoned;         /* the loop's cleanup window closed */
	/* the connection was abandoned mid-statement; every later call fails */
	bool broken;
	unsigned long max_packet;   /* the server's max_allowed_packet; 0 until asked */
	bool cancel_sent;       /* drv_cancel ran: an interrupted statement is schemagate's stop */
	long *affected;         /* exec_batch: each statement's affected rows, from affected[0] */
};

/* ---- errors ------------------------------------------------------------ */

static int set_error(struct sg_error *err, enum sg_err_kind kind, unsigned errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int set_error(struct sg_error *err, enum sg_err_kind kind, unsigned errnum, const char *fmt, ...)
{
	char num[16] = "";
	if (errnum)
		snprintf(num, sizeof(num), "%u", errnum % 10000000u); /* fits sqlstate: 7 digits */
	va_list ap;
	va_start(ap, fmt);
	sg_vfail_db(err, kind, num, fmt, ap);
	va_end(ap);
	return -1;
}

static bool connection_lost(unsigned errnum)
{
	return errnum == CR_SERVER_GONE_ERROR || errnum == CR_SERVER_LOST ||
	       errnum == CR_CONNECTION_ERROR || errnum == CR_CONN_HOST_ERROR ||
	       errnum == CR_SERVER_LOST_EXTENDED || errnum == ER_CONNECTION_KILLED;
}

/* What the lock check of a multi-statement round trip (drv_verify_lock_sql)
 * signals when this session does not hold the lock: the errno of SIGNAL
 * SQLSTATE '45000' (ER_SIGNAL_EXCEPTION) and a text of our own. */
#define LOCK_NOT_HELD_ERRNO 1644
#define LOCK_NOT_HELD_TEXT "schemagate: the migration lock is not held by this session"

/* The statement (or the session) failed: report the server's error. */
static int statement_error(struct my_conn *c, struct sg_error *err)
{
	unsigned errnum = c->mysql ? mysql_errno(c->mysql) : 0;
	const char *text = c->mysql ? mysql_error(c->mysql) : "connection closed";

	if (errnum == LOCK_NOT_HELD_ERRNO && strcmp(text, LOCK_NOT_HELD_TEXT) == 0)
		return set_error(err, SG_ERRK_LOCK_LOST, 0,
				 "GET_LOCK is not held by the connection running this migration; a "
				 "connection-multiplexing proxy (ProxySQL) breaks session locks: use --lock=table");
	if (errnum == ER_QUERY_INTERRUPTED) {
		/* ours (the loop stopped), or a DBA's KILL QUERY: say which */
		char num[16];
		snprintf(num, sizeof(num), "%u", errnum);
		return sg_fail_canceled(err, c->cancel_sent, num, "statement canceled with KILL QUERY %lu: mysql %u: %s",
					c->thread_id, errnum, text);
	}
	if (c->broken || connection_lost(errnum))
		return set_error(err, SG_ERRK_CONNECTION, errnum,
				 "lost the connection to %s: mysql %u: %s", c->target.display, errnum, text);
	/* ER_OPTION_PREVENTS_STATEMENT (--read-only), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
	 * ER_READ_ONLY_MODE: a replica, or a primary demoted under us */
	if (errnum == 1290 || errnum == 1792 || errnum == 1836)
		return set_error(err, SG_ERRK_READ_ONLY, errnum, "mysql %u: %s", errnum, text);
	/* ER_LOCK_DEADLOCK: InnoDB or (Galera) certification rolled the
	 * transaction back to let another one through: a lost race, to retry
	 * like a lock wait that timed out (the lease treats both so) */
	if (errnum == 1213)
		return set_error(err, SG_ERRK_LOCK_TIMEOUT, errnum, "mysql %u: %s", errnum, text);
	return set_error(err, SG_ERRK_STATEMENT, errnum, "mysql %u: %s", errnum, text);
}

/* SPEC 5.2: which connect failures are worth retrying. */
static bool connect_error_transient(unsigned errnum)
{
	switch (errnum) {
	case CR_CONNECTION_ERROR:      /* 2002: no socket (server not up yet) */
	case CR_CONN_HOST_ERROR:       /* 2003: refused */
	case CR_UNKNOWN_HOST:          /* 2005: DNS */
	case CR_SERVER_GONE_ERROR:     /* 2006 */
	case CR_SERVER_LOST:           /* 2013: lost during the handshake */
	case CR_SERVER_LOST_EXTENDED:
	case ER_CON_COUNT_ERROR:       /* 1040: too many connections */
	case ER_TOO_MANY_USER_CONNECTIONS:
	case ER_SERVER_SHUTDOWN:       /* 1053: restarting */
		return true;
	default:
		return false;
	}
}

/* ---- connection targets ------------------------------------------------ */

static void target_free(struct my_target *t)
{
	if (t->password)
		explicit_bzero(t->password, strlen(t->password));
	free(t->host);
	free(t->user);
	free(t->password);
	free(t->database);
	free(t->socket_path);
	free(t->ssl_ca);
	free(t->ssl_cert);
	free(t->ssl_key);
	free(t->program_name);
	free(t->display);
	memset(t, 0, sizeof(*t));
}

static int parse_ssl_mode(const char *s, enum ssl_mode *out)
{
	static const struct { const char *name; enum ssl_mode mode; } modes[] = {
		{ "DISABLED", SSL_DISABLED }, { "PREFERRED", SSL_PREFERRED },
		{ "REQUIRED", SSL_REQUIRED }, { "VERIFY_CA", SSL_VERIFY_CA },
		{ "VERIFY_IDENTITY", SSL_VERIFY_IDENTITY },
	};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcasecmp(s, modes[i].name) == 0) {
			*out = modes[i].mode;
			return 0;
		}
	}
	return -1;
}

/* URL parameters we understand; anything else is a typo we refuse rather
 * than silently connecting without the TLS the user asked for. */
static int target_from_opts(const struct sg_conn_opts *opts, struct my_target *t, struct sg_error *err)
{
	const struct sg_url *url = opts->url;

	memset(t, 0, sizeof(*t));
	t->host = sg_strdup(url->host);
	t->port = url->port;
	t->user = sg_strdup(url->user);
	t->password = sg_strdup(opts->password ? opts->password : url->password);
	t->database = sg_strdup(url->database && *url->database ? url->database : NULL);
	t->program_name = sg_strdup(opts->application_name);
	if (url->redacted)
		t->display = sg_strdup(url->redacted);
	else
		t->display = sg_asprintf("mysql://%s@%s:%d/%s", url->user ? url->user : "",
					 url->host ? url->host : "localhost", url->port ? url->port : 3306,
					 url->database ? url->database : "");

	for (size_t i = 0; i < url->nparams; i++) {
		const char *k = url->params[i].key, *v = url->params[i].value;
		if (strcmp(k, "socket") == 0) {
			free(t->socket_path);
			t->socket_path = sg_strdup(v);
		} else if (strcmp(k, "ssl-mode") == 0 || strcmp(k, "ssl_mode") == 0 || strcmp(k, "sslmode") == 0) {
			if (parse_ssl_mode(v, &t->ssl_mode) < 0)
				goto bad_value;
		} else if (strcmp(k, "ssl-ca") == 0 || strcmp(k, "ssl_ca") == 0) {
			free(t->ssl_ca);
			t->ssl_ca = sg_strdup(v);
		} else if (strcmp(k, "ssl-cert") == 0 || strcmp(k, "ssl_cert") == 0) {
			free(t->ssl_cert);
			t->ssl_cert = sg_strdup(v);
		} else if (strcmp(k, "ssl-key") == 0 || strcmp(k, "ssl_key") == 0) {
			free(t->ssl_key);
			t->ssl_key = sg_strdup(v);
		} else {
			set_error(err, SG_ERRK_USAGE, 0,
				  "%s: unknown parameter \"%s\" (known: socket, ssl-mode, ssl-ca, ssl-cert, ssl-key)",
				  t->display, k);
			target_free(t);
			return -1;
		}
		continue;
bad_value:
		set_error(err, SG_ERRK_USAGE, 0,
			  "%s: ssl-mode must be DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY, not \"%s\"",
			  t->display, v);
		target_free(t);
		return -1;
	}
	/* Like the mysql client: a CA without a mode means "verify against it". */
	if (t->ssl_mode == SSL_UNSET && t->ssl_ca)
		t->ssl_mode = SSL_VERIFY_CA;
	return 0;
}

static int drv_check_url(const struct sg_url *url, struct sg_error *err)
{
	struct sg_conn_opts opts = { .url = url };
	struct my_target t;
	if (target_from_opts(&opts, &t, err) < 0)
		return -1;
	target_free(&t);
	return 0;
}

static void apply_tls(MYSQL *m, const struct my_target *t)
{
	my_bool yes = 1, no = 0;

	if (t->ssl_mode == SSL_UNSET || t->ssl_mode == SSL_DISABLED)
		return;
	/* mysql_ssl_set() turns TLS on; ENFORCE decides whether a server
	 * without TLS is an error (REQUIRED and stricter) or a fallback. */
	mysql_ssl_set(m, t->ssl_key, t->ssl_cert, t->ssl_ca, NULL, NULL);
	mysql_options(m, MYSQL_OPT_SSL_ENFORCE, t->ssl_mode >= SSL_REQUIRED ? &yes : &no);
	/* Connector/C verifies the chain and the host name together; it has
	 * no chain-only mode, so VERIFY_CA is as strict as VERIFY_IDENTITY. */
	mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, t->ssl_mode >= SSL_VERIFY_CA ? &yes : &no);
}

/* A configured handle for target; nonblocking for the session, blocking
 * with short timeouts for the KILL QUERY connection. */
static MYSQL *new_handle(const struct my_target *t, unsigned timeout_s, bool nonblocking)
{
	static bool library_ready;
	if (!library_ready) {
		/* Single-threaded process: one init, undone at exit so leak
		 * checkers see a clean heap. */
		mysql_library_init(0, NULL, NULL);
		atexit(mysql_library_end);
		library_ready = true;
	}

	MYSQL *m = mysql_init(NULL);
	if (!m)
		return NULL;
	if (nonblocking)
		mysql_options(m, MYSQL_OPT_NONBLOCK, 0);
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
	if (!nonblocking) {
		mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout_s);
		mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout_s);
	}
	if (t->socket_path) {
		unsigned proto = MYSQL_PROTOCOL_SOCKET;
		mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
	} else if (t->host) {
		unsigned proto = MYSQL_PROTOCOL_TCP;
		mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
	}
	if (t->program_name)
		mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", t->program_name);
	apply_tls(m, t);
	return m;
}

/* ---- waiting on the socket --------------------------------------------- */

static int to_io_events(int status)
{
	int ev = 0;
	if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
		ev |= SG_IO_READ;
	if (status & MYSQL_WAIT_WRITE)
		ev |= SG_IO_WRITE;
	return ev;
}

static int from_io_events(int ev)
{
	int st = 0;
	if (ev & SG_IO_READ)
		st |= MYSQL_WAIT_READ;
	if (ev & SG_IO_WRITE)
		st |= MYSQL_WAIT_WRITE;
	return st;
}

struct kill_request {
	struct my_target target;
	unsigned long thread_id;
};

static void *kill_thread(void *arg)
{
	struct kill_request *k = arg;
	mysql_thread_init();
	for (int attempt = 0; attempt < KILL_ATTEMPTS; attempt++) {
		MYSQL *m = new_handle(&k->target, 1, false);
		if (!m)
			break;
		bool sent = false;
		if (mysql_real_connect(m, k->target.host, k->target.user, k->target.password, NULL,
				       (unsigned)k->target.port, k->target.socket_path, 0)) {
			char sql[64];
			snprintf(sql, sizeof(sql), "KILL QUERY %lu", k->thread_id);
			sent = mysql_real_query(m, sql, strlen(sql)) == 0;
		}
		mysql_close(m);
		if (!sent)
			break;
		struct timespec ts = {0, KILL_RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	target_free(&k->target);
	free(k);
	mysql_thread_end();
	return NULL;
}

static char *dup_or_null(const char *s) { return s ? sg_strdup(s) : NULL; }

/* The loop stops: KILL QUERY this session's statement from a detached
 * thread (a blocking connect of its own), repeated a few times in case
 * the first kill lands before the statement starts. The statement then
 * fails with ER_QUERY_INTERRUPTED through the normal path. */
static void drv_cancel(struct sg_conn *base)
{
	struct my_conn *c = (struct my_conn *)base;
	if (!c->mysql || c->broken || !c->thread_id)
		return;
	c->cancel_sent = true;
	struct kill_request *k = sg_calloc(1, sizeof(*k));
	const struct my_target *t = &c->target;
	k->target = (struct my_target){
		.host = dup_or_null(t->host), .user = dup_or_null(t->user), .password = dup_or_null(t->password),
		.socket_path = dup_or_null(t->socket_path), .ssl_ca = dup_or_null(t->ssl_ca),
		.ssl_cert = dup_or_null(t->ssl_cert), .ssl_key = dup_or_null(t->ssl_key),
		.port = t->port, .ssl_mode = t->ssl_mode,
	};
	k->thread_id = c->thread_id;
	if (sg_start_detached(kill_thread, k) != 0) {
		target_free(&k->target);
		free(k);
	}
}

/* Wait for what the library asked for (status: MYSQL_WAIT_*) and return
 * the ready status to pass to the _cont call, or -1 when the operation
 * must be abandoned (the loop's cleanup window closed, or the connect
 * deadline passed). */
static int wait_ready(struct my_conn *c, int status)
{
	int fd = (int)mysql_get_socket(c->mysql);
	int events = to_io_events(status);

	for (;;) {
		int64_t timeout = -1;
		bool lib_timeout = false;
		if (status & MYSQL_WAIT_TIMEOUT) {
			timeout = (int64_t)mysql_get_timeout_value_ms(c->mysql);
			lib_timeout = true;
		}
		if (c->deadline_ms) {
			uint64_t now = sg_now_ms();
			if (now >= c->deadline_ms) {
				c->timed_out = true;
				return -1;
			}
			int64_t left = (int64_t)(c->deadline_ms - now);
			if (timeout < 0 || left < timeout) {
				timeout = left;
				lib_timeout = false;
			}
		}
		int r = sg_io_wait(c->io, fd, events, timeout);
		if (r == SG_IO_CANCELED) {
			c->abandoned = true;
			return -1;
		}
		if (r > 0)
			return from_io_events(r);
		if (lib_timeout)
			return MYSQL_WAIT_TIMEOUT;
		/* our own deadline: the loop re-checks it */
	}
}

/* Run one non-blocking call: start it, then wait and continue until done.
 * `st` ends 0 on completion, -1 when abandoned (see wait_ready). */
#define MY_RUN(c, st, start_call, cont_call)             \
	do {                                             \
		(st) = (start_call);                     \
		while ((st) > 0) {                       \
			(st) = wait_ready((c), (st));    \
			if ((st) < 0)                    \
				break;                   \
			(st) = (cont_call);              \
		}                                        \
	} while (0)

/* The session cannot be resumed: drop it. Later calls fail cleanly. */
static void abandon(struct my_conn *c)
{
	if (c->mysql) {
		/* Connector/C allows closing in the middle of a
		 * non-blocking operation; the server ends the session (and
		 * releases its GET_LOCK) when the socket closes. */
		mysql_close(c->mysql);
		c->mysql = NULL;
	}
	c->broken = true;
}

/* Start of every operation on an open session. */
static int begin_op(struct my_conn *c, struct sg_error *err)
{
	c->timed_out = false;
	c->abandoned = false;
	c->deadline_ms = 0;
	if (c->broken || !c->mysql)
		return set_error(err, SG_ERRK_CONNECTION, 0,
				 "the connection to %s was abandoned after a statement did not stop",
				 c->target.display);
	return 0;
}

static int abandoned_error(struct my_conn *c, struct sg_error *err)
{
	abandon(c);
	/* only the loop's cleanup window abandons */
	return sg_fail_canceled(err, true, NULL,
				"statement canceled; it did not stop in time after KILL QUERY, connection closed");
}

/* ---- connect / close --------------------------------------------------- */

static void drv_close(struct sg_conn *base)
{
	struct my_conn *c = (struct my_conn *)base;
	if (!c)
		return;
	if (c->mysql)
		mysql_close(c->mysql);
	target_free(&c->target);
	free(c);
}

static int drv_exec(struct sg_conn *base, const char *sql, struct sg_error *err);

/*
 * Connector/C resolves host names inside mysql_real_connect_start(),
 * synchronously: a hanging resolver would hold the process past its
 * connect timeout. Resolve on the loop and connect to the address, unless
 * TLS must verify the server's name (then the library needs the name).
 */
static int resolve_host(struct my_conn *c, uint64_t budget_ms, struct sg_error *err)
{
	const char *host = c->target.host;
	unsigned char buf[sizeof(struct in6_addr)];
	if (!c->io || !host || !*host || c->target.socket_path || c->target.ssl_mode >= SSL_VERIFY_CA ||
	    strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return 0;
	char addr[128];
	int rc = sg_io_resolve(c->io, host, addr, sizeof(addr), (int64_t)budget_ms);
	if (rc == SG_IO_CANCELED)
		return sg_fail_canceled(err, true, NULL, "resolving %s: canceled", host);
	if (rc != 0)
		return set_error(err, SG_ERRK_TRANSIENT, 0, "connecting to %s: could not resolve host "
				 "\"%s\": %s", c->target.display, host, addr);
	free(c->target.host);
	c->target.host = sg_strdup(addr);
	return 0;
}

/* One connection attempt; beside: to the server that connection
 * reached (its target, the host already resolved). */
static int connect_to(const struct sg_conn_opts *opts, const struct my_conn *beside, struct sg_conn **out,
		      struct sg_error *err)
{
	*out = NULL;
	struct my_conn *c = sg_calloc(1, sizeof(*c));
	c->base.driver = &sg_driver_mysql;
	c->io = opts->io;
	if (beside) {
		const struct my_target *t = &beside->target;
		c->target = (struct my_target){
			.host = dup_or_null(t->host), .user = dup_or_null(t->user), .password = dup_or_null(t->password),
			.database = dup_or_null(t->database), .socket_path = dup_or_null(t->socket_path),
			.ssl_ca = dup_or_null(t->ssl_ca), .ssl_cert = dup_or_null(t->ssl_cert),
			.ssl_key = dup_or_null(t->ssl_key), .program_name = dup_or_null(opts->application_name),
			.display = dup_or_null(t->display), .port = t->port, .ssl_mode = t->ssl_mode,
		};
	} else if (target_from_opts(opts, &c->target, err) < 0) {
		free(c);
		return -1;
	}

	uint64_t attempt_ms = opts->attempt_timeout_ms ? opts->attempt_timeout_ms : 10000;
	if (!beside && resolve_host(c, attempt_ms, err) < 0) {
		drv_close(&c->base);
		return -1;
	}
	c->mysql = new_handle(&c->target, (unsigned)((attempt_ms + 999) / 1000), true);
	if (!c->mysql) {
		drv_close(&c->base);
		return set_error(err, SG_ERRK_TRANSIENT, 0, "mysql_init: out of memory");
	}

	MYSQL *ret = NULL;
	int st;
	c->deadline_ms = sg_now_ms() + attempt_ms;
	MY_RUN(c, st,
	       mysql_real_connect_start(&ret, c->mysql, c->target.host, c->target.user, c->target.password,
					c->target.database, (unsigned)c->target.port, c->target.socket_path,
					/* FOUND_ROWS: affected rows count the rows an
					 * UPDATE matched, as the history checks expect */
					CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_FOUND_ROWS),
	       mysql_real_connect_cont(&ret, c->mysql, st));
	c->deadline_ms = 0;

	if (st < 0 || !ret) {
		int rc;
		if (c->abandoned)
			rc = sg_fail_canceled(err, true, NULL, "connecting to %s: canceled",
				       c->target.display);
		else if (c->timed_out)
			rc = set_error(err, SG_ERRK_TRANSIENT, 0,
				       "connecting to %s: no answer within %llu ms", c->target.display,
				       (unsigned long long)attempt_ms);
		else {
			unsigned errnum = mysql_errno(c->mysql);
			bool transient = connect_error_transient(errnum);
			rc = set_error(err, transient ? SG_ERRK_TRANSIENT : SG_ERRK_PERMANENT, errnum,
				       "connecting to %s: mysql %u: %s", c->target.display, errnum,
				       mysql_error(c->mysql));
		}
		drv_close(&c->base);
		return rc;
	}
	/* Connector/C 3.3 falls back to plain text when the server has no TLS
	 * unless the certificate is verified; REQUIRED must not. */
	if (c->target.ssl_mode >= SSL_REQUIRED && !mysql_get_ssl_cipher(c->mysql)) {
		int rc = set_error(err, SG_ERRK_PERMANENT, CR_SSL_CONNECTION_ERROR,
				   "connecting to %s: ssl-mode requires TLS but the server does not offer it",
				   c->target.display);
		drv_close(&c->base);
		return rc;
	}
	c->thread_id = mysql_thread_id(c->mysql);
	c->base.affected = -1;
	if (opts->lock_wait_ms > 0) {
		/* the lease connection: a renewal blocked on the lease row must
		 * fail in time for the holder to notice (InnoDB counts seconds) */
		char sql[96];
		snprintf(sql, sizeof(sql), "SET SESSION innodb_lock_wait_timeout = %llu",
			 (unsigned long long)((opts->lock_wait_ms + 999) / 1000));
		if (drv_exec(&c->base, sql, err) != 0) {
			drv_close(&c->base);
			return -1;
		}
	}
	*out = &c->base;
	return 0;
}

static int drv_connect(const struct sg_conn_opts *opts, struct sg_conn **out, struct sg_error *err)
{
	return connect_to(opts, NULL, out, err);
}

/* ---- statements -------------------------------------------------------- */

/* Read (and free) every result of the statement(s) just sent; rows go to
 * fn until it asks to stop. *ok counts the statements that succeeded
 * before the first error. Returns 0, or -1 with that error. */
static int collect_results(struct my_conn *c, sg_row_fn fn, void *ctx, size_t *ok, struct sg_error *err)
{
	bool stop = false;
	for (;; (*ok)++) {
		MYSQL_RES *res = NULL;
		int st;
		MY_RUN(c, st, mysql_store_result_start(&res, c->mysql), mysql_store_result_cont(&res, c->mysql, st));
		if (st < 0)
			return abandoned_error(c, err);
		if (res) {
			unsigned ncols = mysql_num_fields(res);
			MYSQL_ROW row;
			/* a stored result is in memory: fetching does no I/O */
			while (!stop && fn && (row = mysql_fetch_row(res)) != NULL)
				stop = fn(ctx, (int)ncols, (const char *const *)row) != 0;
			mysql_free_result(res);
		} else if (mysql_field_count(c->mysql) != 0 || mysql_errno(c->mysql)) {
			return statement_error(c, err);
		} else {
			c->base.affected = (long)mysql_affected_rows(c->mysql);
			if (c->affected)
				c->affected[*ok] = c->base.affected;
		}

		if (!mysql_more_results(c->mysql)) {
			(*ok)++;
			return 0;
		}
		int more = 0;
		MY_RUN(c, st, mysql_next_result_start(&more, c->mysql), mysql_next_result_cont(&more, c->mysql, st));
		if (st < 0)
			return abandoned_error(c, err);
		if (more > 0) {
			(*ok)++;
			return statement_error(c, err);
		}
		if (more < 0) {
			(*ok)++;
			return 0;
		}
	}
}

static int run_busy(struct my_conn *c, const char *sql, size_t len, sg_row_fn fn, void *ctx, size_t *ok,
		    struct sg_error *err)
{
	int ret = 0, st;
	MY_RUN(c, st, mysql_real_query_start(&ret, c->mysql, sql, (unsigned long)len),
	       mysql_real_query_cont(&ret, c->mysql, st));
	if (st < 0)
		return abandoned_error(c, err);
	if (ret != 0)
		return statement_error(c, err);
	/* A statement that completed although KILL QUERY was sent (it came
	 * too late) reports success: its effects are committed, and the
	 * caller must count it as done to say exactly how far it got. */
	return collect_results(c, fn, ctx, ok, err);
}

static int query_value(struct sg_conn *c, const char *sql, int nparams, const char *const *params, char **out,
		       struct sg_error *err);

/*
 * The server closes the connection on a packet larger than its
 * max_allowed_packet: sent anyway, a statement that can never fit would
 * look like a lost connection and be retried forever. Refused here,
 * before anything is sent. The limit is asked once per connection, by
 * the first statement of more than its smallest possible value (1 KiB).
 */
static int check_packet_size(struct my_conn *c, size_t len, struct sg_error *err)
{
	if (len < 1024)
		return 0;
	if (!c->max_packet) {
		char *v = NULL;
		if (query_value(&c->base, "SELECT @@max_allowed_packet", 0, NULL, &v, err) < 0)
			return -1;
		c->max_packet = v ? strtoul(v, NULL, 10) : 0;
		free(v);
		if (!c->max_packet)
			c->max_packet = ULONG_MAX;
	}
	if (len + 1 <= c->max_packet)
		return 0;
	return set_error(err, SG_ERRK_STATEMENT, 1153,
			 "%zu bytes of SQL in one request: more than the server's max_allowed_packet (%lu bytes); "
			 "nothing was sent (raise max_allowed_packet on the server, or make the script smaller)", len,
			 c->max_packet);
}

static int run_counted(struct my_conn *c, const char *sql, size_t len, sg_row_fn fn, void *ctx, size_t *ok,
		       struct sg_error *err)
{
	*ok = 0;
	if (check_packet_size(c, len, err) < 0 || begin_op(c, err) < 0)
		return -1;
	c->base.affected = -1;
	sg_io_busy(c->io, &c->base, true);
	int rc = run_busy(c, sql, len, fn, ctx, ok, err);
	sg_io_busy(c->io, &c->base, false);
	return rc;
}

static int run_sql(struct my_conn *c, const char *sql, size_t len, sg_row_fn fn, void *ctx, struct sg_error *err)
{
	size_t ok;
	return run_counted(c, sql, len, fn, ctx, &ok, err);
}

static int drv_exec(struct sg_conn *base, const char *sql, struct sg_error *err)
{
	struct my_conn *c = (struct my_conn *)base;
	if (sql[strspn(sql, " \t\r\n")] == '\0')
		return 0;
	if (run_sql(c, sql, strlen(sql), NULL, NULL, err) < 0) {
		/* A script of only comments is an empty migration, not an error. */
		if (err && err->kind == SG_ERRK_STATEMENT && strcmp(err->sqlstate, "1065") == 0) {
			sg_error_clear(err);
			return 0;
		}
		return -1;
	}
	return 0;
}

static bool ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '$' || (unsigned char)ch >= 0x80;
}

/* Length of the quoted section or comment starting at p (0 if none). */
static size_t skip_quoted(const char *p, bool backslash_escapes)
{
	const char *s = p;
	if (*p == '\'' || *p == '"' || *p == '`') {
		char q = *p++;
		while (*p) {
			if (*p == '\\' && q != '`' && backslash_escapes && p[1]) {
				p += 2;
			} else if (*p == q) {
				if (p[1] == q) { /* doubled quote */
					p += 2;
					continue;
				}
				return (size_t)(p + 1 - s);
			} else {
				p++;
			}
		}
		return (size_t)(p - s);
	}
	if (*p == '#' || (p[0] == '-' && p[1] == '-' && (p[2] == '\0' || (unsigned char)p[2] <= ' ')))
		return strcspn(p, "\n");
	if (p[0] == '/' && p[1] == '*') {
		const char *end = strstr(p + 2, "*/");
		return end ? (size_t)(end + 2 - s) : strlen(s);
	}
	return 0;
}

static int drv_quote_literal(struct sg_conn *base, const char *value, struct sg_buf *out)
{
	struct my_conn *c = (struct my_conn *)base;
	size_t len = strlen(value);
	char *esc = sg_malloc(len * 2 + 1);
	unsigned long elen = mysql_real_escape_string(c->mysql, esc, value, (unsigned long)len);
	sg_buf_puts(out, "'");
	sg_buf_append(out, esc, elen);
	sg_buf_puts(out, "'");
	free(esc);
	return 0;
}

/* The text protocol has no placeholders: replace each $n outside quotes
 * and comments by the escaped literal of params[n-1] (NULL -> NULL). */
static int bind_params(struct my_conn *c, const char *sql, int nparams, const char *const *params,
		       struct sg_buf *out, struct sg_error *err)
{
	bool backslash = !(c->mysql->server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES);
	const char *p = sql;

	while (*p) {
		size_t skip = skip_quoted(p, backslash);
		if (skip) {
			sg_buf_append(out, p, skip);
			p += skip;
			continue;
		}
		if (*p == '$' && p[1] >= '0' && p[1] <= '9' && !(p > sql && ident_char(p[-1]))) {
			char *end;
			long n = strtol(p + 1, &end, 10);
			if (n < 1 || n > nparams)
				return set_error(err, SG_ERRK_STATEMENT, 0,
						 "query parameter $%ld out of range (%d given)", n, nparams);
			const char *v = params[n - 1];
			if (!v)
				sg_buf_puts(out, "NULL");
			else
				drv_quote_literal(&c->base, v, out);
			p = end;
			continue;
		}
		sg_buf_append(out, p, 1);
		p++;
	}
	if (!out->data)
		sg_buf_puts(out, "");
	return 0;
}

static int drv_query(struct sg_conn *base, const char *sql, int nparams, const char *const *params, sg_row_fn fn,
		    void *ctx, struct sg_error *err)
{
	struct my_conn *c = (struct my_conn *)base;
	if (begin_op(c, err) < 0)
		return -1;
	struct sg_buf text = {0};
	int rc = bind_params(c, sql, nparams, params, &text, err);
	if (rc == 0)
		rc = run_sql(c, text.data, text.len, fn, ctx, err);
	sg_buf_free(&text);
	return rc;
}

static int drv_begin(struct sg_conn *c, struct sg_error *err) { return drv_exec(c, "START TRANSACTION", err); }
static int drv_commit(struct sg_conn *c, struct sg_error *err) { return drv_exec(c, "COMMIT", err); }
/* ROLLBACK outside a transaction is a no-op in MySQL, as the interface wants. */
static int drv_rollback(struct sg_conn *c, struct sg_error *err) { return drv_exec(c, "ROLLBACK", err); }

/* ---- statement by statement ------------------------------------------- */


/* Up to this much SQL per round trip (max_allowed_packet is 16 MiB by
 * default; 1 MiB keeps far from it and from long single writes). */
#define BATCH_MAX_BYTES (1u << 20)

/*
 * Statements joined into multi-statement round trips. The separator
 * starts on a new line, so a statement ending in a "-- comment" cannot
 * swallow it. *done counts the statements that succeeded.
 */
static int drv_exec_batch(struct sg_conn *base, const char *const *sql, size_t n, size_t *done, long *affected,
			  struct sg_error *err)
{
	struct my_conn *c = (struct my_conn *)base;
	*done = 0;
	for (size_t k = 0; affected && k < n; k++)
		affected[k] = -1;
	size_t i = 0;
	while (i < n) {
		struct sg_buf b = {0};
		size_t first = i;
		do {
			if (b.len)
				sg_buf_puts(&b, "\n;\n");
			sg_buf_puts(&b, sql[i++]);
			/* a statement that would take the batch past the cap starts
			 * the next one: a statement too large for the server then
			 * fails alone, and is the one named */
		} while (i < n && b.len + 3 + strlen(sql[i]) <= BATCH_MAX_BYTES);
		size_t ok = 0;
		c->affected = affected ? affected + first : NULL;
		int rc = run_counted(c, b.data, b.len, NULL, NULL, &ok, err);
		c->affected = NULL;
		sg_buf_free(&b);
		*done = first + (ok < i - first ? ok : i - first);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/*
 * Which statements may share a transaction with their progress record:
 * those MySQL does not end a transaction for (its list of statements that
 * cause an implicit commit is long; what is not plainly data manipulation
 * is treated as committing). CREATE/DROP TEMPORARY TABLE do not commit.
 */
static enum sg_stmt_kind drv_classify(const char *sql)
{
	static const char *const dml[] = { "INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "DO", "WITH",
					   "VALUES", "TABLE", NULL };
	static const char *const tx_control[] = { "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", NULL };
	char w[3][SG_SQL_WORD_MAX];
	size_t n = sg_sql_words(sql, w, 3);
	if (n == 0)
		return SG_STMT_TRANSACTIONAL;
	if (sg_sql_word_in(w[0], dml))
		return SG_STMT_TRANSACTIONAL;
	if (!strcmp(w[0], "BEGIN"))   /* BEGIN NOT ATOMIC is a compound statement */
		return n > 1 && !strcmp(w[1], "NOT") ? SG_STMT_STANDALONE : SG_STMT_TX_CONTROL;
	if (sg_sql_word_in(w[0], tx_control))
		return SG_STMT_TX_CONTROL;
	if (!strcmp(w[0], "SET")) {
		static const char *const commits[] = { "PASSWORD", "AUTOCOMMIT", "TRANSACTION", "ROLE", "DEFAULT", NULL };
		return n > 1 && sg_sql_word_in(w[1], commits) ? SG_STMT_STANDALONE : SG_STMT_TRANSACTIONAL;
	}
	if ((!strcmp(w[0], "CREATE") || !strcmp(w[0], "DROP")) && n > 1 && !strcmp(w[1], "TEMPORARY"))
		return SG_STMT_TRANSACTIONAL;
	return SG_STMT_STANDALONE;
}

/*
 * Re-running a statement that was in doubt: these errors prove it had
 * taken effect. Each says the object the statement creates is there, or
 * the one it drops is gone.
 */
static bool drv_already_done(const char *sql, const struct sg_error *err)
{
	static const char *const proof[] = {
		"1007", /* ER_DB_CREATE_EXISTS */
		"1008", /* ER_DB_DROP_EXISTS: database does not exist */
		"1022", /* ER_DUP_KEY: duplicate key (a constraint added twice) */
		"1050", /* ER_TABLE_EXISTS_ERROR */
		"1051", /* ER_BAD_TABLE_ERROR: unknown table (DROP TABLE) */
		"1060", /* ER_DUP_FIELDNAME: duplicate column */
		"1061", /* ER_DUP_KEYNAME: duplicate key name */
		"1068", /* ER_MULTIPLE_PRI_KEY */
		"1091", /* ER_CANT_DROP_FIELD_OR_KEY: check that it exists */
		"1304", /* ER_SP_ALREADY_EXISTS: procedure/function */
		"1305", /* ER_SP_DOES_NOT_EXIST (DROP PROCEDURE) */
		"1359", /* ER_TRG_ALREADY_EXISTS */
		"1360", /* ER_TRG_DOES_NOT_EXIST */
		"1537", /* ER_EVENT_ALREADY_EXISTS */
		"1539", /* ER_EVENT_DOES_NOT_EXIST */
		"1826", /* ER_FK_DUP_NAME: duplicate foreign key constraint name */
		NULL,
	};
	return err->kind == SG_ERRK_STATEMENT && sg_sql_word_in(err->sqlstate, proof);
}

/* ---- single values ----------------------------------------------------- */

struct first_value {
	bool have_row;
	char *value;    /* NULL for SQL NULL */
};

static int keep_first_value(void *ctx, int ncols, const char *const *values)
{
	struct first_value *fv = ctx;
	if (!fv->have_row) {
		fv->have_row = true;
		fv->value = ncols > 0 ? sg_strdup(values[0]) : NULL;
	}
	return 1;
}

/* Run a one-value query; *out is malloc'd (NULL for SQL NULL or no row). */
static int query_value(struct sg_conn *c, const char *sql, int nparams, const char *const *params, char **out,
		       struct sg_error *err)
{
	struct first_value fv = {0};
	if (drv_query(c, sql, nparams, params, keep_first_value, &fv, err) < 0) {
		free(fv.value);
		return -1;
	}
	*out = fv.value;
	return 0;
}

/* ---- what the server is ------------------------------------------------ */

static int take_variable(void *ctx, int ncols, const char *const *v)
{
	struct sg_server_info *info = ctx;
	if (ncols < 2 || !v[0] || !v[1])
		return 0;
	bool on = strcasecmp(v[1], "ON") == 0 || strcmp(v[1], "1") == 0;
	if ((strcasecmp(v[0], "read_only") == 0 || strcasecmp(v[0], "super_read_only") == 0) && on &&
	    !info->read_only) {
		info->read_only = true;
		snprintf(info->read_only_why, sizeof(info->read_only_why), "%s=ON", v[0]);
	} else if (strcasecmp(v[0], "wsrep_on") == 0 && on && info->cluster_size == 0) {
		info->cluster_size = 1;   /* until wsrep_cluster_size says more */
	} else if (strcasecmp(v[0], "wsrep_node_name") == 0) {
		snprintf(info->node, sizeof(info->node), "%s", v[1]);
	} else if (strcasecmp(v[0], "wsrep_OSU_method") == 0 && strcasecmp(v[1], "TOI") != 0) {
		snprintf(info->osu_method, sizeof(info->osu_method), "%s", v[1]);
	} else if (strcasecmp(v[0], "wsrep_cluster_size") == 0 && info->cluster_size > 0) {
		info->cluster_size = atoi(v[1]) > 0 ? atoi(v[1]) : 1;
	}
	return 0;
}

/* read_only stops only users without SUPER (READ_ONLY ADMIN): a writer
 * treats it as "not the primary" whatever its own rights, since writing
 * to a replica is the mistake read_only is there to flag. */
static int drv_server_info(struct sg_conn *base, struct sg_server_info *info, struct sg_error *err)
{
	struct my_conn *c = (struct my_conn *)base;
	memset(info, 0, sizeof(*info));
	if (c->target.socket_path)
		snprintf(info->where, sizeof(info->where), "%s", c->target.socket_path);
	else
		snprintf(info->where, sizeof(info->where), "%s:%d", c->target.host ? c->target.host : "localhost",
			 c->target.port ? c->target.port : 3306);
	if (drv_query(base,
		      "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
		      "('read_only', 'super_read_only', 'wsrep_on', 'wsrep_node_name', 'wsrep_OSU_method')",
		      0, NULL, take_variable, info, err) < 0)
		return -1;
	if (info->cluster_size == 0) {
		info->osu_method[0] = '\0';   /* not a cluster: the setting means nothing */
		return 0;
	}
	/* a Galera node: reads wait until this node has applied what the
	 * cluster committed before them (a waiter on node 3 sees what the
	 * winner committed on node 1); DDL runs in total order on every node
	 * even where a DBA left the node in RSU for a rolling upgrade, since
	 * a migration recorded cluster-wide must exist cluster-wide */
	if (drv_exec(base, "SET SESSION wsrep_sync_wait = 1, wsrep_OSU_method = 'TOI'", err) < 0)
		return -1;
	return drv_query(base, "SHOW GLOBAL STATUS WHERE Variable_name = 'wsrep_cluster_size'", 0, NULL,
			 take_variable, info, err);
}

/* ---- the lock ---------------------------------------------------------- */

/* "schemagate:<db>.<table>", or when that exceeds 64 characters a prefix
 * of it plus a hash of the whole, so distinct tables stay distinct. */
static void lock_name(const struct my_conn *c, const char *key, char out[LOCK_NAME_MAX + 1])
{
	char full[1024];
	if (strchr(key, '.'))
		snprintf(full, sizeof(full), "schemagate:%s", key);
	else
		snprintf(full, sizeof(full), "schemagate:%s.%s", c->target.database ? c->target.database : "", key);
	if (strlen(full) <= LOCK_NAME_MAX) {
		memcpy(out, full, strlen(full) + 1);
		return;
	}
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)full; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	snprintf(out, LOCK_NAME_MAX + 1, "%.*s~%016llx", LOCK_NAME_MAX - 17, full, (unsigned long long)h);
}

/* Waiters wait inside the server: GET_LOCK returns the moment the holder
 * lets go, so they wake at once instead of at the next poll. */
static int drv_try_lock(struct sg_conn *base, const char *key, uint64_t wait_ms, bool *acquired, struct sg_error *err)
{
	char name[LOCK_NAME_MAX + 1], secs[24], *v = NULL;
	snprintf(secs, sizeof(secs), "%llu", (unsigned long long)((wait_ms + 999) / 1000));
	const char *params[] = { name, secs };
	lock_name((struct my_conn *)base, key, name);
	if (query_value(base, "SELECT GET_LOCK($1, $2)", 2, params, &v, err) < 0)
		return -1;
	/* NULL means the server could not even try (killed, out of memory). */
	if (!v) {
		*acquired = false;
		return set_error(err, SG_ERRK_PERMANENT, 0, "GET_LOCK('%s') returned NULL", name);
	}
	*acquired = strcmp(v, "1") == 0;
	free(v);
	return 0;
}

static int drv_unlock(struct sg_conn *base, const char *key, struct sg_error *err)
{
	char name[LOCK_NAME_MAX + 1], *v = NULL;
	const char *params[] = { name };
	lock_name((struct my_conn *)base, key, name);
	if (query_value(base, "SELECT RELEASE_LOCK($1)", 1, params, &v, err) < 0)
		return -1;
	bool released = v && strcmp(v, "1") == 0;
	bool someone_else = v && strcmp(v, "0") == 0;
	free(v);
	if (released)
		return 0;
	/* The lock belongs to the session; losing it means the session was
	 * swapped under us (a multiplexing proxy) or the server restarted. */
	return set_error(err, SG_ERRK_PERMANENT, 0,
			 "RELEASE_LOCK('%s'): lock was not held by this connection (%s); "
			 "a connection-multiplexing proxy (ProxySQL) breaks session locks: use --lock=table",
			 name, someone_else ? "another session holds it" : "nobody holds it");
}

/* Is the lock held by the session running this statement? A proxy that
 * multiplexes sessions (ProxySQL) could have moved us elsewhere. */
static int drv_verify_lock(struct sg_conn *base, const char *key, struct sg_error *err)
{
	char name[LOCK_NAME_MAX + 1], *v = NULL;
	const char *params[] = { name };
	lock_name((struct my_conn *)base, key, name);
	if (query_value(base, "SELECT IS_USED_LOCK($1) = CONNECTION_ID()", 1, params, &v, err) < 0)
		return -1;
	bool held = v && strcmp(v, "1") == 0;
	free(v);
	if (!held)
		return set_error(err, SG_ERRK_LOCK_LOST, 0,
				 "GET_LOCK('%s') is not held by the connection running this migration; a "
				 "connection-multiplexing proxy (ProxySQL) breaks session locks: use --lock=table", name);
	return 0;
}

/* drv_verify_lock as the first statement of a multi-statement round trip:
 * an error (LOCK_NOT_HELD_*) stops the rest of it. Also notes when the
 * round trip began (@schemagate_t0, for batch_elapsed_ms_sql). MariaDB
 * runs compound statements outside stored programs; MySQL does not: 1,
 * the caller checks the lock on its own. */
static int drv_verify_lock_sql(struct sg_conn *base, const char *key, struct sg_buf *out, struct sg_error *err)
{
	struct my_conn *c = (struct my_conn *)base;
	if (!mariadb_connection(c->mysql))
		return 1;
	char name[LOCK_NAME_MAX + 1];
	lock_name(c, key, name);
	sg_buf_puts(out, "BEGIN NOT ATOMIC SET @schemagate_t0 = UTC_TIMESTAMP(6); IF NOT (IS_USED_LOCK(");
	if (drv_quote_literal(base, name, out) != 0)
		return set_error(err, SG_ERRK_PERMANENT, 0, "the lock name %s cannot be quoted", name);
	sg_buf_puts(out, ") <=> CONNECTION_ID()) THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '" LOCK_NOT_HELD_TEXT
			 "'; END IF; END");
	return 0;
}

struct holder_row {
	bool found;
	char id[32];
	char text[256];
};

static int describe_holder(void *ctx, int ncols, const char *const *v)
{
	struct holder_row *h = ctx;
	if (ncols < 4 || !v[0])
		return 1;
	h->found = true;
	snprintf(h->id, sizeof(h->id), "%s", v[0]);
	snprintf(h->text, sizeof(h->text), "connection %s (%s@%s) for %ss", v[0], v[1] ? v[1] : "?",
		 v[2] ? v[2] : "?", v[3] ? v[3] : "?");
	return 1;
}

static int drv_lock_holder(struct sg_conn *base, const char *key, char *out, size_t outsz, struct sg_error *err)
{
	char name[LOCK_NAME_MAX + 1];
	const char *params[] = { name };
	struct holder_row h = {0};

	lock_name((struct my_conn *)base, key, name);
	if (outsz)
		out[0] = '\0';
	if (drv_query(base,
		     "SELECT p.ID, p.USER, p.HOST, p.TIME FROM information_schema.PROCESSLIST p"
		     " WHERE p.ID = IS_USED_LOCK($1)",
		     1, params, describe_holder, &h, err) < 0)
		return -1;
	if (!h.found)
		return 0;

	/* The holder's program_name (schemagate/<instance>) is visible only
	 * where performance_schema is on; best effort, errors ignored. */
	char *program = NULL;
	struct sg_error ignored = {0};
	const char *idp[] = { h.id };
	if (query_value(base,
			"SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs"
			" WHERE PROCESSLIST_ID = $1 AND ATTR_NAME = 'program_name'",
			1, idp, &program, &ignored) < 0)
		program = NULL;
	if (program && *program)
		snprintf(out, outsz, "%s, %s", program, h.text);
	else
		snprintf(out, outsz, "%s", h.text);
	free(program);
	return 0;
}

/* ---- catalog ----------------------------------------------------------- */

static bool drv_in_transaction(struct sg_conn *base)
{
	struct my_conn *c = (struct my_conn *)base;
	return c->mysql && !c->broken && (c->mysql->server_status & SERVER_STATUS_IN_TRANS);
}

/* "t" -> "db.t": MySQL puts an unqualified table in the current database. */
static int drv_qualify(struct sg_conn *base, const char *table, char **out, struct sg_error *err)
{
	*out = NULL;
	if (strchr(table, '.')) {
		*out = sg_strdup(table);
		return 0;
	}
	char *db = NULL;
	if (query_value(base, "SELECT DATABASE()", 0, NULL, &db, err) < 0)
		return -1;
	*out = sg_asprintf("%s.%s", db ? db : "", table);
	free(db);
	return 0;
}

static int drv_socket(struct sg_conn *base)
{
	struct my_conn *c = (struct my_conn *)base;
	return c->mysql ? (int)mysql_get_socket(c->mysql) : -1;
}

/* Is there a table in the history table's schema (its qualifier, else
 * the connection's database) matching `name_test` ($2 is the history
 * table's bare name)? */
static int any_table(struct sg_conn *base, const char *table, const char *name_test, bool *found,
		     struct sg_error *err)
{
	const char *dot = strchr(table, '.');
	char *schema = dot ? sg_strndup(table, (size_t)(dot - table)) : NULL;
	const char *params[] = { schema, dot ? dot + 1 : table };
	char *sql = sg_asprintf("SELECT COUNT(*) FROM information_schema.TABLES"
				" WHERE TABLE_SCHEMA = COALESCE($1, DATABASE()) AND %s", name_test);
	char *v = NULL;
	int rc = query_value(base, sql, 2, params, &v, err);
	free(sql);
	free(schema);
	if (rc == 0)
		*found = v && strcmp(v, "0") != 0;
	free(v);
	return rc;
}

static int drv_table_exists(struct sg_conn *base, const char *table, bool *exists, struct sg_error *err)
{
	return any_table(base, table, "TABLE_NAME = $2", exists, err);
}

/* Any table in the database besides schemagate's own? */
static int drv_has_user_tables(struct sg_conn *base, const char *table, bool *any, struct sg_error *err)
{
	return any_table(base, table, "TABLE_NAME NOT IN ($2, 'schemagate_events', 'schemagate_lock')", any, err);
}

/* The server's own word for what it is: MariaDB says so in its version
 * ("10.11.6-MariaDB-0+deb12u1"); MySQL does not. */
static enum sg_dialect drv_dialect(struct sg_conn *base)
{
	struct my_conn *c = (struct my_conn *)base;
	const char *v = c->mysql ? mysql_get_server_info(c->mysql) : NULL;
	return v && strcasestr(v, "mariadb") ? SG_DIALECT_MARIADB : SG_DIALECT_MYSQL;
}

/* ---- progress of a long statement ---------------------------------------
 * MariaDB reports an ALTER TABLE's (and LOAD DATA's) progress in
 * information_schema.PROCESSLIST: PROGRESS (percent of the whole),
 * STAGE of MAX_STAGE, and STATE ("copy to tmp table", "Waiting for table
 * metadata lock"). MySQL has none of those columns: its state and time
 * only. Who blocks a row lock wait: INNODB_LOCK_WAITS; a metadata lock
 * wait names no holder without performance_schema, so the probe names the
 * sessions whose open transaction began before the statement (they hold
 * the metadata locks of what they touched until they end). */

struct my_progress {
	struct sg_progress *p;
	struct sg_buf blockers;
};

static int take_processlist(void *ctx, int ncols, const char *const *v)
{
	struct sg_progress *p = ((struct my_progress *)ctx)->p;
	if (ncols < 7 || !v[0] || strcmp(v[0], "Query") != 0)
		return 1;
	p->found = true;
	p->seconds = v[1] ? strtod(v[1], NULL) / 1000.0 : -1;
	const char *state = v[2] ? v[2] : "";
	if (strncasecmp(state, "Waiting for ", 12) == 0)
		snprintf(p->wait, sizeof(p->wait), "%s", state + 12);
	else
		snprintf(p->phase, sizeof(p->phase), "%s", state);
	p->stage = v[3] ? atoi(v[3]) : -1;
	p->max_stage = v[4] ? atoi(v[4]) : -1;
	/* MariaDB says 0 until a stage reports anything */
	if (v[5] && (strtod(v[5], NULL) > 0 || p->stage > 0))
		p->percent = strtod(v[5], NULL);
	char words[2][SG_SQL_WORD_MAX];
	size_t n = v[6] ? sg_sql_words(v[6], words, 2) : 0;
	if (n == 2)
		snprintf(p->command, sizeof(p->command), "%s %s", words[0], words[1]);
	else if (n == 1)
		snprintf(p->command, sizeof(p->command), "%s", words[0]);
	return 1;
}

static int take_blocker(void *ctx, int ncols, const char *const *v)
{
	struct my_progress *mp = ctx;
	if (ncols < 6 || !v[0])
		return 0;
	if (mp->blockers.len)
		sg_buf_puts(&mp->blockers, ", ");
	sg_buf_printf(&mp->blockers, "connection %s (%s@%s, %s %ss, transaction open %ss)", v[0], v[1] ? v[1] : "?",
		      v[2] ? v[2] : "?", v[3] ? v[3] : "?", v[4] ? v[4] : "?", v[5] ? v[5] : "?");
	return 0;
}

static int drv_progress(struct sg_conn *work, const struct sg_conn_opts *opts, struct sg_progress *out,
			struct sg_error *err)
{
	struct my_conn *w = (struct my_conn *)work;
	if (!w->mysql || w->broken || !w->thread_id)
		return set_error(err, SG_ERRK_CONNECTION, 0, "the session to look at is gone");
	bool mariadb = drv_dialect(work) == SG_DIALECT_MARIADB;
	struct sg_conn *probe = NULL;
	if (connect_to(opts, w, &probe, err) != 0)
		return -1;
	struct my_progress mp = {.p = out};
	char sql[1024];
	/* nothing the probe reads takes a lock; if something ever did, it
	 * gives up at once rather than queue */
	int rc = drv_exec(probe, mariadb ? "SET SESSION max_statement_time = 2, lock_wait_timeout = 1, "
					   "innodb_lock_wait_timeout = 1"
					 : "SET SESSION max_execution_time = 2000, lock_wait_timeout = 1, "
					   "innodb_lock_wait_timeout = 1", err);
	if (rc == 0) {
		snprintf(sql, sizeof(sql), mariadb ? "SELECT COMMAND, TIME_MS, STATE, STAGE, MAX_STAGE, PROGRESS, INFO "
						   "FROM information_schema.PROCESSLIST WHERE ID = %lu"
						 : "SELECT COMMAND, TIME * 1000, STATE, NULL, NULL, NULL, INFO "
						   "FROM information_schema.PROCESSLIST WHERE ID = %lu",
			 w->thread_id);
		rc = drv_query(probe, sql, 0, NULL, take_processlist, &mp, err);
	}
	if (rc == 0 && out->found && out->wait[0]) {
		bool metadata = strcasestr(out->wait, "metadata lock") != NULL;
		char where[400];
		if (metadata)
			snprintf(where, sizeof(where), "b.trx_mysql_thread_id <> %lu AND b.trx_started <= NOW() - "
				 "INTERVAL (SELECT TIME FROM information_schema.PROCESSLIST WHERE ID = %lu) SECOND",
				 w->thread_id, w->thread_id);
		else
			snprintf(where, sizeof(where), "b.trx_id IN (SELECT w.blocking_trx_id FROM "
				 "information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX r ON "
				 "r.trx_id = w.requesting_trx_id WHERE r.trx_mysql_thread_id = %lu)", w->thread_id);
		snprintf(sql, sizeof(sql),
			 "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, "
			 "TIMESTAMPDIFF(SECOND, b.trx_started, NOW()) FROM information_schema.INNODB_TRX b "
			 "JOIN information_schema.PROCESSLIST p ON p.ID = b.trx_mysql_thread_id WHERE %s ORDER BY p.ID",
			 where);
		rc = drv_query(probe, sql, 0, NULL, take_blocker, &mp, err);
		if (rc == 0 && mp.blockers.len) {
			snprintf(out->blockers, sizeof(out->blockers), "%s", mp.blockers.data);
			out->blockers_guessed = metadata;
		}
	}
	sg_buf_free(&mp.blockers);
	drv_close(probe);
	return rc;
}

static void drv_quote_ident(const char *name, struct sg_buf *out)
{
	sg_quote_ident(name, '`', out);
}

/* utf8mb4_bin: versions and checksums compare byte for byte. */
#define HISTORY_DDL                                                      \
	"CREATE TABLE IF NOT EXISTS %s (\n"                              \
	"  version VARCHAR(255) NOT NULL PRIMARY KEY,\n"                 \
	"  name TEXT NOT NULL,\n"                                        \
	"  checksum VARCHAR(64) NOT NULL,\n"                             \
	"  status VARCHAR(16) NOT NULL,\n"                               \
	"  statements_done INTEGER NOT NULL DEFAULT 0,\n"                \
	"  applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" \
	"  applied_by TEXT,\n"                                           \
	"  duration_ms BIGINT,\n"                                        \
	"  down_sql LONGTEXT,\n"                                         \
	"  tool_version TEXT,\n"                                         \
	"  error TEXT\n"                                                 \
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

#define EVENTS_DDL                                                       \
	"CREATE TABLE IF NOT EXISTS %s (\n"                              \
	"  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"             \
	"  at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n"      \
	"  instance TEXT,\n"                                             \
	"  history_table TEXT,\n"                                        \
	"  event VARCHAR(32),\n"                                         \
	"  version VARCHAR(255),\n"                                      \
	"  outcome VARCHAR(32),\n"                                       \
	"  detail TEXT\n"                                                \
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

static bool drv_unknown_database(const struct sg_error *err)
{
	return strcmp(err->sqlstate, "1049") == 0;   /* ER_BAD_DB_ERROR */
}

static bool drv_auth_failed(const struct sg_error *err)
{
	return strcmp(err->sqlstate, "1045") == 0;   /* ER_ACCESS_DENIED_ERROR */
}

/* CREATE DATABASE IF NOT EXISTS settles the race between instances in
 * the server; it reports one affected row only when it created one. */
static int drv_create_database(const struct sg_conn_opts *opts, bool *created, struct sg_error *err)
{
	*created = false;
	const char *name = opts->url->database;
	if (!name || !*name)
		return set_error(err, SG_ERRK_PERMANENT, 0,
				 "--create-database: the URL names no database to create");
	struct sg_url url = *opts->url;
	url.database = NULL;
	struct sg_conn_opts o = *opts;
	o.url = &url;
	struct sg_conn *c = NULL;
	if (drv_connect(&o, &c, err) != 0)
		return sg_error_prefix(err, "--create-database: connecting without a database");
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "CREATE DATABASE IF NOT EXISTS ");
	drv_quote_ident(name, &sql);
	int rc = drv_exec(c, sql.data, err);
	sg_buf_free(&sql);
	if (rc == 0)
		*created = c->affected > 0;
	else
		sg_error_prefix(err, "--create-database: creating database %s", name);
	drv_close(c);
	return rc;
}

const struct sg_driver sg_driver_mysql = {
	.name = "mysql",
	.engine = SG_ENGINE_MYSQL,
	.caps = SG_CAP_POLLABLE | SG_CAP_LOCK_WAIT | SG_CAP_GROUP_STATEMENTS,
	.check_url = drv_check_url,
	.connect = drv_connect,
	.server_info = drv_server_info,
	.close = drv_close,
	.unknown_database = drv_unknown_database,
	.auth_failed = drv_auth_failed,
	.create_database = drv_create_database,
	.cancel = drv_cancel,
	.exec = drv_exec,
	.query = drv_query,
	.begin = drv_begin,
	.commit = drv_commit,
	.rollback = drv_rollback,
	.in_transaction = drv_in_transaction,
	.try_lock = drv_try_lock,
	.verify_lock = drv_verify_lock,
	.unlock = drv_unlock,
	.lock_holder = drv_lock_holder,
	.socket = drv_socket,
	.classify = drv_classify,
	.already_done = drv_already_done,
	.exec_batch = drv_exec_batch,
	.quote_literal = drv_quote_literal,
	.verify_lock_sql = drv_verify_lock_sql,
	.qualify = drv_qualify,
	.table_exists = drv_table_exists,
	.has_user_tables = drv_has_user_tables,
	.quote_ident = drv_quote_ident,
	.dialect = drv_dialect,
	.progress = drv_progress,
	.history_ddl = HISTORY_DDL,
	.events_ddl = EVENTS_DDL,
	.now_sql = "UTC_TIMESTAMP(3)",
	/* DATETIME has no zone: it holds UTC_TIMESTAMP(3); %f is microseconds */
	.applied_at_sql = "CONCAT(LEFT(DATE_FORMAT(applied_at, '%Y-%m-%dT%H:%i:%S.%f'), 23), 'Z')",
	/* Epoch ms from UTC_TIMESTAMP arithmetic: UNIX_TIMESTAMP(NOW(3))
	 * converts through the session time zone, and in the hour a DST zone
	 * repeats it reads an hour behind, then jumps (the lease compares
	 * expiry times with this clock). */
	.now_ms_sql = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(3)) DIV 1000",
	/* since the round trip's lock check (drv_verify_lock_sql) */
	.batch_elapsed_ms_sql = "(TIMESTAMPDIFF(MICROSECOND, @schemagate_t0, UTC_TIMESTAMP(6)) DIV 1000)",
};
