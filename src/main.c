/*
 * main.c - parse the configuration, run the command, turn the result into
 * an exit code, and exec the program after `--` on success.
 *
 * Only this file exits. A failure is logged once here, with the reason
 * also written to the termination log for `kubectl describe pod`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "schemagate/config.h"
#include "schemagate/coordinator.h"
#include "schemagate/log.h"

int main(int argc, char **argv)
{
	struct sg_config cfg;
	struct sg_error err = {0};
	/* log to stderr as text until the configuration says otherwise */
	sg_log_init(SG_LOG_TEXT, SG_LOG_INFO);
	if (sg_config_parse(&cfg, argc, argv, &err) != 0) {
		sg_errorlog("usage", "%s", err.msg);
		sg_write_termination_log(NULL, err.msg);
		return err.exit_code ? err.exit_code : 2;
	}
	if (cfg.command == SG_CMD_HELP || cfg.command == SG_CMD_VERSION) {
		sg_config_free(&cfg);
		return 0;
	}
	sg_log_init(cfg.log_format, cfg.log_level);

	int code = sg_run(&cfg, &err);
	if (code != 0) {
		struct sg_log_fields f = {.error = err.msg, .duration_ms = -1, .waited_ms = -1};
		/* the reason travels in the error field: once in text, and as
		 * its own key in JSON */
		sg_log(SG_LOG_ERROR, "failed", &f, "%s failed", cfg.command_name);
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return code;
	}
	if (cfg.program_argv && cfg.program_argv[0]) {
		/* Same pid, same environment: schemagate becomes the app.
		 * Connections are closed already (sg_run returned). */
		fflush(NULL);
		execvp(cfg.program_argv[0], cfg.program_argv);
		int e = errno;
		sg_fail(&err, 2, "cannot exec %s: %s", cfg.program_argv[0], strerror(e));
		sg_errorlog("exec", "%s", err.msg);
		sg_write_termination_log(cfg.termination_log, err.msg);
		sg_config_free(&cfg);
		return e == ENOENT ? 127 : 126;
	}
	sg_config_free(&cfg);
	return 0;
}
