/*
 * sgtest.c - see sgtest.h.
 */
#include "sgtest.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double sgt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

double sgt_slowdown(void)
{
	const char *v = getenv("SG_TEST_SLOWDOWN");
	double f = v ? atof(v) : 1.0;
	return f >= 1.0 ? f : 1.0;
}

/* SG_TEST_BINARY_WRAPPER names a program run with the binary's path and
 * arguments instead of the binary itself (tests/support/valgrind.sh:
 * tests/run.sh runs the SQLite integration test under valgrind). */
static void exec_binary(const char *const *env, const char *const *argv)
{
	for (const char *const *e = env; e && *e; e++)
		putenv((char *)*e);
	const char *wrapper = getenv("SG_TEST_BINARY_WRAPPER");
	bool wrapped = wrapper && *wrapper;
	size_t n = 0;
	while (argv[n])
		n++;
	char **args = calloc(n + 3, sizeof(char *));
	size_t k = 0;
	if (wrapped)
		args[k++] = (char *)wrapper;
	args[k++] = (char *)SG_BINARY;
	for (size_t i = 0; i < n; i++)
		args[k++] = (char *)argv[i];
	execv(wrapped ? wrapper : SG_BINARY, args);
	_exit(127);
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

pid_t sgt_spawn(const char *const *env, const char *const *argv, const char *log_path)
{
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		exec_binary(env, argv);
	}
	return pid;
}

int sgt_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return decode_status(st);
}

static char *read_fd(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 1024)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	return buf;
}

void sgt_run(struct sgt_result *r, const char *const *env, const char *const *argv)
{
	char outp[] = "/tmp/sgt-out-XXXXXX", errp[] = "/tmp/sgt-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0);
	double t0 = sgt_now_ms();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		exec_binary(env, argv);
	}
	r->status = sgt_wait(pid);
	r->seconds = (sgt_now_ms() - t0) / 1000.0;
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	r->out = read_fd(ofd);
	r->err = read_fd(efd);
	close(ofd);
	close(efd);
	unlink(outp);
	unlink(errp);
}

void sgt_result_free(struct sgt_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

char *sgt_tempdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/sgtest-XXXXXX", base && *base ? base : "/tmp") > 0);
	cr_assert(mkdtemp(p) != NULL, "mkdtemp: %s", strerror(errno));
	return p;
}

void sgt_rmrf(const char *path)
{
	if (!path || strlen(path) < 8)
		return;
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "rm -rf '%s'", path) > 0);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
	free(cmd);
}

char *sgt_path(const char *dir, const char *name)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

void sgt_write(const char *dir, const char *name, const char *content)
{
	char *p = sgt_path(dir, name);
	FILE *f = fopen(p, "wb");
	cr_assert(f != NULL, "open %s: %s", p, strerror(errno));
	fputs(content, f);
	fclose(f);
	free(p);
}

char *sgt_slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	char *s = read_fd(fd);
	close(fd);
	return s;
}

char *sgt_copy_example_migrations(const char *dir)
{
	char *dst = sgt_path(dir, "migrations");
	char *cmd = NULL;
	/* the contents, into dst whether or not it exists already ("cp -r
	 * migrations dst" nests them in dst/migrations when dst exists) */
	cr_assert(asprintf(&cmd, "mkdir -p '%s' && cp -r '%s/migrations/.' '%s'", dst, SG_SOURCE_DIR, dst) > 0);
	cr_assert(system(cmd) == 0);
	free(cmd);
	return dst;
}

const char *sgt_require_server(const char *env_name)
{
	const char *url = getenv(env_name);
	if (url && *url)
		return url;
	const char *ci = getenv("CI");
	if (ci && strcmp(ci, "true") == 0)
		cr_assert_fail("%s is not set under CI=true: the private server did not start (run tests/run.sh)", env_name);
	cr_skip_test("%s " SGT_SKIP_MARK " to start the private servers", env_name);
	return NULL;
}

char *sgt_sh(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	cr_assert(p != NULL);
	char *out = read_fd(fileno(p));
	int st = pclose(p);
	if (status)
		*status = decode_status(st);
	return out;
}

pid_t sgt_instance_pid(const char *id)
{
	/* the pid is the component before the last: HOST/PID/TAG */
	const char *last = id ? strrchr(id, '/') : NULL;
	if (!last || last == id)
		return 0;
	const char *p = last - 1;
	while (p > id && p[-1] != '/')
		p--;
	return (pid_t)atoi(p);
}

void sgt_capture_start(struct sgt_capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/sg-capture-XXXXXX");
	int fd = mkstemp(c->path);
	cr_assert(fd >= 0);
	fflush(stderr);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

char *sgt_capture_end(struct sgt_capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	char *text = sgt_slurp(c->path);
	unlink(c->path);
	cr_assert_not_null(text);
	return text;
}
