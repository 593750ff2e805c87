/*
 * http.c - the HTTP/1.1 server of `schemagate serve` (see http.h for the
 * limits it enforces and why there is no library underneath).
 *
 * A connection lives through four states, changed only by conn_enter():
 *
 *   reading     collecting the request head (idle and read timeouts)
 *   responding  the response is queued, followed by a write shutdown
 *               (write timeout); what the client still sends is discarded
 *   lingering   the response is out; wait for the client to close so
 *               unread request bytes cannot turn our close into a reset
 *               that destroys the response in flight (idle timeout)
 *   closing     uv_close() was called on both handles; the memory goes in
 *               the last close callback
 */
#include "schemagate/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/log.h"

/* ---- the request parser ------------------------------------------------- */

/* RFC 9110 5.6.2: token characters. */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

static enum sg_http_parse_status invalid(struct sg_http_request *req, int status, const char *why)
{
	req->status = status;
	req->error = why;
	return SG_HTTP_INVALID;
}

/*
 * The next line in buf[*pos..limit): *start and *n exclude the line end
 * (LF or CRLF). Returns 1 with *pos past the line, 0 when no line end is
 * there yet, -1 for a CR that is not followed by LF.
 */
static int next_line(const char *buf, size_t limit, size_t *pos, const char **start, size_t *n)
{
	const char *p = buf + *pos;
	const char *lf = memchr(p, '\n', limit - *pos);
	if (!lf)
		return 0;
	size_t len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (memchr(p, '\r', len))
		return -1;
	*start = p;
	*n = len;
	*pos = (size_t)(lf - buf) + 1;
	return 1;
}

/* The target's path (and query) from origin-form "/p?q", absolute-form
 * "http://host/p?q" or asterisk-form "*". */
static enum sg_http_parse_status parse_target(struct sg_http_request *req, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= 0x20 || c >= 0x7f)
			return invalid(req, 400, "invalid character in the request target");
		if (c == '#')
			return invalid(req, 400, "a fragment in the request target");
	}
	if (n == 1 && t[0] == '*') {
		req->path = t;
		req->path_len = 1;
		return SG_HTTP_COMPLETE;
	}
	if (t[0] != '/') {
		size_t scheme = 0;
		if (n > 7 && strncasecmp(t, "http://", 7) == 0)
			scheme = 7;
		else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
			scheme = 8;
		else
			return invalid(req, 400, "the request target is not a path or an http URL");
		const char *slash = memchr(t + scheme, '/', n - scheme);
		const char *q = memchr(t + scheme, '?', n - scheme);
		if (q && (!slash || q < slash))
			slash = NULL;   /* "http://host?x": the path is empty */
		if (!slash) {
			req->path = "/";
			req->path_len = 1;
			if (q) {
				req->query = q + 1;
				req->query_len = n - (size_t)(q + 1 - t);
			}
			return SG_HTTP_COMPLETE;
		}
		n -= (size_t)(slash - t);
		t = slash;
	}
	const char *q = memchr(t, '?', n);
	req->path = t;
	req->path_len = q ? (size_t)(q - t) : n;
	if (q) {
		req->query = q + 1;
		req->query_len = n - req->path_len - 1;
	}
	return SG_HTTP_COMPLETE;
}

/* "METHOD SP TARGET SP HTTP/1.x", single spaces (RFC 9112 section 3). */
static enum sg_http_parse_status parse_request_line(struct sg_http_request *req, const char *line, size_t n)
{
	const char *sp1 = memchr(line, ' ', n);
	if (!sp1)
		return invalid(req, 400, "malformed request line");
	const char *rest = sp1 + 1;
	size_t rest_n = n - (size_t)(rest - line);
	const char *sp2 = memchr(rest, ' ', rest_n);
	if (!sp2)
		return invalid(req, 400, "malformed request line (no HTTP version)");
	const char *version = sp2 + 1;
	size_t version_n = n - (size_t)(version - line);

