/*
 * sgtest.h - helpers shared by the Criterion tests: run the built
 * schemagate binary, make scratch directories and files, find the private
 * database servers that tests/run.sh started.
 */
#ifndef SGTEST_H
#define SGTEST_H

#include <stdbool.h>
#include <sys/types.h>

/* Result of one run of the binary. out/err are malloc'd (freed by sgt_result_free). */
struct sgt_result {
	int status;      /* exit code, or 128+signal */
	char *out;       /* stdout */
	char *err;       /* stderr */
	double seconds;  /* wall time */
};

/* Run SG_BINARY with argv (NULL-terminated, without argv[0]) and extra
 * environment entries "K=V" (NULL-terminated, may be NULL). Waits. */
void sgt_run(struct sgt_result *r, const char *const *env, const char *const *argv);
void sgt_result_free(struct sgt_result *r);

/* Start SG_BINARY in the background; stdout and stderr go to
 * log_path (or /dev/null when NULL). */
pid_t sgt_spawn(const char *const *env, const char *const *argv, const char *log_path);
/* Wait for pid; returns exit code or 128+signal. */
int sgt_wait(pid_t pid);

/* mkdtemp under $TMPDIR; malloc'd path; removed by sgt_rmrf. */
char *sgt_tempdir(void);
void sgt_rmrf(const char *path);
void sgt_write(const char *dir, const char *name, const char *content);
char *sgt_slurp(const char *path);   /* malloc'd, NULL if missing */
char *sgt_path(const char *dir, const char *name);   /* malloc'd dir/name */

/* Copy SG_SOURCE_DIR/migrations to dir/migrations; returns malloc'd path. */
char *sgt_copy_example_migrations(const char *dir);

/* URL of a private server from tests/run.sh (SG_TEST_PG_URL,
 * SG_TEST_MYSQL_URL). When unset: under CI=true the test fails, otherwise
 * it is skipped with a message saying how to run it, and the executable
 * exits SGT_SKIP_CODE (sgmain.c) so that ctest reports it skipped. */
#define SGT_SKIP_CODE 77
#define SGT_SKIP_MARK "not set; run tests/run.sh"
const char *sgt_require_server(const char *env_name);

/* Run a shell command and capture stdout (malloc'd); *status gets the exit code. */
char *sgt_sh(const char *cmd, int *status);

/* The pid inside an instance id or application_name:
 * "[schemagate/]HOST/PID/TAG" -> PID; 0 when there is none. */
pid_t sgt_instance_pid(const char *id);

/* What this process writes to stderr between start and end (a file:
 * sg_log writes fd 2 directly). */
struct sgt_capture {
	int saved;
	char path[64];
};
void sgt_capture_start(struct sgt_capture *c);
/* Restores stderr; returns what was written (malloc'd). */
char *sgt_capture_end(struct sgt_capture *c);

/* Milliseconds since an arbitrary point (monotonic). */
double sgt_now_ms(void);

/* How many times slower than usual the binary runs: SG_TEST_SLOWDOWN, or 1
 * (the valgrind pass of tests/run.sh sets 10). Tests multiply the waits
 * and the wall-clock bounds that depend on the binary's speed by it. */
double sgt_slowdown(void);

#endif
