/*
 * sghttp.c - see sghttp.h.
 */
#include "sghttp.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "schemagate/http.h"
#include "sgtest.h"

static uv_timer_t ticker;

static void on_tick(uv_timer_t *h) { (void)h; }

void sgh_loop_start(uv_loop_t *loop)
{
	uv_timer_init(loop, &ticker);
	uv_timer_start(&ticker, on_tick, 5, 5);
}

void sgh_loop_close(uv_loop_t *loop)
{
	uv_close((uv_handle_t *)&ticker, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(loop), 0, "handles left open on the loop");
}

void sgh_pump(uv_loop_t *loop, double ms)
{
	double end = sgt_now_ms() + ms;
	while (sgt_now_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
}

int sgh_connect(const char *address)
{
	struct sockaddr_storage sa;
	struct sg_error err = {0};
	cr_assert_eq(sg_http_parse_address(address, &sa, &err), 0, "%s", err.msg);
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	socklen_t len = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

void sgh_send(int fd, const char *data, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			usleep(1000);
			continue;
		}
		cr_assert(w > 0, "send: %s", strerror(errno));
		data += w;
		n -= (size_t)w;
	}
}

/* Read what is there; 1 = the peer closed, 0 = open, data appended. */
static int drain(int fd, char **buf, size_t *len, size_t *cap)
{
	for (;;) {
		if (*cap - *len < 4096) {
			*cap = *cap * 2 + 4096;
			*buf = realloc(*buf, *cap);
		}
		ssize_t n = recv(fd, *buf + *len, *cap - *len - 1, MSG_DONTWAIT);
		if (n > 0) {
			*len += (size_t)n;
			(*buf)[*len] = '\0';
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return 1;   /* reset */
	}
}

char *sgh_receive(uv_loop_t *loop, int fd, double timeout_ms, bool *closed)
{
	size_t len = 0, cap = 4096;
	char *buf = calloc(1, cap);
	double end = sgt_now_ms() + timeout_ms;
	bool done = false;
	while (!(done = drain(fd, &buf, &len, &cap)) && sgt_now_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
	if (closed)
		*closed = done;
	return buf;
}

bool sgh_peer_closed(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = calloc(1, cap);
	int r = drain(fd, &buf, &len, &cap);
	free(buf);
	return r == 1;
}

char *sgh_exchange(uv_loop_t *loop, const char *address, const char *request)
{
	int fd = sgh_connect(address);
	cr_assert(fd >= 0, "connect %s: %s", address, strerror(-fd));
	sgh_send(fd, request, strlen(request));
	bool closed;
	char *response = sgh_receive(loop, fd, 5000, &closed);
	close(fd);
	cr_assert(closed, "the server did not close the connection after: %s", response);
	return response;
}

int sgh_status(const char *response)
{
	int status;
	if (sscanf(response, "HTTP/1.1 %d ", &status) != 1)
		return -1;
	return status;
}

const char *sgh_body(const char *response)
{
	const char *p = strstr(response, "\r\n\r\n");
	return p ? p + 4 : NULL;
}
