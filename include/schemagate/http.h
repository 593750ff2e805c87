/*
 * http.h - the small HTTP/1.1 server behind `schemagate serve`
 * (/livez, /readyz, /metrics), on the caller's libuv loop.
 *
 * Scope, on purpose: GET and HEAD, exact-path routes, one request per
 * connection ("Connection: close"), every response produced at once by a
 * handler from memory. What a hostile or broken client can do is bounded:
 *
 *   request head       at most SG_HTTP_MAX_HEAD bytes, else 431
 *   idle timeout       no byte from the client for this long: dropped
 *   read timeout       the whole head must arrive within this (slowloris)
 *   write timeout      the client must take the response within this
 *   connection cap     at the cap, a new connection evicts the oldest one
 *                      that is still waiting for its request (or lingering
 *                      after its response), so a flood of idle sockets
 *                      cannot starve a kubelet probe; when every slot is
 *                      busy writing a response, the new one is closed at
 *                      once
 *
 * Single-threaded: every callback runs inside uv_run() on the caller's
 * loop, whichever way it is driven (UV_RUN_DEFAULT, the UV_RUN_ONCE calls
 * of a driver waiting for its socket, or the UV_RUN_NOWAIT of SQLite's
 * progress handler). Handlers must therefore not block and must not run
 * the loop themselves.
 *
 * Why no library: Debian 12's libhttp-parser is archived upstream,
 * llhttp and picohttpparser are not packaged, and libmicrohttpd and h2o
 * bring their own event loops and TLS stacks (no static archives). A
 * request line and a few header checks are all this server needs; the
 * parser below is a pure function so it can be fuzzed without sockets.
 */
#ifndef SCHEMAGATE_HTTP_H
#define SCHEMAGATE_HTTP_H

#include <sys/socket.h>
#include <uv.h>

#include "schemagate/common.h"

/* ---- the request parser: pure, no I/O, no allocation -------------------- */

/* Longest request head (request line, headers, blank line) accepted. */
#define SG_HTTP_MAX_HEAD 8192

enum sg_http_method {
	SG_HTTP_GET = 0,
	SG_HTTP_HEAD,
	SG_HTTP_OTHER,   /* a well-formed method this server does not serve: 405 */
};

enum sg_http_parse_status {
	SG_HTTP_INCOMPLETE = 0,   /* the head has not ended yet: read more */
	SG_HTTP_COMPLETE,         /* the head is valid; req is filled in */
	SG_HTTP_INVALID,          /* answer req->status and close */
};

/* Pointers point into the parsed buffer; nothing is copied. */
struct sg_http_request {
	enum sg_http_method method;
	const char *method_text;   /* "GET", "POST", ... */
	size_t method_len;
	const char *path;          /* the request target's path, without "?query"; */
	size_t path_len;           /* absolute-form targets are reduced to it */
	const char *query;         /* after '?', or NULL */
	size_t query_len;
	int minor_version;         /* HTTP/1.x */
	size_t head_len;           /* bytes of the head, the final empty line included */
	int status;                /* INVALID: 400, 431 or 505 */
	const char *error;         /* INVALID: one-line reason (static string) */
};

/*
 * Parse the request head at the start of buf[0..len). Empty lines before
 * the request line are skipped, a bare LF ends a line like CRLF does,
 * bytes after the head (a body, a pipelined request) are ignored.
 * Rejected with 400: malformed request line or header, a method or header
 * name that is not a token, control characters, a fragment, obsolete line
 * folding, an HTTP/1.1 request without exactly one Host. 431: no end of
 * head within SG_HTTP_MAX_HEAD bytes. 505: a major version other than 1.
 */
enum sg_http_parse_status sg_http_parse_request(const char *buf, size_t len, struct sg_http_request *req);

/* "OK", "Not Found", ... ("Unknown" for codes this server never sends). */
const char *sg_http_status_text(int status);

