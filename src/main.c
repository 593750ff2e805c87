/*
 * main.c - parse the configuration, pick the command's module, turn its
 * outcome into an exit code (sg_exit_code, the one mapping), and exec the
 * program after `--` on success.
 *
 * Only this file exits. A failure is logged once here, with the reason
 * also written to the termination log for `kubectl describe pod`.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "schemagate/config.h"
#include "schemagate/coordinator.h"
#include "schemagate/lint.h"
#include "schemagate/log.h"
#include "schemagate/migration.h"
#include "schemagate/serve.h"

/*
 * `version` and --version: what a bug report needs. The libraries report
 * the versions actually linked (the static binary carries its own). The
 * first line stays "schemagate X.Y.Z": scripts and the image test read it.
 * SG_GIT_REVISION comes from CMakeLists.txt (also schemagate_build_info).
 */
static void print_version(void)
{
	int pq = PQlibVersion();   /* 150005 = 15.5 (10 and later: major * 10000 + minor) */
	printf("schemagate %s\n"
	       "revision: %s\n"
	       "libpq: %d.%d\n"
	       "MariaDB Connector/C: %s\n"
	       "SQLite: %s\n"
	       "libuv: %s\n"
	       "OpenSSL: %s\n",
	       SG_VERSION, SG_GIT_REVISION, pq / 10000, pq % 10000, mysql_get_client_info(), sqlite3_libversion(),
	       uv_version_string(), OpenSSL_version(OPENSSL_VERSION_STRING));
	fflush(stdout);
}

/* The command's module: the directory alone (new, lint), the sidecar
 * (serve), or one run of the state machine (coordinator.c). */
static enum sg_outcome run_command(const struct sg_config *cfg, struct sg_error *err)
{
	switch (cfg->command) {
	case SG_CMD_NEW:
		return sg_migration_new(cfg->dir, cfg->new_name, cfg->dialect, cfg->new_single_file, err) == 0
			       ? SG_OUTCOME_OK : (err->outcome ? err->outcome : SG_OUTCOME_USAGE);
	case SG_CMD_LINT: {
		if (cfg->lint_rules) {
			sg_lint_print_rules(cfg->lint_format == SG_LINT_FORMAT_JSON);
			return SG_OUTCOME_OK;
		}
		if (cfg->lint_pending)
			return sg_run(cfg, err);   /* reads the history: what up would apply */
		struct sg_lint_request req = {.dir = cfg->dir, .dialect = cfg->dialect, .strict = cfg->strict,
					      .format = cfg->lint_format, .since = cfg->lint_since};
		return sg_lint(&req, err) == 0 ? SG_OUTCOME_OK : (err->outcome ? err->outcome : SG_OUTCOME_USAGE);
	}
	case SG_CMD_SERVE:
		return sg_serve(cfg, err);   /* a run of up or wait, then the sidecar */
	default:
		return sg_run(cfg, err);
	}
}

int main(int argc, char **argv)
{
	struct sg_config cfg;
	struct sg_error err = {0};
	/* log to stderr as text until the configuration says otherwise */
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	if (sg_config_parse(&cfg, argc, argv, &err) != 0) {
		/* the log settings were parsed first: even this line is JSON
		 * when the platform asked for JSON */
		sg_log_init(cfg.log_format, cfg.log_level);
		sg_errorlog("usage", "%s", err.msg);
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return sg_exit_code(err.outcome ? err.outcome : SG_OUTCOME_USAGE);
	}
	if (cfg.command == SG_CMD_HELP || cfg.command == SG_CMD_VERSION) {
		if (cfg.command == SG_CMD_VERSION)
			print_version();
		sg_config_free(&cfg);
		return 0;
	}
	sg_log_init(cfg.log_format, cfg.log_level);

	/* backoff jitter: 200 pods restarting together must not retry in step */
	srand((unsigned)(time(NULL) ^ (getpid() << 8)));
	/* libuv's thread pool runs two things at most here, the directory's
	 * validation and a host name's lookup; its default of four threads
	 * costs a start that waits for every thread, and a join of each at
	 * exit. Set while the process is still single-threaded (libuv reads
	 * it when the pool starts); an operator's own value wins. */
	bool pool_size_ours = getenv("UV_THREADPOOL_SIZE") == NULL && setenv("UV_THREADPOOL_SIZE", "2", 0) == 0;
	enum sg_outcome outcome = run_command(&cfg, &err);
	if (outcome == SG_OUTCOME_PENDING) {
		/* verify, status --check, --dry-run: an answer, not a failure */
		/* an answer: the reason is the message, not an error field */
		sg_info("pending", "%s: %s", cfg.command_name, err.msg);
		/* a container gated on verify did not start: say why */
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return sg_exit_code(outcome);
	}
	if (outcome != SG_OUTCOME_OK) {
		struct sg_log_fields f = {.error = err.msg, .duration_ms = -1, .waited_ms = -1};
		/* the reason travels in the error field: once in text, and as
		 * its own key in JSON */
		sg_log(SG_LOG_ERROR, "failed", &f, "%s failed", cfg.command_name);
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return sg_exit_code(outcome);
	}
	if (cfg.program_argv && cfg.program_argv[0]) {
		/* Same pid, same environment: schemagate becomes the app.
		 * Connections are closed already (sg_run returned), the pool's
		 * threads are idle: the app gets the environment it was given,
		 * without our pool size. */
		if (pool_size_ours)
			unsetenv("UV_THREADPOOL_SIZE");
		fflush(NULL);
		execvp(cfg.program_argv[0], cfg.program_argv);
		int e = errno;
		sg_fail(&err, SG_OUTCOME_USAGE, "cannot exec %s: %s", cfg.program_argv[0], strerror(e));
		sg_errorlog("exec", "%s", err.msg);
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return e == ENOENT ? 127 : 126;
	}
	sg_config_free(&cfg);
	return 0;
}
