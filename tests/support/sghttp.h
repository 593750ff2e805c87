/*
 * sghttp.h - a plain-socket HTTP client for tests of the http server
 * running on a libuv loop in the same process. The test drives the loop
 * itself between client steps, one thread, as the product does.
 */
#ifndef SGHTTP_H
#define SGHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Start a 5 ms repeating timer on loop so uv_run(UV_RUN_ONCE) returns
 * regularly; sgh_loop_close() closes it. */
void sgh_loop_start(uv_loop_t *loop);
/* Close the timer, run the loop until every closing handle is gone, and
 * assert uv_loop_close() succeeds (every handle was closed). */
void sgh_loop_close(uv_loop_t *loop);

/* Run the loop with UV_RUN_ONCE for ms milliseconds. */
void sgh_pump(uv_loop_t *loop, double ms);

/* Blocking connect to "HOST:PORT" / "[V6]:PORT"; the socket is then made
 * non-blocking. Returns the fd, or -errno. */
int sgh_connect(const char *address);
/* Send everything (loopback: small requests never block for long). */
void sgh_send(int fd, const char *data, size_t n);

/* Drive the loop until the server closes fd's connection (EOF or reset) or
 * timeout_ms passes; returns what arrived (malloc'd, NUL-terminated).
 * *closed (may be NULL) tells whether the server closed it. */
char *sgh_receive(uv_loop_t *loop, int fd, double timeout_ms, bool *closed);

/* Has the server closed fd's connection? Non-blocking; consumes data. */
bool sgh_peer_closed(int fd);

/* connect, send request, receive until close, close: the response text. */
char *sgh_exchange(uv_loop_t *loop, const char *address, const char *request);

/* The status code of a response text, or -1. */
int sgh_status(const char *response);
/* The body (after the blank line), or NULL. Points into response. */
const char *sgh_body(const char *response);

#endif
