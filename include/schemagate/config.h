/*
 * config.h - command line and environment, SPEC section 2.
 *
 * Precedence: flags, then environment variables, then defaults. Parsing
 * never touches the database or the migration directory.
 */
#ifndef SCHEMAGATE_CONFIG_H
#define SCHEMAGATE_CONFIG_H

#include "schemagate/common.h"

enum sg_command {
	SG_CMD_NONE = 0,
	SG_CMD_UP,
	SG_CMD_WAIT,
	SG_CMD_VERIFY,
	SG_CMD_STATUS,
	SG_CMD_DOWN,
	SG_CMD_ROLLBACK,
	SG_CMD_BASELINE,
	SG_CMD_REPAIR,
	SG_CMD_NEW,
	SG_CMD_LINT,
	SG_CMD_SERVE,    /* up (or wait), then /livez, /readyz, /metrics until SIGTERM */
	SG_CMD_EVENTS,   /* the audit table, read only */
	SG_CMD_HELP,     /* --help printed; exit 0 */
	SG_CMD_VERSION,  /* --version printed; exit 0 */
};

enum sg_lock_mode { SG_LOCK_AUTO = 0, SG_LOCK_TABLE, SG_LOCK_NONE };
enum sg_log_format { SG_LOG_TEXT = 0, SG_LOG_JSON };
/* lint's output (in --format's order: text, json, sarif, github) */
enum sg_lint_format { SG_LINT_FORMAT_TEXT = 0, SG_LINT_FORMAT_JSON, SG_LINT_FORMAT_SARIF, SG_LINT_FORMAT_GITHUB };
enum sg_log_level { SG_LOG_DEBUG = 0, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR, SG_LOG_QUIET };

enum sg_repair_action {
	SG_REPAIR_NONE = 0,
	SG_REPAIR_APPLIED,         /* the up script's effects are all in the database */
	SG_REPAIR_REVERTED,        /* none of them are */
	SG_REPAIR_RESUME,          /* the failed/in-doubt statement was done by hand; run the rest */
	SG_REPAIR_ACCEPT_CHECKSUMS,
};

/* --adopt: whose history table to adopt when schemagate's does not exist. */
enum sg_adopt_mode {
	SG_ADOPT_AUTO = 0,
	SG_ADOPT_NONE,
	SG_ADOPT_GOLANG_MIGRATE,
	SG_ADOPT_DBMATE,
	SG_ADOPT_POP,
	SG_ADOPT_GOOSE,
};

/* All strings are owned by the config and freed by sg_config_free(). */
struct sg_config {
	enum sg_command command;
	const char *command_name;      /* "up", ... (static) */

	char *database_url;            /* resolved: flag, env, or the URL file */
	char *password;                /* from --password-file; NULL if none */
	char *dir;                     /* default "./migrations" */
	char *table;                   /* default "schemagate_migrations" */
	char *target;                  /* NULL = newest in dir */

	uint64_t connect_timeout_ms;   /* 60s */
	uint64_t lock_timeout_ms;      /* 5m */
	uint64_t poll_interval_ms;     /* 1s */
	uint64_t timeout_ms;           /* 0 = none */
	uint64_t lock_lease_ms;        /* 30s */
	uint64_t ddl_lock_timeout_ms;  /* 0 = off */
	uint64_t stop_grace_ms;        /* 20s: a non-transactional statement may finish */
	uint64_t progress_interval_ms; /* 10s: a long statement's progress line; 0 = off */

	enum sg_lock_mode lock_mode;
	enum sg_adopt_mode adopt;      /* auto */
	bool strict;
	bool allow_out_of_order;
	enum sg_log_format log_format;
	enum sg_log_level log_level;
	char *termination_log;         /* NULL = /dev/termination-log if writable */

	/* command options */
	bool json;                     /* status --json, lint --json, --dry-run --json */
	bool dry_run;                  /* up/down/rollback/baseline/repair: print the plan, change nothing */
	bool show_sql;                 /* --dry-run --sql: with the SQL that would run */
	bool status_check;             /* status --check: exit 4 on integrity problems, 6 when pending */
	/* strict also means lint --strict: warnings fail */
	char *baseline_version;        /* up --baseline-version, or baseline VERSION */
	int down_steps;                /* down --steps (default 1) */
	char *down_to;                 /* down --to VERSION */
	enum sg_repair_action repair_action;
	char *repair_version;
	char *new_name;                /* new NAME */
	char *dialect;                 /* new --dialect TAG, lint --dialect TAG (optional) */
	bool new_single_file;          /* new --single-file (dbmate style) */
	bool serve_wait;               /* serve --wait: the wait logic instead of up */
	char *events_version;          /* events --version V (NULL = every version) */
	char *events_since;            /* events --since T: RFC 3339 UTC, ms ("2026-12-01T00:00:00.000Z") */
	bool create_database;          /* up --create-database */
	bool up_lint;                  /* up --lint: refuse a pending migration with an error-severity lint finding */
	enum sg_lint_format lint_format;   /* lint --format (--json: json) */
	bool lint_rules;               /* lint --rules: list the rules */
	bool lint_pending;             /* lint --pending: only what up would apply (needs a URL) */
	char *lint_since;              /* lint --since VERSION: only versions after it */
	char *listen;                  /* serve: --listen / SCHEMAGATE_LISTEN ("0.0.0.0:9187"); NULL otherwise */
	uint64_t check_interval_ms;    /* serve: --check-interval / SCHEMAGATE_CHECK_INTERVAL (30s) */

	/* after "--": execvp(program_argv[0], program_argv) on success */
	char **program_argv;           /* NULL-terminated; NULL if none */
};

/*
 * Parse argv (and the process environment). Returns 0 or -1 with err set
 * (exit code SG_OUTCOME_USAGE). --help sets command to HELP after printing to
 * stdout; --version and `version` set command to VERSION (main prints it).
 *
 * The log settings are resolved first, so that on failure cfg still holds
 * log_format, log_level and termination_log (nothing else) for reporting
 * the usage error the way the platform reads logs; call sg_config_free()
 * either way.
 */
int sg_config_parse(struct sg_config *cfg, int argc, char **argv, struct sg_error *err);
void sg_config_free(struct sg_config *cfg);

/* "500ms", "30s", "5m", "1h", "2" (seconds). Returns 0 or -1. */
int sg_parse_duration(const char *text, uint64_t *ms_out);

#endif
