/*
 * test_http.c - the HTTP server of `schemagate serve`: the request parser
 * as a pure function, listen addresses, and a real server on 127.0.0.1:0
 * driven the ways the product drives its loop (UV_RUN_ONCE from a
 * driver's wait, UV_RUN_NOWAIT from SQLite's progress handler), including
 * the clients that try to break it: oversized heads, idle floods,
 * slowloris, clients that never read.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schemagate/http.h"
#include "schemagate/loop.h"
#include "sghttp.h"
#include "sgtest.h"

/* ---- the parser --------------------------------------------------------- */

/* Parse a copy of exactly len bytes, so ASan sees any read past the end.
 * The copy lives until the next call: req points into it. */
static enum sg_http_parse_status parse(const char *text, size_t len, struct sg_http_request *req)
{
	static char *copy;
	free(copy);
	copy = malloc(len ? len : 1);
	memcpy(copy, text, len);
	enum sg_http_parse_status st = sg_http_parse_request(copy, len, req);
	if (st == SG_HTTP_COMPLETE) {
		bool inside = req->path >= copy && req->path + req->path_len <= copy + len;
		cr_assert(inside || strcmp(req->path, "/") == 0, "the path points outside the buffer");
		cr_assert(req->head_len <= len && req->head_len <= SG_HTTP_MAX_HEAD);
	}
	return st;
}

static struct sg_http_request req;

static int status_of(const char *text)
{
	enum sg_http_parse_status st = parse(text, strlen(text), &req);
	if (st == SG_HTTP_COMPLETE)
		return 200;
	if (st == SG_HTTP_INCOMPLETE)
		return 0;
	cr_assert_not_null(req.error);
	return req.status;
}

TestSuite(http_parser);

Test(http_parser, get_with_path_and_query_is_complete)
{
	const char *text = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
	char buf[256];
	strcpy(buf, text);
	cr_assert_eq(sg_http_parse_request(buf, strlen(buf), &req), SG_HTTP_COMPLETE);
	cr_expect_eq(req.method, SG_HTTP_GET);
	cr_expect_eq(req.path_len, 8);
	cr_expect_eq(strncmp(req.path, "/metrics", 8), 0);
	cr_expect_eq(req.query_len, 3);
	cr_expect_eq(strncmp(req.query, "x=1", 3), 0);
	cr_expect_eq(req.minor_version, 1);
	cr_expect_eq(req.head_len, strlen(text));
}