	req->method_text = line;
	req->method_len = (size_t)(sp1 - line);
	if (!is_token(line, req->method_len))
		return invalid(req, 400, "the method is not a token");
	if (req->method_len == 3 && memcmp(line, "GET", 3) == 0)
		req->method = SG_HTTP_GET;
	else if (req->method_len == 4 && memcmp(line, "HEAD", 4) == 0)
		req->method = SG_HTTP_HEAD;
	else
		req->method = SG_HTTP_OTHER;

	if (sp2 == rest)
		return invalid(req, 400, "empty request target");
	if (parse_target(req, rest, (size_t)(sp2 - rest)) == SG_HTTP_INVALID)
		return SG_HTTP_INVALID;

	if (version_n != 8 || memcmp(version, "HTTP/", 5) != 0 || version[6] != '.' ||
	    version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
		return invalid(req, 400, "malformed HTTP version");
	if (version[5] != '1')
		return invalid(req, 505, "only HTTP/1.x is served");
	req->minor_version = version[7] - '0';
	return SG_HTTP_COMPLETE;
}

/* "Name: value" (RFC 9112 section 5). Returns 1 for a Host header. */
static int parse_header(struct sg_http_request *req, const char *line, size_t n)
{
	if (line[0] == ' ' || line[0] == '\t') {
		invalid(req, 400, "obsolete header line folding");
		return -1;
	}
	const char *colon = memchr(line, ':', n);
	if (!colon || !is_token(line, (size_t)(colon - line))) {
		invalid(req, 400, colon ? "invalid header name" : "header line without a colon");
		return -1;
	}
	for (const char *v = colon + 1; v < line + n; v++) {
		unsigned char c = (unsigned char)*v;
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			invalid(req, 400, "control character in a header value");
			return -1;
		}
	}
	return (colon - line == 4 && strncasecmp(line, "host", 4) == 0) ? 1 : 0;
}

enum sg_http_parse_status sg_http_parse_request(const char *buf, size_t len, struct sg_http_request *req)
{
	memset(req, 0, sizeof(*req));
	/* a head that has not ended within the limit never will */
	size_t limit = len < SG_HTTP_MAX_HEAD ? len : SG_HTTP_MAX_HEAD;
	bool at_limit = len >= SG_HTTP_MAX_HEAD;
	size_t pos = 0;
	const char *line;
	size_t n;
	int r;

	/* RFC 9112 2.2: empty lines before the request line are ignored */
	while ((r = next_line(buf, limit, &pos, &line, &n)) == 1 && n == 0)
		;
	if (r == 0)
		return at_limit ? invalid(req, 431, "request head too large") : SG_HTTP_INCOMPLETE;
	if (r < 0)
		return invalid(req, 400, "bare CR in the request line");
	if (parse_request_line(req, line, n) == SG_HTTP_INVALID)
		return SG_HTTP_INVALID;

	int hosts = 0;
	for (;;) {
		r = next_line(buf, limit, &pos, &line, &n);
		if (r == 0)
			return at_limit ? invalid(req, 431, "request head too large") : SG_HTTP_INCOMPLETE;
		if (r < 0)
			return invalid(req, 400, "bare CR in a header line");
		if (n == 0)
			break;
		int h = parse_header(req, line, n);
		if (h < 0)
			return SG_HTTP_INVALID;
		hosts += h;
	}
	/* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one before */
	if (hosts > 1)
		return invalid(req, 400, "more than one Host header");
	if (hosts == 0 && req->minor_version >= 1)
		return invalid(req, 400, "HTTP/1.1 request without a Host header");
	req->head_len = pos;
	return SG_HTTP_COMPLETE;
}

const char *sg_http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---- addresses ---------------------------------------------------------- */