/*
 * Parse a listen address: "HOST:PORT" with HOST a numeric IPv4 address,
 * "[IPV6]:PORT", or ":PORT" (all IPv4 interfaces). PORT 0 asks the kernel
 * for a free port. Returns 0, or -1 with err (SG_OUTCOME_USAGE).
 */
int sg_http_parse_address(const char *text, struct sockaddr_storage *out, struct sg_error *err);

/* ---- the server --------------------------------------------------------- */

/* What a handler fills in. The server frees body after sending it. */
struct sg_http_response {
	int status;                 /* preset to 200 */
	const char *content_type;   /* preset to "text/plain; charset=utf-8"; must outlive the call */
	struct sg_buf body;         /* append with sg_buf_*; HEAD sends only its length */
};

/* Called for GET and HEAD of the route's path. req points into the
 * connection's buffer and is valid during the call only. */
typedef void (*sg_http_handler_fn)(const struct sg_http_request *req, struct sg_http_response *res, void *data);

/* Called once, from a libuv close callback, when a stop has finished. */
typedef void (*sg_http_stopped_fn)(void *data);

/* Zero members take the defaults shown. */
struct sg_http_options {
	size_t max_connections;      /* 64 */
	uint64_t idle_timeout_ms;    /* 5000: silence from the client; also how long the
				      * server waits for the client to close after a response */
	uint64_t read_timeout_ms;    /* 10000: from accept to the end of the request head */
	uint64_t write_timeout_ms;   /* 10000: the client must take the response */
	uint64_t stop_timeout_ms;    /* 1000: a stop waits this long for in-flight requests */
};

struct sg_http_stats {
	size_t open;            /* connections now, excluding ones being closed */
	uint64_t accepted;      /* connections accepted */
	uint64_t responses;     /* responses queued (any status) */
	uint64_t evicted;       /* closed to make room at the cap */
	uint64_t refused;       /* closed at once: the cap was full of busy connections */
	uint64_t timed_out;     /* dropped by the idle, read or write timeout */
};

struct sg_http_server;

/*
 * Create a server on loop. It owns its memory and its handles; it frees
 * them itself after sg_http_server_stop() completes. opts may be NULL.
 * Every server that was created must be stopped, whether or not it ever
 * listened, before the loop can close.
 */
struct sg_http_server *sg_http_server_new(uv_loop_t *loop, const struct sg_http_options *opts);

/*
 * Serve GET and HEAD of exactly path ("/metrics": no prefix match, the
 * query string is ignored) with fn(req, res, data). data is not owned.
 * At most 8 routes; register them before listening. Returns 0, or -1
 * when the table is full or path does not start with '/'.
 */
int sg_http_server_route(struct sg_http_server *s, const char *path, sg_http_handler_fn fn, void *data);

/*
 * Bind and listen on address (sg_http_parse_address). The socket is bound
 * before any libuv handle exists, so a bad address or a port in use
 * returns -1 with err (SG_OUTCOME_USAGE) and leaves nothing open but what
 * sg_http_server_stop() closes anyway.
 */
int sg_http_server_listen(struct sg_http_server *s, const char *address, struct sg_error *err);

/* The bound address as "127.0.0.1:41234" or "[::1]:41234" (port 0 resolved).
 * Returns 0, or -1 when not listening. */
int sg_http_server_address(const struct sg_http_server *s, char *buf, size_t size);

void sg_http_server_stats(const struct sg_http_server *s, struct sg_http_stats *out);

/*
 * Graceful stop: close the listening socket at once, close connections
 * that have not sent a byte, let the others finish their request and
 * response for up to stop_timeout_ms, then close whatever is left. When
 * every handle is closed, done(data) runs (from a close callback, never
 * from inside this call) and the server is freed: s is invalid once done
 * has been called. Call it once, and never from inside a handler. done
 * may be NULL.
 */
void sg_http_server_stop(struct sg_http_server *s, sg_http_stopped_fn done, void *data);

#endif