Test(http_parser, head_and_other_methods)
{
	cr_expect_eq(status_of("HEAD /livez HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	cr_expect_eq(req.method, SG_HTTP_HEAD);
	cr_expect_eq(status_of("POST /livez HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), 200);
	cr_expect_eq(req.method, SG_HTTP_OTHER);
	cr_expect_eq(req.method_len, 4);
	cr_expect_eq(status_of("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	cr_expect_eq(req.method, SG_HTTP_OTHER);
	/* methods are case-sensitive: "get" is some other method */
	cr_expect_eq(status_of("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	cr_expect_eq(req.method, SG_HTTP_OTHER);
}

Test(http_parser, every_prefix_of_a_request_is_incomplete)
{
	const char *text = "GET /readyz HTTP/1.1\r\nHost: 10.0.0.1:9187\r\nUser-Agent: kube-probe/1.29\r\n\r\n";
	size_t n = strlen(text);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(parse(text, i, &req), SG_HTTP_INCOMPLETE, "prefix of %zu bytes", i);
	cr_assert_eq(parse(text, n, &req), SG_HTTP_COMPLETE);
}

Test(http_parser, bare_lf_and_leading_empty_lines_and_trailing_bytes)
{
	cr_expect_eq(status_of("GET / HTTP/1.1\nHost: a\n\n"), 200);
	cr_expect_eq(status_of("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	cr_expect_eq(status_of("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\n"), 200);
	cr_expect_eq(req.path_len, 1);
	cr_expect_eq(req.head_len, strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
	cr_expect_eq(status_of("GET / HTTP/1.0\r\n\r\n"), 200, "HTTP/1.0 needs no Host");
	cr_expect_eq(status_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 200, "a higher minor version is 1.x");
}

Test(http_parser, absolute_form_target_is_reduced_to_its_path)
{
	cr_expect_eq(status_of("GET http://pod:9187/metrics?a HTTP/1.1\r\nHost: pod\r\n\r\n"), 200);
	cr_expect_eq(req.path_len, 8);
	cr_expect_eq(strncmp(req.path, "/metrics", 8), 0);
	cr_expect_eq(status_of("GET HTTP://pod HTTP/1.1\r\nHost: pod\r\n\r\n"), 200);
	cr_expect_eq(req.path_len, 1);
	cr_expect_eq(req.path[0], '/');
	cr_expect_eq(status_of("GET http://pod?q HTTP/1.1\r\nHost: pod\r\n\r\n"), 200);
	cr_expect_eq(req.path[0], '/');
	cr_expect_eq(req.query_len, 1);
}

Test(http_parser, malformed_requests_are_400)
{
	static const char *const bad[] = {
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / http/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
		"GET / HTTP/1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nName : x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\rHost: a\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(status_of(bad[i]), 400, "case %zu: %s", i, bad[i]);
	/* a header value may hold tabs and bytes above 0x7f (obs-text) */
	cr_expect_eq(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: \ta\xc3\xa9\r\n\r\n"), 200);
}

Test(http_parser, a_bad_request_line_is_rejected_before_the_head_ends)
{
	cr_expect_eq(status_of("BAD\x01 / HTTP/1.1\r\nHost: a\r\n"), 400);
	cr_expect_eq(status_of("GET / HTTP/2.0\r\n"), 505);
	cr_expect_eq(status_of("GET / HTTP/0.9\r\n"), 505);
}

Test(http_parser, head_past_8_kib_is_431_and_exactly_8_kib_is_accepted)
{
	const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t n = SG_HTTP_MAX_HEAD;
	char *buf = malloc(n + 64);
	/* exactly SG_HTTP_MAX_HEAD bytes, final "\r\n\r\n" included */
	memset(buf, 'a', n);
	memcpy(buf, start, strlen(start));
	memcpy(buf + n - 4, "\r\n\r\n", 4);
	cr_expect_eq(parse(buf, n, &req), SG_HTTP_COMPLETE);
	cr_expect_eq(req.head_len, n);
	/* one byte more */
	memset(buf, 'a', n + 1);
	memcpy(buf, start, strlen(start));
	memcpy(buf + n + 1 - 4, "\r\n\r\n", 4);
	cr_expect_eq(parse(buf, n + 1, &req), SG_HTTP_INVALID);
	cr_expect_eq(req.status, 431);
	/* no line end at all: 431 as soon as the limit is reached, not before */
	memset(buf, 'a', n);
	cr_expect_eq(parse(buf, n - 1, &req), SG_HTTP_INCOMPLETE);
	cr_expect_eq(parse(buf, n, &req), SG_HTTP_INVALID);
	cr_expect_eq(req.status, 431);
	/* empty lines count too */
	for (size_t i = 0; i < n; i += 2)
		memcpy(buf + i, "\r\n", 2);
	cr_expect_eq(parse(buf, n, &req), SG_HTTP_INVALID);
	cr_expect_eq(req.status, 431);
	free(buf);
}

/* Mutations of valid requests: never a crash or a read past the end (ASan),
 * and a verdict that is one of the three. */
Test(http_parser, random_mutations_never_read_past_the_buffer)
{
	const char *seed = "GET /metrics?a=b HTTP/1.1\r\nHost: 127.0.0.1:9187\r\nAccept: text/plain\r\n\r\n";
	size_t n = strlen(seed);
	unsigned state = 12345;
	char buf[128];
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, seed, n);
		int flips = 1 + iter % 4;
		for (int k = 0; k < flips; k++) {
			state = state * 1103515245u + 12345u;
			buf[(state >> 8) % n] = (char)(state >> 16);
		}
		state = state * 1103515245u + 12345u;
		size_t len = (state >> 8) % (n + 1);
		enum sg_http_parse_status st = parse(buf, len, &req);
		cr_assert(st == SG_HTTP_INCOMPLETE || st == SG_HTTP_COMPLETE || st == SG_HTTP_INVALID);
		if (st == SG_HTTP_INVALID)
			cr_assert(req.status == 400 || req.status == 431 || req.status == 505);
	}
}

/* ---- addresses ---------------------------------------------------------- */

TestSuite(http_address);

Test(http_address, accepted_forms)
{
	struct sockaddr_storage sa;
	struct sg_error err = {0};
	cr_expect_eq(sg_http_parse_address("0.0.0.0:9187", &sa, &err), 0, "%s", err.msg);
	cr_expect_eq(sa.ss_family, AF_INET);
	cr_expect_eq(ntohs(((struct sockaddr_in *)&sa)->sin_port), 9187);
	cr_expect_eq(sg_http_parse_address("127.0.0.1:0", &sa, &err), 0);
	cr_expect_eq(sg_http_parse_address(":9187", &sa, &err), 0);
	cr_expect_eq(((struct sockaddr_in *)&sa)->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_expect_eq(sg_http_parse_address("[::]:9187", &sa, &err), 0);
	cr_expect_eq(sa.ss_family, AF_INET6);
	cr_expect_eq(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 9187);
	cr_expect_eq(sg_http_parse_address("[::1]:65535", &sa, &err), 0);
}

Test(http_address, rejected_forms_name_the_problem)
{
	static const struct { const char *text, *says; } bad[] = {
		{ "9187", "expected HOST:PORT" },
		{ "localhost:9187", "not a numeric IPv4 address" },
		{ "::1:9187", "not a numeric IPv4 address" },
		{ "1.2.3.4:65536", "invalid port" },
		{ "1.2.3.4:", "invalid port" },
		{ "1.2.3.4:-1", "invalid port" },
		{ "1.2.3.4:80x", "invalid port" },
		{ "1.2.3.4: 80", "invalid port" },
		{ "[::1:80", "unbalanced brackets" },
		{ "[]:80", "unbalanced brackets" },
		{ "[1.2.3.4]:80", "invalid IPv6 address" },
		{ "300.1.1.1:80", "not a numeric IPv4 address" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sockaddr_storage sa;
		struct sg_error err = {0};
		cr_expect_eq(sg_http_parse_address(bad[i].text, &sa, &err), -1, "%s", bad[i].text);
		cr_expect_eq(err.outcome, SG_OUTCOME_USAGE);
		cr_expect_not_null(strstr(err.msg, bad[i].says), "%s: %s", bad[i].text, err.msg);
		cr_expect_not_null(strstr(err.msg, bad[i].text), "%s", err.msg);
	}
}

/* ---- the server --------------------------------------------------------- */

static uv_loop_t loop;
static struct sg_http_server *server;
static char address[80];
static bool stopped;
static int hello_calls;

static void handle_hello(const struct sg_http_request *r, struct sg_http_response *res, void *data)
{
	(void)r;
	hello_calls++;
	sg_buf_printf(&res->body, "%s\n", (const char *)data);
}

/* A body larger than any socket buffer, for clients that never read. */
static void handle_huge(const struct sg_http_request *r, struct sg_http_response *res, void *data)
{
	(void)r;
	(void)data;
	size_t n = 16u << 20;
	char *chunk = malloc(n);
	memset(chunk, 'x', n);
	sg_buf_append(&res->body, chunk, n);
	free(chunk);
}

static void on_stopped(void *data)
{
	(void)data;
	stopped = true;
}

static void start_on(uv_loop_t *l, const struct sg_http_options *opt, const char *listen)
{
	stopped = false;
	hello_calls = 0;
	server = sg_http_server_new(l, opt);
	cr_assert_eq(sg_http_server_route(server, "/hello", handle_hello, "hello"), 0);
	cr_assert_eq(sg_http_server_route(server, "/huge", handle_huge, NULL), 0);
	struct sg_error err = {0};
	cr_assert_eq(sg_http_server_listen(server, listen, &err), 0, "%s", err.msg);
	cr_assert_eq(sg_http_server_address(server, address, sizeof(address)), 0);
}

static void start(const struct sg_http_options *opt)
{
	uv_loop_init(&loop);
	sgh_loop_start(&loop);
	start_on(&loop, opt, "127.0.0.1:0");
}

/* Stop, wait for the completion callback, close the loop (asserting that
 * no handle is left). */
static void finish(void)
{
	sg_http_server_stop(server, on_stopped, NULL);
	double end = sgt_now_ms() + 5000;
	while (!stopped && sgt_now_ms() < end)
		uv_run(&loop, UV_RUN_ONCE);
	cr_assert(stopped, "the stop never completed");
	sgh_loop_close(&loop);
}

static struct sg_http_stats stats(void)
{
	struct sg_http_stats st;
	sg_http_server_stats(server, &st);
	return st;
}

static bool has_header(const char *response, const char *header)
{
	const char *end = strstr(response, "\r\n\r\n");
	const char *p = strstr(response, header);
	return p && end && p < end;
}

TestSuite(http_server, .timeout = 60);

Test(http_server, get_of_a_route_is_200_with_its_body_and_connection_close)
{
	start(NULL);
	char *r = sgh_exchange(&loop, address, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	cr_expect_str_eq(sgh_body(r), "hello\n");
	cr_expect(has_header(r, "\r\nContent-Length: 6\r\n"), "%s", r);
	cr_expect(has_header(r, "\r\nConnection: close\r\n"), "%s", r);
	cr_expect(has_header(r, "\r\nDate: "), "%s", r);
	free(r);
	/* the query string does not change the route */
	r = sgh_exchange(&loop, address, "GET /hello?verbose=1 HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200);
	free(r);
	cr_expect_eq(hello_calls, 2);
	finish();
}

Test(http_server, head_sends_the_headers_of_get_without_a_body)
{
	start(NULL);
	char *r = sgh_exchange(&loop, address, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	cr_expect(has_header(r, "\r\nContent-Length: 6\r\n"), "%s", r);
	cr_expect_str_eq(sgh_body(r), "", "HEAD got a body: %s", r);
	free(r);
	finish();
}

Test(http_server, unknown_path_is_404_and_prefixes_do_not_match)
{
	start(NULL);
	const char *const paths[] = { "/", "/hello/", "/hellox", "/HELLO", "/%68ello", "*" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char request[128];
		snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
		char *r = sgh_exchange(&loop, address, request);
		cr_expect_eq(sgh_status(r), 404, "%s: %s", paths[i], r);
		free(r);
	}
	cr_expect_eq(hello_calls, 0);
	finish();
}

Test(http_server, other_methods_are_405_with_allow)
{
	start(NULL);
	const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get" };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char request[128];
		snprintf(request, sizeof(request), "%s /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde",
			 methods[i]);
		char *r = sgh_exchange(&loop, address, request);
		cr_expect_eq(sgh_status(r), 405, "%s: %s", methods[i], r);
		cr_expect(has_header(r, "\r\nAllow: GET, HEAD\r\n"), "%s", r);
		free(r);
	}
	cr_expect_eq(hello_calls, 0);
	finish();
}

Test(http_server, head_past_8_kib_is_431_and_the_client_reads_it)
{
	start(NULL);
	/* 64 KiB of headers: the client is still sending when the server
	 * answers; the answer must arrive, not a connection reset */
	size_t n = 64 * 1024;
	char *big = malloc(n + 1);
	const char *start_line = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ";
	memset(big, 'b', n);
	memcpy(big, start_line, strlen(start_line));
	big[n] = '\0';
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	size_t sent = 0;
	while (sent < n) {
		ssize_t w = send(fd, big + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			sent += (size_t)w;
		else if (errno == EAGAIN)
			uv_run(&loop, UV_RUN_ONCE);
		else
			break;   /* the server closed after answering */
	}
	bool closed;
	char *r = sgh_receive(&loop, fd, 5000, &closed);
	cr_expect(closed);
	cr_expect_eq(sgh_status(r), 431, "%s", r);
	cr_expect_eq(hello_calls, 0);
	close(fd);
	free(r);
	free(big);
	finish();
}

Test(http_server, malformed_request_is_400_and_http2_is_505)
{
	start(NULL);
	char *r = sgh_exchange(&loop, address, "GET /hello HTTP/1.1\r\nBad Header: x\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 400, "%s", r);
	cr_expect_not_null(strstr(sgh_body(r), "invalid header name"), "%s", r);
	free(r);
	r = sgh_exchange(&loop, address, "GET /hello HTTP/1.1\r\n\r\n");
	cr_expect_eq(sgh_status(r), 400, "%s", r);
	free(r);
	r = sgh_exchange(&loop, address, "\x16\x03\x01\x02\x01\x01\x01\xfc\x03\x03\r\n\r\n");
	cr_expect_eq(sgh_status(r), 400, "binary garbage: %s", r);
	free(r);
	r = sgh_exchange(&loop, address, "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 505, "%s", r);
	free(r);
	cr_expect_eq(hello_calls, 0);
	finish();
}

Test(http_server, request_split_into_single_bytes_is_served)
{
	start(NULL);
	const char *request = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	for (const char *p = request; *p; p++) {
		sgh_send(fd, p, 1);
		sgh_pump(&loop, 2);
	}
	bool closed;
	char *r = sgh_receive(&loop, fd, 5000, &closed);
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	close(fd);
	free(r);
	finish();
}

static void count_tcp(uv_handle_t *h, void *arg)
{
	if (h->type == UV_TCP)
		(*(int *)arg)++;
}

/* The product's loop: a driver waiting for its socket inside sg_io_wait()
 * runs uv_run(UV_RUN_ONCE) until that socket is ready. The server must
 * answer meanwhile. */
Test(http_server, answers_while_a_driver_waits_on_the_loop)
{
	struct sg_loop l;
	struct sg_error err = {0};
	cr_assert_eq(sg_loop_init(&l, 0, &err), 0, "%s", err.msg);
	start_on(&l.uv, NULL, "127.0.0.1:0");
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	const char *request = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	sgh_send(fd, request, strlen(request));
	/* the "driver" waits for its socket: here, the client's */
	cr_assert_eq(sg_io_wait(&l.io, fd, SG_IO_READ, 5000), SG_IO_READ);
	char buf[512] = {0};
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert(n > 0);
	cr_expect_eq(sgh_status(buf), 200, "%s", buf);
	close(fd);
	sg_http_server_stop(server, on_stopped, NULL);
	while (!stopped)
		cr_assert_neq(sg_io_sleep(&l.io, 10), SG_IO_CANCELED);
	int tcp_handles = 0;
	uv_walk(&l.uv, count_tcp, &tcp_handles);
	cr_expect_eq(tcp_handles, 0, "the server left %d TCP handles", tcp_handles);
	sg_loop_close(&l);
}

/* SQLite's progress handler only calls uv_run(UV_RUN_NOWAIT). */
Test(http_server, answers_when_the_loop_only_runs_nowait)
{
	uv_loop_init(&loop);
	start_on(&loop, NULL, "127.0.0.1:0");
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	const char *request = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	sgh_send(fd, request, strlen(request));
	char buf[512] = {0};
	size_t len = 0;
	double end = sgt_now_ms() + 5000;
	for (;;) {
		uv_run(&loop, UV_RUN_NOWAIT);
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
		cr_assert(sgt_now_ms() < end, "no answer with UV_RUN_NOWAIT: %s", buf);
		usleep(1000);
	}
	cr_expect_eq(sgh_status(buf), 200, "%s", buf);
	close(fd);
	sg_http_server_stop(server, on_stopped, NULL);
	while (!stopped)
		uv_run(&loop, UV_RUN_NOWAIT);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http_server, idle_flood_cannot_exceed_the_cap_and_livez_still_answers)
{
	struct sg_http_options opt = {.max_connections = 64, .idle_timeout_ms = 60000, .read_timeout_ms = 60000};
	start(&opt);
	enum { FLOOD = 200 };
	int fds[FLOOD];
	size_t max_open = 0;
	for (int i = 0; i < FLOOD; i++) {
		fds[i] = sgh_connect(address);
		cr_assert(fds[i] >= 0, "connect %d: %s", i, strerror(-fds[i]));
		/* let the server accept as it would under a real flood */
		if (i % 8 == 7)
			sgh_pump(&loop, 2);
		if (stats().open > max_open)
			max_open = stats().open;
	}
	sgh_pump(&loop, 100);
	struct sg_http_stats st = stats();
	cr_expect_eq(st.accepted, FLOOD, "accepted %llu", (unsigned long long)st.accepted);
	cr_expect_leq(max_open, 64, "the cap did not hold: %zu open", max_open);
	cr_expect_eq(st.open, 64);
	cr_expect_eq(st.evicted, FLOOD - 64);
	int still_open = 0;
	for (int i = 0; i < FLOOD; i++)
		still_open += !sgh_peer_closed(fds[i]);
	cr_expect_eq(still_open, 64, "client side: %d connections still open", still_open);
	/* the probe's connection gets a slot; the oldest idle one goes */
	for (int k = 0; k < 3; k++) {
		char *r = sgh_exchange(&loop, address, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
		cr_expect_eq(sgh_status(r), 200, "probe %d: %s", k, r);
		free(r);
	}
	cr_expect_leq(stats().open, 64);
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	finish();
}

Test(http_server, at_the_cap_of_busy_connections_a_new_one_is_closed_at_once)
{
	struct sg_http_options opt = {.max_connections = 2, .write_timeout_ms = 1500};
	start(&opt);
	/* two clients that ask for 16 MiB and never read: both stay busy */
	int busy[2];
	for (int i = 0; i < 2; i++) {
		busy[i] = sgh_connect(address);
		cr_assert(busy[i] >= 0);
		const char *request = "GET /huge HTTP/1.1\r\nHost: t\r\n\r\n";
		sgh_send(busy[i], request, strlen(request));
	}
	sgh_pump(&loop, 200);
	cr_assert_eq(stats().open, 2);
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	bool closed;
	char *r = sgh_receive(&loop, fd, 1000, &closed);
	cr_expect(closed, "the third connection was not closed");
	cr_expect_str_eq(r, "");
	cr_expect_eq(stats().refused, 1);
	cr_expect_eq(stats().evicted, 0, "a busy connection was evicted");
	free(r);
	close(fd);
	/* the write timeout frees the slots */
	double t0 = sgt_now_ms();
	while (stats().open > 0 && sgt_now_ms() - t0 < 10000)
		sgh_pump(&loop, 20);
	double ms = sgt_now_ms() - t0;
	cr_expect_eq(stats().open, 0);
	cr_expect_eq(stats().timed_out, 2);
	cr_expect_lt(ms, 5000, "write timeout took %.0f ms", ms);
	for (int i = 0; i < 2; i++)
		close(busy[i]);
	finish();
}

/* Time until the server drops fd, driving the loop. */
static double time_to_drop(int fd, double limit_ms, const char *drip)
{
	double t0 = sgt_now_ms();
	const char *p = drip;
	while (sgt_now_ms() - t0 < limit_ms) {
		if (p && *p) {
			if (send(fd, p, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
				p++;
		}
		sgh_pump(&loop, 100);
		if (sgh_peer_closed(fd))
			return sgt_now_ms() - t0;
	}
	return -1;
}

Test(http_server, slowloris_is_dropped_after_the_read_timeout)
{
	struct sg_http_options opt = {.idle_timeout_ms = 500, .read_timeout_ms = 1200};
	start(&opt);
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	/* one byte every 100 ms: never idle, never done */
	const char *drip = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	double ms = time_to_drop(fd, 10000, drip);
	cr_expect_geq(ms, 1000, "dropped after %.0f ms, before the read timeout", ms);
	cr_expect_lt(ms, 4000, "dropped after %.0f ms (-1: never)", ms);
	cr_expect_eq(stats().timed_out, 1);
	cr_expect_eq(stats().responses, 0);
	cr_expect_eq(hello_calls, 0);
	close(fd);
	finish();
}

Test(http_server, silent_client_is_dropped_after_the_idle_timeout)
{
	struct sg_http_options opt = {.idle_timeout_ms = 400, .read_timeout_ms = 10000};
	start(&opt);
	int fd = sgh_connect(address);
	cr_assert(fd >= 0);
	double ms = time_to_drop(fd, 10000, NULL);
	cr_expect_geq(ms, 300, "dropped after %.0f ms", ms);
	cr_expect_lt(ms, 3000, "dropped after %.0f ms (-1: never)", ms);
	cr_expect_eq(stats().timed_out, 1);
	close(fd);
	/* a client that stops half way is dropped the same way */
	fd = sgh_connect(address);
	sgh_send(fd, "GET /hel", 8);
	ms = time_to_drop(fd, 10000, NULL);
	cr_expect_lt(ms, 3000, "dropped after %.0f ms (-1: never)", ms);
	close(fd);
	finish();
}

Test(http_server, graceful_stop_finishes_in_flight_requests_and_closes_everything)
{
	struct sg_http_options opt = {.stop_timeout_ms = 3000};
	start(&opt);
	int idle = sgh_connect(address);
	int partial = sgh_connect(address);
	cr_assert(idle >= 0 && partial >= 0);
	sgh_send(partial, "GET /hello HTTP/1.1\r\n", 21);
	sgh_pump(&loop, 50);
	cr_assert_eq(stats().open, 2);

	sg_http_server_stop(server, on_stopped, NULL);
	cr_expect_not(stopped, "the callback ran inside the stop call");
	sgh_pump(&loop, 50);
	cr_expect(sgh_peer_closed(idle), "a connection without a request was kept");
	cr_expect_not(stopped, "stopped while a request was in flight");
	/* no new connections */
	int refused = sgh_connect(address);
	cr_expect_eq(refused, -ECONNREFUSED, "connect after stop: %d", refused);
	if (refused >= 0)
		close(refused);
	/* the in-flight request completes and gets its answer */
	sgh_send(partial, "Host: t\r\n\r\n", 11);
	bool closed;
	char *r = sgh_receive(&loop, partial, 2000, &closed);
	cr_expect_eq(sgh_status(r), 200, "%s", r);
	free(r);
	close(partial);
	close(idle);
	double t0 = sgt_now_ms();
	while (!stopped && sgt_now_ms() - t0 < 5000)
		uv_run(&loop, UV_RUN_ONCE);
	cr_expect(stopped);
	cr_expect_lt(sgt_now_ms() - t0, 1000, "the stop waited for the stop timeout");
	sgh_loop_close(&loop);
}

Test(http_server, stop_timeout_closes_requests_that_never_finish)
{
	struct sg_http_options opt = {.stop_timeout_ms = 300, .idle_timeout_ms = 60000, .read_timeout_ms = 60000};
	start(&opt);
	int fd = sgh_connect(address);
	sgh_send(fd, "GET /hello HTTP/1.1\r\n", 21);
	sgh_pump(&loop, 50);
	double t0 = sgt_now_ms();
	sg_http_server_stop(server, on_stopped, NULL);
	while (!stopped && sgt_now_ms() - t0 < 5000)
		uv_run(&loop, UV_RUN_ONCE);
	double ms = sgt_now_ms() - t0;
	cr_expect(stopped);
	cr_expect_geq(ms, 250, "stopped after %.0f ms", ms);
	cr_expect_lt(ms, 1500, "stopped after %.0f ms", ms);
	cr_expect(sgh_peer_closed(fd));
	close(fd);
	sgh_loop_close(&loop);
}

Test(http_server, a_server_that_never_listened_stops_and_the_loop_closes)
{
	uv_loop_init(&loop);
	server = sg_http_server_new(&loop, NULL);
	stopped = false;
	cr_expect_eq(sg_http_server_address(server, address, sizeof(address)), -1);
	sg_http_server_stop(server, on_stopped, NULL);
	cr_expect_not(stopped);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect(stopped);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http_server, port_in_use_fails_with_a_message_and_leaves_nothing_open)
{
	start(NULL);
	struct sg_http_server *second = sg_http_server_new(&loop, NULL);
	struct sg_error err = {0};
	cr_expect_eq(sg_http_server_listen(second, address, &err), -1);
	cr_expect_eq(err.outcome, SG_OUTCOME_USAGE);
	cr_expect_not_null(strstr(err.msg, "Address already in use"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, address), "%s", err.msg);
	sg_http_server_stop(second, NULL, NULL);
	/* the first server still answers */
	char *r = sgh_exchange(&loop, address, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200);
	free(r);
	cr_expect_eq(sg_http_server_route(server, "nope", handle_hello, NULL), -1);
	finish();
}

Test(http_server, ipv6_wildcard_serves_ipv4_and_ipv6_clients)
{
	uv_loop_init(&loop);
	sgh_loop_start(&loop);
	start_on(&loop, NULL, "[::]:0");
	const char *port = strrchr(address, ':') + 1;
	char v4[64], v6[64];
	snprintf(v4, sizeof(v4), "127.0.0.1:%s", port);
	snprintf(v6, sizeof(v6), "[::1]:%s", port);
	char *r = sgh_exchange(&loop, v4, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "IPv4 client: %s", r);
	free(r);
	r = sgh_exchange(&loop, v6, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_expect_eq(sgh_status(r), 200, "IPv6 client: %s", r);
	free(r);
	finish();
}