int sg_http_parse_address(const char *text, struct sockaddr_storage *out, struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strrchr(text, ':');
	if (!colon)
		return sg_fail(err, SG_OUTCOME_USAGE, "listen address '%s': expected HOST:PORT or [IPV6]:PORT", text);
	const char *port_text = colon + 1;
	char *end;
	errno = 0;
	unsigned long port = strtoul(port_text, &end, 10);
	if (!*port_text || *end || errno || port > 65535 || port_text[0] < '0' || port_text[0] > '9')
		return sg_fail(err, SG_OUTCOME_USAGE, "listen address '%s': invalid port '%s'", text, port_text);

	char host[INET6_ADDRSTRLEN + 2];
	size_t host_n = (size_t)(colon - text);
	if (host_n >= sizeof(host))
		return sg_fail(err, SG_OUTCOME_USAGE, "listen address '%s': host is not a numeric IP address", text);
	memcpy(host, text, host_n);
	host[host_n] = '\0';

	if (host[0] == '[') {
		if (host_n < 3 || host[host_n - 1] != ']')
			return sg_fail(err, SG_OUTCOME_USAGE, "listen address '%s': unbalanced brackets", text);
		host[host_n - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return sg_fail(err, SG_OUTCOME_USAGE, "listen address '%s': invalid IPv6 address '%s'", text,
				       host + 1);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)out;
	if (host_n == 0)
		a->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return sg_fail(err, SG_OUTCOME_USAGE,
			       "listen address '%s': '%s' is not a numeric IPv4 address (IPv6 goes in brackets: [::]:9187)",
			       text, host);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return 0;
}

/* ---- the server --------------------------------------------------------- */

#define MAX_ROUTES 8

enum conn_state { CONN_READING = 0, CONN_RESPONDING, CONN_LINGERING, CONN_CLOSING };

struct conn {
	struct conn *prev, *next;     /* the server's list, oldest first */
	struct sg_http_server *server;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t write_req;
	uv_shutdown_t shutdown_req;
	enum conn_state state;
	int handles_open;             /* tcp and timer until their close callbacks */
	uint64_t accepted_at;         /* loop time */
	bool peer_closed;             /* EOF while responding */
	struct sg_buf response;
	size_t len;
	char head[SG_HTTP_MAX_HEAD + 1];   /* one byte more tells "too large" */
};

struct route {
	char *path;
	sg_http_handler_fn fn;
	void *data;
};

struct sg_http_server {
	uv_loop_t *loop;
	struct sg_http_options opt;
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	uv_tcp_t listener;
	uv_timer_t stop_timer;
	bool listener_open;           /* uv_tcp_init ran: stop must close it */
	bool listening;
	int handles_open;             /* listener, stop_timer */
	bool stopping, stop_timer_closing;
	sg_http_stopped_fn done;
	void *done_data;
	struct conn *first, *last;    /* live connections, oldest first */
	size_t conns_alive;           /* allocated, including closing ones */
	uint64_t cap_warned_at;
	struct sg_http_stats stats;
};

/* What a client sends after its request head (a body, a second request)
 * is read into this and dropped; one buffer serves every connection (one
 * thread, nothing kept). */
static char discard_buf[4096];

static void maybe_finish(struct sg_http_server *s);

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles_open > 0)
		return;
	struct sg_http_server *s = c->server;
	sg_buf_free(&c->response);
	free(c);
	s->conns_alive--;
	maybe_finish(s);
}

static void list_remove(struct sg_http_server *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->last = c->prev;
	c->prev = c->next = NULL;
}

static void on_conn_timer(uv_timer_t *h);

/* The one place a connection changes state; each state arms its timer. */
static void conn_enter(struct conn *c, enum conn_state to)
{
	struct sg_http_server *s = c->server;
	if (c->state == CONN_CLOSING)
		return;
	c->state = to;
	switch (to) {
	case CONN_READING: {
		/* the earlier of: idle from now, the head's overall deadline */
		uint64_t now = uv_now(s->loop);
		uint64_t deadline = c->accepted_at + s->opt.read_timeout_ms;
		uint64_t wait = deadline > now ? deadline - now : 0;
		if (wait > s->opt.idle_timeout_ms)
			wait = s->opt.idle_timeout_ms;
		uv_timer_start(&c->timer, on_conn_timer, wait, 0);
		break;
	}
	case CONN_RESPONDING:
		uv_timer_start(&c->timer, on_conn_timer, s->opt.write_timeout_ms, 0);
		break;
	case CONN_LINGERING:
		uv_timer_start(&c->timer, on_conn_timer, s->opt.idle_timeout_ms, 0);
		break;
	case CONN_CLOSING:
		list_remove(s, c);
		s->stats.open--;
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
		uv_close((uv_handle_t *)&c->timer, on_conn_closed);
		break;
	}
}

static void on_conn_timer(uv_timer_t *h)
{
	struct conn *c = h->data;
	c->server->stats.timed_out++;
	sg_debug("http", "dropping a connection: %s timeout",
		 c->state == CONN_READING ? "read" : c->state == CONN_RESPONDING ? "write" : "linger");
	conn_enter(c, CONN_CLOSING);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	if (status == UV_ECANCELED)
		return;   /* closing already */
	if (status < 0 || c->peer_closed)
		conn_enter(c, CONN_CLOSING);
	else
		conn_enter(c, CONN_LINGERING);
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (status < 0 && status != UV_ECANCELED)
		conn_enter(c, CONN_CLOSING);
}

/* RFC 9110 5.6.7 IMF-fixdate; the C locale is never changed. */
static void http_date(char *out, size_t n)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Queue the response and the write shutdown behind it. */
static void conn_send(struct conn *c, enum sg_http_method method, struct sg_http_response *res,
		      const char *extra_headers)
{
	char date[64];
	http_date(date, sizeof(date));
	struct sg_buf *out = &c->response;
	sg_buf_printf(out,
		      "HTTP/1.1 %d %s\r\n"
		      "Date: %s\r\n"
		      "Content-Type: %s\r\n"
		      "Content-Length: %zu\r\n"
		      "Cache-Control: no-store\r\n"
		      "X-Content-Type-Options: nosniff\r\n"
		      "%s"
		      "Connection: close\r\n\r\n",
		      res->status, sg_http_status_text(res->status), date, res->content_type, res->body.len,
		      extra_headers ? extra_headers : "");
	if (method != SG_HTTP_HEAD && res->body.len)
		sg_buf_append(out, res->body.data, res->body.len);
	sg_buf_free(&res->body);

	c->server->stats.responses++;
	c->write_req.data = c->shutdown_req.data = c;
	uv_buf_t buf = uv_buf_init(out->data, (unsigned)out->len);
	if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0 ||
	    uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		conn_enter(c, CONN_CLOSING);
		return;
	}
	conn_enter(c, CONN_RESPONDING);
}

static void respond_text(struct conn *c, enum sg_http_method method, int status, const char *text,
			 const char *extra_headers)
{
	struct sg_http_response res = {.status = status, .content_type = "text/plain; charset=utf-8"};
	sg_buf_printf(&res.body, "%s\n", text);
	conn_send(c, method, &res, extra_headers);
}

static void dispatch(struct conn *c, const struct sg_http_request *req)
{
	struct sg_http_server *s = c->server;
	if (req->method == SG_HTTP_OTHER) {
		respond_text(c, SG_HTTP_GET, 405, "method not allowed: use GET or HEAD", "Allow: GET, HEAD\r\n");
		return;
	}
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct route *r = &s->routes[i];
		if (strlen(r->path) == req->path_len && memcmp(r->path, req->path, req->path_len) == 0) {
			struct sg_http_response res = {.status = 200,
						       .content_type = "text/plain; charset=utf-8"};
			r->fn(req, &res, r->data);
			conn_send(c, req->method, &res, NULL);
			return;
		}
	}
	respond_text(c, req->method, 404, "not found", NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	if (c->state == CONN_READING)
		*buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - c->len));
	else
		*buf = uv_buf_init(discard_buf, sizeof(discard_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = stream->data;
	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	if (nread < 0) {
		if (nread == UV_EOF && c->state == CONN_RESPONDING) {
			/* the client half-closed: finish the response first */
			c->peer_closed = true;
			uv_read_stop(stream);
			return;
		}
		conn_enter(c, CONN_CLOSING);
		return;
	}
	if (c->state != CONN_READING)
		return;   /* a body or a second request: dropped */
	c->len += (size_t)nread;
	struct sg_http_request req;
	switch (sg_http_parse_request(c->head, c->len, &req)) {
	case SG_HTTP_INCOMPLETE:
		conn_enter(c, CONN_READING);   /* re-arms the idle timer */
		break;
	case SG_HTTP_INVALID:
		sg_debug("http", "%d: %s", req.status, req.error);
		respond_text(c, SG_HTTP_GET, req.status, req.error, NULL);
		break;
	case SG_HTTP_COMPLETE:
		dispatch(c, &req);
		break;
	}
}

/* The oldest connection whose loss costs nothing but a retry: still
 * waiting for its request, or done and lingering. */
static struct conn *evictable(struct sg_http_server *s)
{
	for (struct conn *c = s->first; c; c = c->next)
		if (c->state == CONN_READING || c->state == CONN_LINGERING)
			return c;
	return NULL;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct sg_http_server *s = listener->data;
	if (status < 0) {
		sg_debug("http", "accept: %s", uv_strerror(status));
		return;
	}
	struct conn *c = sg_calloc(1, sizeof(*c));
	c->server = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles_open = 2;
	s->conns_alive++;
	/* on the list before anything can close it */
	c->prev = s->last;
	if (s->last)
		s->last->next = c;
	else
		s->first = c;
	s->last = c;
	s->stats.open++;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		conn_enter(c, CONN_CLOSING);
		return;
	}
	s->stats.accepted++;

	if (s->stats.open > s->opt.max_connections) {
		uint64_t now = uv_now(s->loop);
		if (s->cap_warned_at == 0 || now - s->cap_warned_at >= 60 * 1000) {
			s->cap_warned_at = now ? now : 1;
			sg_warn("http", "%zu connections open (the cap): closing the oldest idle ones",
				s->opt.max_connections);
		}
		struct conn *victim = evictable(s);
		if (victim && victim != c) {
			s->stats.evicted++;
			conn_enter(victim, CONN_CLOSING);
		} else {
			s->stats.refused++;
			conn_enter(c, CONN_CLOSING);
			return;
		}
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->accepted_at = uv_now(s->loop);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_enter(c, CONN_CLOSING);
		return;
	}
	conn_enter(c, CONN_READING);
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct sg_http_server *s = h->data;
	s->handles_open--;
	maybe_finish(s);
}

/* After a stop: once the last connection is gone, close the stop timer;
 * once every handle is closed, report and free. */
static void maybe_finish(struct sg_http_server *s)
{
	if (!s->stopping || s->conns_alive > 0)
		return;
	if (!s->stop_timer_closing) {
		s->stop_timer_closing = true;
		uv_close((uv_handle_t *)&s->stop_timer, on_server_handle_closed);
	}
	if (s->handles_open > 0)
		return;
	sg_http_stopped_fn done = s->done;
	void *data = s->done_data;
	for (size_t i = 0; i < s->nroutes; i++)
		free(s->routes[i].path);
	free(s);
	if (done)
		done(data);
}

static void on_stop_timeout(uv_timer_t *h)
{
	struct sg_http_server *s = h->data;
	struct conn *next;
	for (struct conn *c = s->first; c; c = next) {
		next = c->next;
		conn_enter(c, CONN_CLOSING);
	}
}

struct sg_http_server *sg_http_server_new(uv_loop_t *loop, const struct sg_http_options *opts)
{
	struct sg_http_server *s = sg_calloc(1, sizeof(*s));
	s->loop = loop;
	if (opts)
		s->opt = *opts;
	if (!s->opt.max_connections)
		s->opt.max_connections = 64;
	if (!s->opt.idle_timeout_ms)
		s->opt.idle_timeout_ms = 5000;
	if (!s->opt.read_timeout_ms)
		s->opt.read_timeout_ms = 10000;
	if (!s->opt.write_timeout_ms)
		s->opt.write_timeout_ms = 10000;
	if (!s->opt.stop_timeout_ms)
		s->opt.stop_timeout_ms = 1000;
	uv_timer_init(loop, &s->stop_timer);
	s->stop_timer.data = s;
	s->handles_open = 1;
	return s;
}

int sg_http_server_route(struct sg_http_server *s, const char *path, sg_http_handler_fn fn, void *data)
{
	if (s->nroutes == MAX_ROUTES || !path || path[0] != '/' || !fn)
		return -1;
	s->routes[s->nroutes++] = (struct route){.path = sg_strdup(path), .fn = fn, .data = data};
	return 0;
}

int sg_http_server_listen(struct sg_http_server *s, const char *address, struct sg_error *err)
{
	struct sockaddr_storage sa;
	if (s->listener_open || s->stopping)
		return sg_fail(err, SG_OUTCOME_USAGE, "listen %s: the server is already listening or stopped", address);
	if (sg_http_parse_address(address, &sa, err) < 0)
		return -1;
	/* Bind with plain system calls: a port in use must fail before a
	 * libuv handle exists that would have to be closed asynchronously. */
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sg_fail(err, SG_OUTCOME_USAGE, "cannot listen on %s: %s", address, strerror(errno));
	int one = 1, zero = 0;
	/* a restarted sidecar must not wait for TIME_WAIT of its old sockets */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "[::]" serves IPv4 too, whatever net.ipv6.bindv6only says */
	if (sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	socklen_t salen = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 128) != 0) {
		int e = errno;
		close(fd);
		return sg_fail(err, SG_OUTCOME_USAGE, "cannot listen on %s: %s", address, strerror(e));
	}
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	s->listener_open = true;
	s->handles_open++;
	int rc = uv_tcp_open(&s->listener, fd);
	if (rc != 0) {
		close(fd);
		return sg_fail(err, SG_OUTCOME_USAGE, "cannot listen on %s: %s", address, uv_strerror(rc));
	}
	rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (rc != 0)
		return sg_fail(err, SG_OUTCOME_USAGE, "cannot listen on %s: %s", address, uv_strerror(rc));
	s->listening = true;
	return 0;
}

int sg_http_server_address(const struct sg_http_server *s, char *buf, size_t size)
{
	if (!s->listening)
		return -1;
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	char ip[INET6_ADDRSTRLEN];
	if (sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;
		uv_ip6_name(a, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;
		uv_ip4_name(a, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(a->sin_port));
	}
	return 0;
}

void sg_http_server_stats(const struct sg_http_server *s, struct sg_http_stats *out)
{
	*out = s->stats;
}

void sg_http_server_stop(struct sg_http_server *s, sg_http_stopped_fn done, void *data)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->done = done;
	s->done_data = data;
	if (s->listener_open) {
		s->listening = false;
		uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	}
	/* nothing in flight on a connection that has not sent a byte */
	struct conn *next;
	for (struct conn *c = s->first; c; c = next) {
		next = c->next;
		if (c->state == CONN_READING && c->len == 0)
			conn_enter(c, CONN_CLOSING);
	}
	uv_update_time(s->loop);
	uv_timer_start(&s->stop_timer, on_stop_timeout, s->opt.stop_timeout_ms, 0);
	maybe_finish(s);
}
