/*
 * config.c - the command line and the environment (SPEC sections 1 and 2).
 *
 * `schemagate [global options] COMMAND [options] [-- PROGRAM ARGS...]`.
 * Options are accepted before or after the command word, because the same
 * image is started from Helm values, compose files and shell scripts that
 * all put them in different places. Parsing happens in two steps: getopt
 * collects what was written on the command line, then each setting is
 * resolved as flag, else environment variable, else default. That order
 * means a bad environment variable that a flag overrides is never an error.
 *
 * Parsing never touches the database or the migration directory; it only
 * reads the files that hold the URL and the password.
 */
#include "schemagate/config.h"
#include "schemagate/http.h"
#include "schemagate/migration.h"
#include "schemagate/log.h"
#include "schemagate/url.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CMD_BIT(c) (1u << (c))
#define LOCKING (CMD_BIT(SG_CMD_UP) | CMD_BIT(SG_CMD_DOWN) | CMD_BIT(SG_CMD_ROLLBACK) | \
		 CMD_BIT(SG_CMD_BASELINE) | CMD_BIT(SG_CMD_REPAIR) | CMD_BIT(SG_CMD_SERVE))
#define WAITING (LOCKING | CMD_BIT(SG_CMD_WAIT))
#define CHECKING (CMD_BIT(SG_CMD_UP) | CMD_BIT(SG_CMD_WAIT) | CMD_BIT(SG_CMD_VERIFY) | \
		  CMD_BIT(SG_CMD_STATUS) | CMD_BIT(SG_CMD_SERVE))
#define DATABASE (WAITING | CMD_BIT(SG_CMD_VERIFY) | CMD_BIT(SG_CMD_STATUS) | CMD_BIT(SG_CMD_EVENTS))
#define EVERY (DATABASE | CMD_BIT(SG_CMD_NEW) | CMD_BIT(SG_CMD_LINT))

/* Durations above this are refused so deadline arithmetic cannot overflow. */
#define MAX_DURATION_MS ((uint64_t)INT64_MAX / 2)

/* The options every command that writes accepts: see first, change later. */
#define DRY_RUN_OPTIONS                                                                 \
	"  --dry-run\n"                                                                \
	"      read the history and print what would be done (stdout); change\n"      \
	"      nothing, create nothing, take no lock. Exit 0 when there is nothing\n"  \
	"      to do, 6 when there is\n"                                              \
	"  --sql\n"                                                                    \
	"      with --dry-run: also print the SQL that would run\n"                   \
	"  --json\n"                                                                   \
	"      with --dry-run: print the plan as one JSON document\n"

/* ---- commands ----------------------------------------------------------- */

enum { NEEDS_URL = 1, PROGRAM_ARGS = 2 };

struct command_spec {
	const char *name;
	enum sg_command cmd;
	unsigned flags;
	const char *synopsis;      /* after "schemagate NAME" */
	const char *summary;       /* one line for the command list */
	const char *description;   /* the help page */
	const char *options;       /* command options, or NULL */
};

static const struct command_spec commands[] = {
	{ "up", SG_CMD_UP, NEEDS_URL | PROGRAM_ARGS, "[options] [-- PROGRAM ARGS...]",
	  "apply pending migrations under the lock, or wait for the instance that holds it",
	  "Apply every pending migration while holding a lock in the database. When\n"
	  "another instance holds the lock, wait for it to finish, then verify the\n"
	  "schema. Exits 0 once the database is at the target; with -- PROGRAM, then\n"
	  "replaces itself with PROGRAM (same pid, same environment).\n",
	  "  --baseline-version VERSION\n"
	  "      when the history table does not exist yet but the database holds\n"
	  "      tables, record every migration <= VERSION as applied first\n"
	  "  --create-database\n"
	  "      when the server says the URL's database does not exist, create it\n"
	  "      (PostgreSQL through the maintenance database, MySQL/MariaDB CREATE\n"
	  "      DATABASE IF NOT EXISTS), then go on; safe when many instances do it\n"
	  "  --lint\n"
	  "      refuse (exit 4, nothing applied) when a pending migration has an\n"
	  "      error-severity lint finding that its file does not ignore\n" DRY_RUN_OPTIONS },
	{ "wait", SG_CMD_WAIT, NEEDS_URL | PROGRAM_ARGS, "[options] [-- PROGRAM ARGS...]",
	  "wait until the database reaches the target, verify; never writes",
	  "Wait until another instance (usually a migration Job) has brought the\n"
	  "database to the target, verify every checksum and exit 0 (or exec\n"
	  "PROGRAM). Never writes; needs only SELECT on the history table.\n",
	  NULL },
	{ "verify", SG_CMD_VERIFY, NEEDS_URL | PROGRAM_ARGS, "[options] [-- PROGRAM ARGS...]",
	  "one-shot check: 0 at target, 6 pending, 4 integrity error",
	  "Check once, without waiting: exit 0 when the database is at the target and\n"
	  "every checksum matches, 6 when migrations are pending, 4 on integrity\n"
	  "errors. Suitable for readiness probes and CI gates.\n",
	  NULL },
	{ "status", SG_CMD_STATUS, NEEDS_URL, "[--json] [--check]",
	  "list applied, pending, failed, changed and unknown migrations",
	  "Print every migration with its state: applied, baselined, pending, failed,\n"
	  "partial, changed (checksum differs from the file), unknown (in the\n"
	  "database, not in the directory) and beyond-target, with when (RFC 3339,\n"
	  "UTC, milliseconds) and by whom it was applied. Output goes to stdout.\n",
	  "  --json\n"
	  "      print one JSON document for machines\n"
	  "  --check\n"
	  "      judge it too: exit 4 when a migration is failed, partial or changed\n"
	  "      (also: unknown under --strict, pending out of order), 6 when\n"
	  "      migrations are pending, else 0\n" },
	{ "down", SG_CMD_DOWN, NEEDS_URL, "[--steps N | --to VERSION]",
	  "revert the newest applied migrations under the lock",
	  "Revert applied migrations, newest first, under the lock, using the down\n"
	  "scripts.\n",
	  "  --steps N\n"
	  "      revert the N newest migrations (default 1)\n"
	  "  --to VERSION\n"
	  "      revert everything newer than VERSION; --to 0 reverts all\n" DRY_RUN_OPTIONS },
	{ "rollback", SG_CMD_ROLLBACK, NEEDS_URL, "[--dry-run [--sql] [--json]]",
	  "revert applied migrations this directory does not contain",
	  "Revert every applied migration that this image's directory does not\n"
	  "contain, using the down script recorded in the database when it was\n"
	  "applied. Meant for a Helm pre-rollback hook running the older image.\n"
	  "The down scripts are destructive: preview them with --dry-run --sql.\n"
	  "Refuses (exit 4), before reverting anything, when one of them is missing.\n",
	  DRY_RUN_OPTIONS },
	{ "baseline", SG_CMD_BASELINE, NEEDS_URL, "VERSION [--dry-run [--sql] [--json]]",
	  "record every migration <= VERSION as applied without running it",
	  "Record every migration up to and including VERSION as applied without\n"
	  "running it, to adopt a database that predates schemagate. VERSION must\n"
	  "be a version of the directory, and nothing newer may be applied yet.\n",
	  DRY_RUN_OPTIONS },
	{ "repair", SG_CMD_REPAIR, NEEDS_URL,
	  "VERSION --applied | VERSION --reverted | VERSION --resume | --accept-checksums",
	  "resolve a failed migration by hand, or accept changed checksums",
	  "Resolve a failed or partial non-transactional migration after a human\n"
	  "has fixed the database, or record the current files' checksums. Every\n"
	  "repair is written to the audit table.\n",
	  "  VERSION --applied\n"
	  "      the effects of VERSION's up script are all in the database (an\n"
	  "      interrupted revert: its down script's changes were undone by hand);\n"
	  "      record it as applied\n"
	  "  VERSION --reverted\n"
	  "      none of the effects of VERSION's up script are in the database (you\n"
	  "      undid what ran); forget it, so the next up runs it from the start\n"
	  "  VERSION --resume\n"
	  "      you completed by hand the one statement that failed or was in doubt;\n"
	  "      count it as done and run the rest of VERSION now\n"
	  "  --accept-checksums\n"
	  "      store the checksums of the current files for every applied migration\n" DRY_RUN_OPTIONS },
	{ "new", SG_CMD_NEW, 0, "NAME [--dialect TAG] [--single-file]",
	  "create the next migration file(s)",
	  "Create the next migration in the directory, following its existing\n"
	  "version style, and print the created paths. NAME may hold letters,\n"
	  "digits, '_' and '-'. Needs no database.\n",
	  "  --dialect TAG\n"
	  "      create NAME.TAG.up.sql for one engine: postgres (postgresql, pg,\n"
	  "      pgx), mysql, mariadb, sqlite (sqlite3)\n"
	  "  --single-file\n"
	  "      one file with -- migrate:up / -- migrate:down sections (dbmate style)\n" },
	{ "lint", SG_CMD_LINT, 0,
	  "[--dialect TAG] [--strict] [--json | --format F] [--since V | --pending] [--rules]",
	  "check the migration directory offline",
	  "Check the migration directory without a database, for every engine at\n"
	  "once: file names, duplicate versions, competing files, dialect tags,\n"
	  "single-file sections, statement splitting, transaction control; and the\n"
	  "up scripts against the lint rules: changes that break the release still\n"
	  "running (drops, renames, required columns, type changes) and long\n"
	  "blocking locks (PostgreSQL parsed by its own parser). Rule ids are\n"
	  "squawk's where squawk has the rule. Ignore a finding in the file with\n"
	  "-- schemagate:lint-ignore RULE (or squawk-ignore, atlas:nolint). Every\n"
	  "finding goes to stdout (error:, warning:, note:). Exits 2 when the\n"
	  "directory itself is wrong, 4 on an error-severity rule finding.\n",
	  "  --dialect TAG\n"
	  "      check only what one engine runs (a directory for one engine):\n"
	  "      postgres, mysql (with mariadb), mariadb or sqlite, or an alias\n"
	  "  --strict\n"
	  "      warnings fail too (exit 4): rule warnings, empty up scripts,\n"
	  "      byte-order marks, files that are not migrations, transaction\n"
	  "      control, missing downs\n"
	  "  --json\n"
	  "      print one JSON document for machines (--format json)\n"
	  "  --format F\n"
	  "      text (default), json, sarif (SARIF 2.1.0, for code scanning) or\n"
	  "      github (workflow commands that annotate a pull request)\n"
	  "  --since VERSION\n"
	  "      apply the rules only to versions after VERSION\n"
	  "  --pending\n"
	  "      apply the rules only to what up would apply: reads the history\n"
	  "      with --database-url (read only, no lock)\n"
	  "  --rules\n"
	  "      list every rule: id, severity, engines, explanation\n" },
	{ "serve", SG_CMD_SERVE, NEEDS_URL, "[--wait] [--listen ADDR] [--check-interval DURATION]",
	  "run up (or wait), then serve /livez, /readyz and /metrics as a sidecar",
	  "Run up (or, with --wait, the wait logic), then keep running: serve\n"
	  "/livez (200 while the process runs), /readyz (200 once the database is at\n"
	  "the target with matching checksums, else 503 with the reason) and\n"
	  "Prometheus /metrics over HTTP. The schema is checked again every\n"
	  "--check-interval with one history read, on a connection opened for the\n"
	  "check and closed after it. Never exits on success; SIGTERM stops it with\n"
	  "exit 0. Meant as a Kubernetes native sidecar whose startupProbe on /readyz\n"
	  "gates the app containers.\n",
	  "  --wait\n"
	  "      never write: wait until another instance (a Job) has migrated\n" },
	{ "events", SG_CMD_EVENTS, NEEDS_URL, "[--version V] [--since T] [--json]",
	  "show the audit trail: who applied, reverted, repaired or failed what",
	  "Print the rows of the audit table schemagate_events for this history\n"
	  "table, oldest first: when (RFC 3339, UTC, milliseconds), which event\n"
	  "(apply, revert, baseline, adopt, resume, repair, failure), which version,\n"
	  "the outcome, which instance, and the detail (the error of a failure).\n"
	  "Reads only: needs SELECT on schemagate_events and no migration\n"
	  "directory. Output goes to stdout.\n",
	  "  --version V\n"
	  "      only the events of version V (0007 and 7 are the same version), or of\n"
	  "      the repeatable migration R__NAME\n"
	  "  --since T\n"
	  "      only events at or after T: a time (2026-12-01, 2026-12-01T10:00:00Z,\n"
	  "      UTC unless it carries an offset) or a duration before now (30m, 2h)\n"
	  "  --json\n"
	  "      print one JSON document for machines\n" },
	{ "help", SG_CMD_HELP, 0, "[COMMAND]", "show help for a command",
	  "Show the help of COMMAND, or the overview.\n", NULL },
	{ "version", SG_CMD_VERSION, 0, "", "print the version, git revision and library versions",
	  "Print the version (first line: schemagate X.Y.Z), the git revision it was\n"
	  "built from and the versions of the linked libraries: libpq, MariaDB\n"
	  "Connector/C, SQLite, libuv, OpenSSL. Same as --version.\n",
	  NULL },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command_spec *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* ---- options ------------------------------------------------------------ */

enum opt_id {
	OPT_DATABASE_URL = 256,
	OPT_DATABASE_URL_FILE,
	OPT_PASSWORD_FILE,
	OPT_DIR,
	OPT_TABLE,
	OPT_TARGET,
	OPT_CONNECT_TIMEOUT,
	OPT_LOCK_TIMEOUT,
	OPT_POLL_INTERVAL,
	OPT_TIMEOUT,
	OPT_LOCK,
	OPT_LOCK_LEASE,
	OPT_ADOPT,
	OPT_DDL_LOCK_TIMEOUT,
	OPT_STOP_GRACE,
	OPT_PROGRESS_INTERVAL,
	OPT_STRICT,
	OPT_ALLOW_OUT_OF_ORDER,
	OPT_LOG_FORMAT,
	OPT_LOG_LEVEL,
	OPT_TERMINATION_LOG,
	/* command options */
	OPT_BASELINE_VERSION,
	OPT_JSON,
	OPT_DRY_RUN,
	OPT_SQL,
	OPT_STEPS,
	OPT_TO,
	OPT_APPLIED,
	OPT_REVERTED,
	OPT_ACCEPT_CHECKSUMS,
	OPT_RESUME,
	OPT_DIALECT,
	OPT_SINGLE_FILE,
	OPT_WAIT,
	OPT_LISTEN,
	OPT_CHECK_INTERVAL,
	OPT_CHECK,
	OPT_SINCE,
	OPT_CREATE_DATABASE,
	OPT_FORMAT,
	OPT_RULES,
	OPT_PENDING,
	OPT_LINT,
	OPT_END,
};

static const struct option long_options[] = {
	{ "database-url", required_argument, NULL, OPT_DATABASE_URL },
	{ "database-url-file", required_argument, NULL, OPT_DATABASE_URL_FILE },
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "table", required_argument, NULL, OPT_TABLE },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT },
	{ "poll-interval", required_argument, NULL, OPT_POLL_INTERVAL },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "lock", required_argument, NULL, OPT_LOCK },
	{ "lock-lease", required_argument, NULL, OPT_LOCK_LEASE },
	{ "adopt", required_argument, NULL, OPT_ADOPT },
	{ "ddl-lock-timeout", required_argument, NULL, OPT_DDL_LOCK_TIMEOUT },
	{ "stop-grace", required_argument, NULL, OPT_STOP_GRACE },
	{ "progress-interval", required_argument, NULL, OPT_PROGRESS_INTERVAL },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "allow-out-of-order", no_argument, NULL, OPT_ALLOW_OUT_OF_ORDER },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "termination-log", required_argument, NULL, OPT_TERMINATION_LOG },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	/* events --version V; elsewhere it takes no value (take_option) */
	{ "version", optional_argument, NULL, 'V' },
	{ "baseline-version", required_argument, NULL, OPT_BASELINE_VERSION },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "sql", no_argument, NULL, OPT_SQL },
	{ "steps", required_argument, NULL, OPT_STEPS },
	{ "to", required_argument, NULL, OPT_TO },
	{ "applied", no_argument, NULL, OPT_APPLIED },
	{ "reverted", no_argument, NULL, OPT_REVERTED },
	{ "accept-checksums", no_argument, NULL, OPT_ACCEPT_CHECKSUMS },
	{ "resume", no_argument, NULL, OPT_RESUME },
	{ "dialect", required_argument, NULL, OPT_DIALECT },
	{ "single-file", no_argument, NULL, OPT_SINGLE_FILE },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "check-interval", required_argument, NULL, OPT_CHECK_INTERVAL },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "create-database", no_argument, NULL, OPT_CREATE_DATABASE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "rules", no_argument, NULL, OPT_RULES },
	{ "pending", no_argument, NULL, OPT_PENDING },
	{ "lint", no_argument, NULL, OPT_LINT },
	{ NULL, 0, NULL, 0 },
};

/* Options that belong to particular commands. */
struct command_option {
	int id;
	const char *name;
	unsigned cmds;
};

static const struct command_option command_options[] = {
	{ OPT_BASELINE_VERSION, "--baseline-version", CMD_BIT(SG_CMD_UP) },
	{ OPT_JSON, "--json", CMD_BIT(SG_CMD_STATUS) | CMD_BIT(SG_CMD_LINT) | CMD_BIT(SG_CMD_EVENTS) | LOCKING },
	{ OPT_DRY_RUN, "--dry-run", LOCKING },
	{ OPT_SQL, "--sql", LOCKING },
	{ OPT_STEPS, "--steps", CMD_BIT(SG_CMD_DOWN) },
	{ OPT_TO, "--to", CMD_BIT(SG_CMD_DOWN) },
	{ OPT_APPLIED, "--applied", CMD_BIT(SG_CMD_REPAIR) },
	{ OPT_REVERTED, "--reverted", CMD_BIT(SG_CMD_REPAIR) },
	{ OPT_ACCEPT_CHECKSUMS, "--accept-checksums", CMD_BIT(SG_CMD_REPAIR) },
	{ OPT_RESUME, "--resume", CMD_BIT(SG_CMD_REPAIR) },
	{ OPT_DIALECT, "--dialect", CMD_BIT(SG_CMD_NEW) | CMD_BIT(SG_CMD_LINT) },
	{ OPT_SINGLE_FILE, "--single-file", CMD_BIT(SG_CMD_NEW) },
	{ OPT_WAIT, "--wait", CMD_BIT(SG_CMD_SERVE) },
	{ OPT_LISTEN, "--listen", CMD_BIT(SG_CMD_SERVE) },
	{ OPT_CHECK_INTERVAL, "--check-interval", CMD_BIT(SG_CMD_SERVE) },
	{ OPT_CHECK, "--check", CMD_BIT(SG_CMD_STATUS) },
	{ OPT_SINCE, "--since", CMD_BIT(SG_CMD_EVENTS) | CMD_BIT(SG_CMD_LINT) },
	{ OPT_CREATE_DATABASE, "--create-database", CMD_BIT(SG_CMD_UP) },
	{ OPT_FORMAT, "--format", CMD_BIT(SG_CMD_LINT) },
	{ OPT_RULES, "--rules", CMD_BIT(SG_CMD_LINT) },
	{ OPT_PENDING, "--pending", CMD_BIT(SG_CMD_LINT) },
	{ OPT_LINT, "--lint", CMD_BIT(SG_CMD_UP) },
};

/* The settings table drives the help pages (and documents SPEC section 2). */
struct setting_doc {
	const char *flag;
	const char *env;       /* NULL if none */
	const char *deflt;
	const char *what;
	unsigned cmds;         /* commands whose help lists it */
};

static const struct setting_doc settings[] = {
	{ "--database-url URL", "DATABASE_URL", "none, required",
	  "postgres://, postgresql://, mysql://, mariadb://, sqlite:PATH, sqlite:///ABS", DATABASE },
	{ "--database-url-file PATH", "DATABASE_URL_FILE", "-",
	  "read the URL from a file (a mounted Secret); beats DATABASE_URL", DATABASE },
	{ "--password-file PATH", "DATABASE_PASSWORD_FILE", "-",
	  "password kept out of the URL and out of argv", DATABASE },
	{ "--dir DIR", "SCHEMAGATE_DIR", "./migrations", "migration directory", EVERY },
	{ "--table NAME", "SCHEMAGATE_TABLE", "schemagate_migrations",
	  "history table: name or schema.name (PostgreSQL schema, MySQL database;\n"
	  "      SQLite: main)", DATABASE },
	{ "--target VERSION", "SCHEMAGATE_TARGET", "newest in dir", "version to reach", CHECKING },
	{ "--connect-timeout DURATION", "SCHEMAGATE_CONNECT_TIMEOUT", "60s",
	  "keep retrying until the database answers (verify and status: one\n"
	  "      attempt; SQLite: wait retries until the file exists)", DATABASE },
	{ "--lock-timeout DURATION", "SCHEMAGATE_LOCK_TIMEOUT", "5m",
	  "longest wait for the lock, or for the instance holding it", WAITING },
	{ "--poll-interval DURATION", "SCHEMAGATE_POLL_INTERVAL", "1s",
	  "lock retry period (+-20% jitter)", WAITING },
	{ "--timeout DURATION", "SCHEMAGATE_TIMEOUT", "0 (none)",
	  "overall deadline; on expiry roll back, release, exit 3", DATABASE },
	{ "--lock MODE", "SCHEMAGATE_LOCK", "auto",
	  "auto (database session lock), table (lease row, safe behind poolers), none", LOCKING },
	{ "--lock-lease DURATION", "SCHEMAGATE_LOCK_LEASE", "30s",
	  "lease length for --lock=table (renewed every third of it)", LOCKING },
	{ "--ddl-lock-timeout DURATION", "SCHEMAGATE_DDL_LOCK_TIMEOUT", "0 (off)",
	  "PostgreSQL lock_timeout for migration statements; retried with backoff", LOCKING },
	{ "--stop-grace DURATION", "SCHEMAGATE_STOP_GRACE", "20s",
	  "on SIGTERM, let a running non-transactional statement finish this long", LOCKING },
	{ "--progress-interval DURATION", "SCHEMAGATE_PROGRESS_INTERVAL", "10s",
	  "log what a migration statement does this often once it runs this long; 0 = off", LOCKING },
	{ "--adopt TOOL", "SCHEMAGATE_ADOPT", "auto",
	  "adopt another tool's history when schemagate's does not exist yet: auto,\n"
	  "      golang-migrate, dbmate, pop, goose or none", DATABASE },
	{ "--strict", "SCHEMAGATE_STRICT", "off",
	  "refuse when the database has versions this directory does not know", CHECKING },
	{ "--allow-out-of-order", NULL, "off",
	  "apply pending versions older than the newest applied one", CHECKING },
	{ "--listen ADDR", "SCHEMAGATE_LISTEN", "0.0.0.0:9187",
	  "HTTP address: IPv4:PORT, [IPv6]:PORT ([::]:9187 serves both)", CMD_BIT(SG_CMD_SERVE) },
	{ "--check-interval DURATION", "SCHEMAGATE_CHECK_INTERVAL", "30s",
	  "how often the schema is checked again", CMD_BIT(SG_CMD_SERVE) },
	{ "--log-format FORMAT", "SCHEMAGATE_LOG_FORMAT", "text",
	  "text, or json (one object per line on stderr)", EVERY },
	{ "--log-level LEVEL", "SCHEMAGATE_LOG_LEVEL", "info", "debug, info, warn or error", EVERY },
	{ "-v, --verbose", NULL, "-", "same as --log-level debug", EVERY },
	{ "-q, --quiet", NULL, "-", "same as --log-level warn: only warnings and errors", EVERY },
	{ "--termination-log PATH", NULL, "/dev/termination-log if it exists and is writable",
	  "one-line failure reason for kubectl describe, usage errors included", EVERY },
};

/* What the command line said; NULL / false = not given. */
struct cmdline {
	const char *database_url, *database_url_file, *password_file, *dir, *table, *target;
	const char *connect_timeout, *lock_timeout, *poll_interval, *timeout, *lock_lease,
		*ddl_lock_timeout, *stop_grace, *progress_interval;
	const char *lock, *adopt, *log_format, *log_level, *termination_log;
	bool strict, allow_out_of_order, help, version;
	const char *version_value;    /* --version=V */
	int version_next;             /* argv index after --version */
	int *positional_at;           /* argv index of each positional */

	const char *baseline_version, *steps, *to, *dialect, *listen, *check_interval, *since;
	const char *events_version;   /* events --version V */
	const char *format;           /* lint --format */
	bool create_database, rules, pending, lint;
	bool json, applied, reverted, accept_checksums, resume, single_file, wait, dry_run, sql, check;
	bool seen[OPT_END];           /* command options given */

	char **positional;            /* in order; positional[0] is the command */
	size_t npositional;
};

/* Parse state: the first usage error wins, later ones are consequences. */
struct parse {
	char error[SG_ERROR_MSG - 64];
	bool failed;
	int argc;        /* the words a message may quote */
	char **argv;
};

/* text with every occurrence of word replaced by shown; frees text. */
static char *replace_all(char *text, const char *word, const char *shown)
{
	struct sg_buf b = {0};
	const char *p = text;
	const char *hit;
	while ((hit = strstr(p, word)) != NULL) {
		sg_buf_append(&b, p, (size_t)(hit - p));
		sg_buf_puts(&b, shown);
		p = hit + strlen(word);
	}
	sg_buf_puts(&b, p);
	free(text);
	return b.data;
}

static int longest_first(const void *pa, const void *pb)
{
	size_t a = strlen(*(char *const *)pa), b = strlen(*(char *const *)pb);
	return (a < b) - (a > b);
}

/*
 * A message may quote any word of the command line, what follows its
 * '=', or any variable (an unknown option, quoted up to its '=', is
 * masked before it is cut: take_option). One that holds a URL is shown with the password of
 * each URL in it masked where the URL parser finds it (sg_url_redact_alloc):
 * the log's redaction finds URLs in free text and stops at a space or a
 * quote, which a password may hold ("unexpected argument
 * 'postgres://u:a b@h'"). The longest first: a word quoted inside a
 * longer one (a variable holding a copy of it) must not hide the longer
 * one from the search. Done on the whole message, before it is cut to
 * size. Frees msg.
 */
static char *mask_quoted_urls(const struct parse *st, char *msg)
{
	size_t nsettings = sizeof(settings) / sizeof(settings[0]);
	char **parts = sg_calloc(2 * ((size_t)st->argc + nsettings) + 1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < (size_t)st->argc + nsettings; i++) {
		const char *word;
		if (i < (size_t)st->argc)
			word = i > 0 ? st->argv[i] : NULL;
		else
			word = settings[i - (size_t)st->argc].env ? getenv(settings[i - (size_t)st->argc].env) : NULL;
		const char *eq = word ? strchr(word, '=') : NULL;
		if (word)
			parts[n++] = sg_strdup(word);
		if (eq)
			parts[n++] = sg_strdup(eq + 1);
	}
	qsort(parts, n, sizeof(char *), longest_first);
	for (size_t i = 0; i < n; i++) {
		if (strstr(parts[i], "://") && strstr(msg, parts[i])) {
			char *shown = sg_url_redact_alloc(parts[i]);
			if (strcmp(shown, parts[i]) != 0)
				msg = replace_all(msg, parts[i], shown);
			free(shown);
		}
		free(parts[i]);
	}
	free(parts);
	return msg;
}

static void usage_error(struct parse *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage_error(struct parse *st, const char *fmt, ...)
{
	if (st->failed)
		return;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg)
		msg = sg_strdup("invalid command line");
	msg = mask_quoted_urls(st, msg);
	snprintf(st->error, sizeof(st->error), "%s", msg);
	free(msg);
	st->failed = true;
}

/* ---- help --------------------------------------------------------------- */

static void print_settings(FILE *out, unsigned cmds)
{
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const struct setting_doc *s = &settings[i];
		if (!(s->cmds & cmds))
			continue;
		fprintf(out, "  %-28s %s%s(default: %s)\n      %s\n", s->flag, s->env ? s->env : "",
			s->env ? " " : "", s->deflt, s->what);
	}
}

static void print_global_help(FILE *out)
{
	fputs("Usage: schemagate [global options] COMMAND [options] [-- PROGRAM ARGS...]\n"
	      "\n"
	      "Safe schema migrations when many copies of an application start at once:\n"
	      "every copy contends on a lock held by the database, the winner applies the\n"
	      "pending migrations, the others wait, verify and exit 0.\n"
	      "\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\nGlobal options (flag, environment variable, default); flags win over the\n"
	      "environment, which wins over defaults. Options may come before or after\n"
	      "the command. Durations: 500ms, 30s, 5m, 1h or bare seconds.\n",
	      out);
	print_settings(out, EVERY);
	fputs("  -h, --help\n"
	      "      this overview; with a command, the command's options and settings\n"
	      "  -V, --version\n"
	      "      the version, git revision and linked library versions\n"
	      "\nThere is no default database: without a URL schemagate exits 2.\n"
	      "\n"
	      "Exit codes: 0 ready, 1 migration failed, 2 usage or configuration error,\n"
	      "3 timeout, 4 integrity error, 5 database error, 6 pending (verify,\n"
	      "status --check), 130/143 interrupted.\n"
	      "\n"
	      "Run 'schemagate COMMAND --help' for the options of one command.\n",
	      out);
}

static void print_command_help(FILE *out, const struct command_spec *c)
{
	fprintf(out, "Usage: schemagate %s %s\n\n%s", c->name, c->synopsis, c->description);
	if (c->options)
		fprintf(out, "\nOptions:\n%s", c->options);
	if (c->cmd != SG_CMD_HELP && c->cmd != SG_CMD_VERSION) {
		fputs("\nSettings (flag, environment variable, default):\n", out);
		print_settings(out, CMD_BIT(c->cmd));
	}
	if (c->flags & NEEDS_URL)
		fputs("\nA database URL is required: --database-url, --database-url-file,\n"
		      "DATABASE_URL_FILE or DATABASE_URL (the first one set wins).\n",
		      out);
}

/* ---- value checks ------------------------------------------------------- */

static bool is_identifier(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* "table" or "schema.table"; the name ends up inside SQL text. */
static bool is_table_name(const char *s)
{
	const char *dot = strchr(s, '.');
	if (!dot)
		return is_identifier(s, strlen(s));
	return is_identifier(s, (size_t)(dot - s)) && is_identifier(dot + 1, strlen(dot + 1));
}

static bool is_migration_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-'))
			return false;
	return true;
}

int sg_parse_duration(const char *text, uint64_t *ms_out)
{
	if (!text || !isdigit((unsigned char)*text))
		return -1;   /* empty, negative, leading space or sign */
	uint64_t n = 0;
	const char *p = text;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (n > (MAX_DURATION_MS - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	uint64_t unit;
	if (*p == '\0' || strcmp(p, "s") == 0)
		unit = 1000;
	else if (strcmp(p, "ms") == 0)
		unit = 1;
	else if (strcmp(p, "m") == 0)
		unit = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		unit = 60 * 60 * 1000;
	else
		return -1;
	if (n > MAX_DURATION_MS / unit)
		return -1;
	*ms_out = n * unit;
	return 0;
}

/* ---- resolving settings ------------------------------------------------- */

/* An empty variable counts as unset: Kubernetes manifests often template
 * `value: ""` for optional settings. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* flag, else env; *source names where the value came from for messages. */
static const char *pick(const char *flag_value, const char *flag_name, const char *env_name,
			const char **source)
{
	if (flag_value) {
		*source = flag_name;
		return flag_value;
	}
	*source = env_name;
	return env_name ? env(env_name) : NULL;
}

static void resolve_duration(struct parse *st, const char *flag_value, const char *flag_name,
			     const char *env_name, uint64_t *out)
{
	const char *source;
	const char *v = pick(flag_value, flag_name, env_name, &source);
	if (v && sg_parse_duration(v, out) < 0)
		usage_error(st, "%s: invalid duration '%s' (use 500ms, 30s, 5m, 1h or seconds)", source, v);
}

static void resolve_string(const char *flag_value, const char *env_name, const char *deflt, char **out)
{
	const char *source;
	const char *v = pick(flag_value, NULL, env_name, &source);
	*out = sg_strdup(v ? v : deflt);
}

/* Match v against names[i]; returns i or -1. */
static int choice(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

static void resolve_enums(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	static const char *const lock_names[] = { "auto", "table", "none" };
	/* in enum sg_adopt_mode order */
	static const char *const adopt_names[] = { "auto", "none", "golang-migrate", "dbmate", "pop", "goose" };
	const char *source;
	const char *v;
	int i;

	if ((v = pick(cl->lock, "--lock", "SCHEMAGATE_LOCK", &source)) != NULL) {
		if ((i = choice(v, lock_names, 3)) < 0)
			usage_error(st, "%s: unknown lock mode '%s' (use auto, table or none)", source, v);
		else
			cfg->lock_mode = (enum sg_lock_mode)i;
	}
	if ((v = pick(cl->adopt, "--adopt", "SCHEMAGATE_ADOPT", &source)) != NULL) {
		if ((i = choice(v, adopt_names, 6)) < 0)
			usage_error(st, "%s: unknown tool '%s' (use auto, golang-migrate, dbmate, pop, goose or none)",
				    source, v);
		else
			cfg->adopt = (enum sg_adopt_mode)i;
	}
	if (cl->strict) {
		cfg->strict = true;
	} else if ((v = env("SCHEMAGATE_STRICT")) != NULL) {
		static const char *const bools[] = { "1", "true", "yes", "on", "0", "false", "no", "off" };
		if ((i = choice(v, bools, 8)) < 0)
			usage_error(st, "SCHEMAGATE_STRICT: expected 1/true/yes or 0/false/no, not '%s'", v);
		else
			cfg->strict = i < 4;
	}
}

/*
 * How to report: resolved before anything else can fail, so even a usage
 * error reaches stderr in the format the platform parses (JSON from the
 * first byte) and the termination log the pod names. A bad --log-format
 * falls back to SCHEMAGATE_LOG_FORMAT for reporting that very error.
 */
static void resolve_logging(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	static const char *const format_names[] = { "text", "json" };
	static const char *const level_names[] = { "debug", "info", "warn", "error", "warning" };
	static const enum sg_log_level level_values[] = { SG_LOG_DEBUG, SG_LOG_INFO, SG_LOG_WARN,
							  SG_LOG_ERROR, SG_LOG_WARN };
	const char *source;
	const char *v;
	int i;

	cfg->termination_log = sg_strdup(cl->termination_log);
	if ((v = pick(cl->log_format, "--log-format", "SCHEMAGATE_LOG_FORMAT", &source)) != NULL) {
		if ((i = choice(v, format_names, 2)) < 0) {
			usage_error(st, "%s: unknown log format '%s' (use text or json)", source, v);
			if (cl->log_format && (v = env("SCHEMAGATE_LOG_FORMAT")) != NULL)
				i = choice(v, format_names, 2);
		}
		if (i >= 0)
			cfg->log_format = (enum sg_log_format)i;
	}
	if ((v = pick(cl->log_level, "--log-level", "SCHEMAGATE_LOG_LEVEL", &source)) != NULL) {
		if ((i = choice(v, level_names, 5)) < 0)
			usage_error(st, "%s: unknown log level '%s' (use debug, info, warn or error)", source, v);
		else
			cfg->log_level = level_values[i];
	}
}

/* SPEC section 2; strings are defaulted in resolve_settings(). */
static void set_defaults(struct sg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout_ms = 60 * 1000;
	cfg->lock_timeout_ms = 5 * 60 * 1000;
	cfg->poll_interval_ms = 1000;
	cfg->timeout_ms = 0;
	cfg->lock_lease_ms = 30 * 1000;
	cfg->ddl_lock_timeout_ms = 0;
	cfg->stop_grace_ms = 20 * 1000;
	cfg->progress_interval_ms = 10 * 1000;
	cfg->lock_mode = SG_LOCK_AUTO;
	cfg->adopt = SG_ADOPT_AUTO;
	cfg->log_format = SG_LOG_TEXT;
	cfg->log_level = SG_LOG_INFO;
	cfg->down_steps = 1;
	cfg->check_interval_ms = 30 * 1000;
}

static void resolve_settings(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	resolve_string(cl->dir, "SCHEMAGATE_DIR", "./migrations", &cfg->dir);
	if (!cfg->dir[0])
		usage_error(st, "--dir is empty: name the migration directory");
	resolve_string(cl->table, "SCHEMAGATE_TABLE", "schemagate_migrations", &cfg->table);
	if (!is_table_name(cfg->table))
		usage_error(st, "invalid history table name '%s' (use name or schema.name: letters, digits, '_')",
			    cfg->table);
	resolve_string(cl->target, "SCHEMAGATE_TARGET", NULL, &cfg->target);
	if (cfg->target && !sg_version_valid(cfg->target))
		usage_error(st, "invalid target version '%s' (a version is a run of digits)", cfg->target);

	resolve_duration(st, cl->connect_timeout, "--connect-timeout", "SCHEMAGATE_CONNECT_TIMEOUT",
			 &cfg->connect_timeout_ms);
	resolve_duration(st, cl->lock_timeout, "--lock-timeout", "SCHEMAGATE_LOCK_TIMEOUT", &cfg->lock_timeout_ms);
	resolve_duration(st, cl->poll_interval, "--poll-interval", "SCHEMAGATE_POLL_INTERVAL",
			 &cfg->poll_interval_ms);
	resolve_duration(st, cl->timeout, "--timeout", "SCHEMAGATE_TIMEOUT", &cfg->timeout_ms);
	resolve_duration(st, cl->lock_lease, "--lock-lease", "SCHEMAGATE_LOCK_LEASE", &cfg->lock_lease_ms);
	resolve_duration(st, cl->ddl_lock_timeout, "--ddl-lock-timeout", "SCHEMAGATE_DDL_LOCK_TIMEOUT",
			 &cfg->ddl_lock_timeout_ms);
	resolve_duration(st, cl->stop_grace, "--stop-grace", "SCHEMAGATE_STOP_GRACE", &cfg->stop_grace_ms);
	resolve_duration(st, cl->progress_interval, "--progress-interval", "SCHEMAGATE_PROGRESS_INTERVAL",
			 &cfg->progress_interval_ms);
	if (cfg->stop_grace_ms > 10 * 60 * 1000)
		usage_error(st, "--stop-grace: %llus is longer than any termination grace period; use at most 10m",
			    (unsigned long long)(cfg->stop_grace_ms / 1000));
	/* a zero period would spin; a zero lease would expire as it is taken */
	if (cfg->poll_interval_ms == 0)
		usage_error(st, "the poll interval must be greater than zero");
	if (cfg->lock_lease_ms < 1000)
		usage_error(st, "the lock lease must be at least 1s");

	resolve_enums(st, cl, cfg);
	cfg->allow_out_of_order = cl->allow_out_of_order;
}

/* Read a Secret file; trailing whitespace (the newline editors add) goes. */
static char *read_secret_file(struct parse *st, const char *source, const char *path)
{
	char *text = sg_read_file(path, NULL);
	if (!text) {
		usage_error(st, "%s: cannot read '%s': %s", source, path, strerror(errno));
		return NULL;
	}
	size_t n = strlen(text);
	while (n > 0 && isspace((unsigned char)text[n - 1]))
		text[--n] = '\0';
	if (n == 0) {
		usage_error(st, "%s: '%s' is empty", source, path);
		free(text);
		return NULL;
	}
	return text;
}

/*
 * --database-url, else the URL file (flag or DATABASE_URL_FILE), else
 * DATABASE_URL. There is deliberately no default: a typo must never
 * "succeed" against a scratch database.
 */
static void resolve_database(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	const char *source;
	const char *file = pick(cl->database_url_file, "--database-url-file", "DATABASE_URL_FILE", &source);
	const char *url_source = source;
	if (cl->database_url) {
		cfg->database_url = sg_strdup(cl->database_url);
		url_source = "--database-url";
	} else if (file) {
		cfg->database_url = read_secret_file(st, source, file);
	} else if (env("DATABASE_URL")) {
		cfg->database_url = sg_strdup(env("DATABASE_URL"));
		url_source = "DATABASE_URL";
	} else if (!st->failed) {
		usage_error(st, "no database URL: schemagate has no default database; set --database-url, "
				"--database-url-file or DATABASE_URL_FILE (a file holding the URL), or DATABASE_URL");
	}
	if (cfg->database_url) {
		struct sg_url url;
		struct sg_error uerr = {0};
		if (sg_url_parse(cfg->database_url, &url, &uerr) < 0) {
			usage_error(st, "%s: %s", url_source, uerr.msg);
		} else {
			sg_url_register_secrets(&url);
			sg_url_free(&url);
		}
	}

	const char *pw = pick(cl->password_file, "--password-file", "DATABASE_PASSWORD_FILE", &source);
	if (pw) {
		cfg->password = read_secret_file(st, source, pw);
		sg_log_add_secret(cfg->password);
	}
}

/* ---- command options ---------------------------------------------------- */

static void check_command_options(struct parse *st, const struct cmdline *cl, const struct command_spec *c)
{
	for (size_t i = 0; i < sizeof(command_options) / sizeof(command_options[0]); i++) {
		const struct command_option *o = &command_options[i];
		if (cl->seen[o->id] && !(o->cmds & CMD_BIT(c->cmd)))
			usage_error(st, "option %s does not apply to '%s'", o->name, c->name);
	}
}

static void expect_positionals(struct parse *st, const struct cmdline *cl, const struct command_spec *c,
			       size_t min, size_t max, const char *what)
{
	size_t n = cl->npositional - 1;
	if (n < min)
		usage_error(st, "'%s' needs %s", c->name, what);
	else if (n > max)
		usage_error(st, "unexpected argument '%s' after '%s'", cl->positional[1 + max], c->name);
}

static void resolve_repair(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	int actions = cl->applied + cl->reverted + cl->resume + cl->accept_checksums;
	if (actions == 0) {
		usage_error(st, "'repair' needs VERSION --applied, VERSION --reverted, VERSION --resume or "
				"--accept-checksums");
		return;
	}
	if (actions > 1) {
		usage_error(st, "--applied, --reverted, --resume and --accept-checksums exclude each other");
		return;
	}
	if (cl->accept_checksums) {
		cfg->repair_action = SG_REPAIR_ACCEPT_CHECKSUMS;
		if (cl->npositional > 1)
			usage_error(st, "'repair --accept-checksums' takes no VERSION (it covers every applied migration)");
		return;
	}
	cfg->repair_action = cl->applied ? SG_REPAIR_APPLIED : cl->resume ? SG_REPAIR_RESUME : SG_REPAIR_REVERTED;
	if (cl->npositional < 2)
		usage_error(st, "'repair %s' needs the VERSION to repair",
			    cl->applied ? "--applied" : cl->resume ? "--resume" : "--reverted");
	else
		cfg->repair_version = sg_strdup(cl->positional[1]);
}

static void resolve_version_arg(struct parse *st, const char *what, const char *v, char **out)
{
	if (!sg_version_valid(v))
		usage_error(st, "invalid %s '%s' (a version is a run of digits)", what, v);
	*out = sg_strdup(v);
}

/* serve's address and period; read (also from the environment) for serve
 * only, so a pod-wide SCHEMAGATE_LISTEN never breaks another command. */
static void resolve_serve(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	cfg->serve_wait = cl->wait;
	const char *source;
	const char *listen = pick(cl->listen, "--listen", "SCHEMAGATE_LISTEN", &source);
	cfg->listen = sg_strdup(listen ? listen : "0.0.0.0:9187");
	struct sockaddr_storage sa;
	struct sg_error aerr = {0};
	if (sg_http_parse_address(cfg->listen, &sa, &aerr) < 0)
		usage_error(st, "%s: %s", listen ? source : "--listen", aerr.msg);
	resolve_duration(st, cl->check_interval, "--check-interval", "SCHEMAGATE_CHECK_INTERVAL",
			 &cfg->check_interval_ms);
	if (cfg->check_interval_ms == 0)
		usage_error(st, "the check interval must be greater than zero");
}

/*
 * events --since T as the text the database shows ("2026-12-01T10:00:00.000Z",
 * which sorts as time does): a date, a date and time (UTC unless it carries
 * Z or an offset; 'T' or a space between), or a duration before now on
 * this machine's clock. Malloc'd into *out.
 */
static int parse_since(const char *text, char **out)
{
	uint64_t ms;
	time_t t;
	int msec = 0;
	if (sg_parse_duration(text, &ms) == 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t at = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)ms;
		if (at < 0)
			at = 0;
		t = (time_t)(at / 1000);
		msec = (int)(at % 1000);
	} else {
		struct tm tm = {0};
		const char *p = strptime(text, "%Y-%m-%d", &tm);
		if (!p)
			return -1;
		if (*p == 'T' || *p == ' ') {
			p = strptime(p + 1, "%H:%M:%S", &tm);
			if (!p)
				return -1;
			if (*p == '.') {
				int digits = 0;
				for (p++; isdigit((unsigned char)*p); p++, digits++)
					if (digits < 3)
						msec = msec * 10 + (*p - '0');
				if (digits == 0)
					return -1;
				for (; digits < 3; digits++)
					msec *= 10;
			}
		}
		int offset_min = 0;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int hh, mm, n = 0;
			if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
				return -1;
			offset_min = (*p == '-' ? -1 : 1) * (hh * 60 + mm);
			p += 6;
		}
		if (*p)
			return -1;
		t = timegm(&tm) - (time_t)offset_min * 60;
	}
	struct tm utc;
	char buf[40];
	if (!gmtime_r(&t, &utc) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc) == 0)
		return -1;
	*out = sg_asprintf("%s.%03dZ", buf, msec);
	return 0;
}

/* lint: --format (--json is --format json), --rules, --since VERSION,
 * --pending with a URL (read only: what `up` would apply). */
static void resolve_lint(struct parse *st, const struct cmdline *cl, struct sg_config *cfg)
{
	static const char *const formats[] = {"text", "json", "sarif", "github"};
	cfg->lint_format = cl->json ? SG_LINT_FORMAT_JSON : SG_LINT_FORMAT_TEXT;
	if (cl->format) {
		size_t i = 0;
		while (i < 4 && strcmp(cl->format, formats[i]) != 0)
			i++;
		if (i == 4)
			usage_error(st, "--format: unknown format '%s' (text, json, sarif or github)", cl->format);
		else if (cl->json && i != SG_LINT_FORMAT_JSON)
			usage_error(st, "--json and --format %s contradict each other", cl->format);
		else
			cfg->lint_format = (enum sg_lint_format)i;
	}
	cfg->lint_rules = cl->rules;
	if (cl->since)
		resolve_version_arg(st, "--since", cl->since, &cfg->lint_since);
	cfg->lint_pending = cl->pending;
	if (cl->pending && cl->since)
		usage_error(st, "--pending and --since contradict each other (--pending lints what the database has "
				"not applied)");
	if (cl->pending)
		resolve_database(st, cl, cfg);
}

/* Positional arguments and command options, per command. */
static void resolve_command(struct parse *st, const struct cmdline *cl, const struct command_spec *c,
			    struct sg_config *cfg)
{
	check_command_options(st, cl, c);
	cfg->json = cl->json;
	cfg->dry_run = cl->dry_run;
	cfg->show_sql = cl->sql;
	if ((cl->sql || (cl->json && (CMD_BIT(c->cmd) & LOCKING))) && !cl->dry_run)
		usage_error(st, "%s only goes with --dry-run for '%s'", cl->sql ? "--sql" : "--json", c->name);
	cfg->status_check = cl->check;
	if (cl->dialect && !*cl->dialect)
		usage_error(st, "--dialect needs a tag (postgres, mysql, mariadb, sqlite or an alias)");
	cfg->dialect = sg_strdup(cl->dialect);
	cfg->up_lint = cl->lint;
	switch (c->cmd) {
	case SG_CMD_LINT:
		expect_positionals(st, cl, c, 0, 0, "");
		resolve_lint(st, cl, cfg);
		break;
	case SG_CMD_UP:
		expect_positionals(st, cl, c, 0, 0, "");
		cfg->create_database = cl->create_database;
		if (cl->baseline_version)
			resolve_version_arg(st, "--baseline-version", cl->baseline_version, &cfg->baseline_version);
		break;
	case SG_CMD_BASELINE:
		expect_positionals(st, cl, c, 1, 1, "the VERSION to baseline");
		if (cl->npositional > 1)
			resolve_version_arg(st, "baseline version", cl->positional[1], &cfg->baseline_version);
		break;
	case SG_CMD_DOWN:
		expect_positionals(st, cl, c, 0, 0, "");
		if (cl->steps && cl->to) {
			usage_error(st, "--steps and --to exclude each other");
		} else if (cl->to) {
			resolve_version_arg(st, "--to version", cl->to, &cfg->down_to);
			cfg->down_steps = 0;   /* the target decides how many */
		} else if (cl->steps) {
			char *end;
			errno = 0;
			long n = strtol(cl->steps, &end, 10);
			if (!isdigit((unsigned char)cl->steps[0]) || *end || errno || n < 1 || n > INT_MAX)
				usage_error(st, "--steps: expected a positive number, not '%s'", cl->steps);
			else
				cfg->down_steps = (int)n;
		}
		break;
	case SG_CMD_REPAIR:
		expect_positionals(st, cl, c, 0, 1, "");
		resolve_repair(st, cl, cfg);
		if (cfg->repair_version && strncmp(cfg->repair_version, "R__", 3) == 0)
			usage_error(st, "%s is a repeatable migration: it needs no repair; fix its file and run up, which "
				    "re-applies it when its checksum changes", cfg->repair_version);
		else if (cfg->repair_version && !sg_version_valid(cfg->repair_version))
			usage_error(st, "invalid version '%s' (a version is a run of digits)", cfg->repair_version);
		break;
	case SG_CMD_SERVE:
		expect_positionals(st, cl, c, 0, 0, "");
		resolve_serve(st, cl, cfg);
		break;
	case SG_CMD_EVENTS:
		expect_positionals(st, cl, c, 0, 0, "");
		if (cl->events_version && sg_is_repeatable_key(cl->events_version))
			cfg->events_version = sg_strdup(cl->events_version);   /* a repeatable migration's */
		else if (cl->events_version)
			resolve_version_arg(st, "--version", cl->events_version, &cfg->events_version);
		if (cl->since && parse_since(cl->since, &cfg->events_since) != 0)
			usage_error(st, "--since: invalid time '%s' (use 2026-12-01, 2026-12-01T10:00:00Z, "
					"2026-12-01T12:00:00+02:00, or a duration before now: 30m, 2h)", cl->since);
		break;
	case SG_CMD_NEW:
		expect_positionals(st, cl, c, 1, 1, "a NAME for the migration");
		if (cl->npositional > 1) {
			if (!is_migration_name(cl->positional[1]))
				usage_error(st, "invalid migration name '%s' (use letters, digits, '_' and '-')",
					    cl->positional[1]);
			cfg->new_name = sg_strdup(cl->positional[1]);
		}
		cfg->new_single_file = cl->single_file;
		break;
	default:
		expect_positionals(st, cl, c, 0, 0, "");
		break;
	}
}

/* ---- the command line --------------------------------------------------- */

/* getopt_long accepts unique abbreviations; name the ambiguous ones. */
static int count_prefix_matches(const char *word)
{
	size_t n = strcspn(word, "=");
	int matches = 0;
	for (const struct option *o = long_options; o->name; o++)
		if (strncmp(o->name, word, n) == 0)
			matches++;
	return matches;
}

static void take_option(struct parse *st, struct cmdline *cl, int c, char **argv)
{
	switch (c) {
	case 1: /* a non-option word, in order */
		cl->positional_at[cl->npositional] = optind - 1;
		cl->positional[cl->npositional++] = optarg;
		break;
	case OPT_DATABASE_URL: cl->database_url = optarg; break;
	case OPT_DATABASE_URL_FILE: cl->database_url_file = optarg; break;
	case OPT_PASSWORD_FILE: cl->password_file = optarg; break;
	case OPT_DIR: cl->dir = optarg; break;
	case OPT_TABLE: cl->table = optarg; break;
	case OPT_TARGET: cl->target = optarg; break;
	case OPT_CONNECT_TIMEOUT: cl->connect_timeout = optarg; break;
	case OPT_LOCK_TIMEOUT: cl->lock_timeout = optarg; break;
	case OPT_POLL_INTERVAL: cl->poll_interval = optarg; break;
	case OPT_TIMEOUT: cl->timeout = optarg; break;
	case OPT_LOCK: cl->lock = optarg; break;
	case OPT_LOCK_LEASE: cl->lock_lease = optarg; break;
	case OPT_ADOPT: cl->adopt = optarg; break;
	case OPT_DDL_LOCK_TIMEOUT: cl->ddl_lock_timeout = optarg; break;
	case OPT_STOP_GRACE: cl->stop_grace = optarg; break;
	case OPT_PROGRESS_INTERVAL: cl->progress_interval = optarg; break;
	case OPT_STRICT: cl->strict = true; break;
	case OPT_ALLOW_OUT_OF_ORDER: cl->allow_out_of_order = true; break;
	case OPT_LOG_FORMAT: cl->log_format = optarg; break;
	case OPT_LOG_LEVEL: cl->log_level = optarg; break;
	case OPT_TERMINATION_LOG: cl->termination_log = optarg; break;
	/* -v and -q are spellings of --log-level; the last one given wins */
	case 'v': cl->log_level = "debug"; break;
	case 'q': cl->log_level = "warn"; break;
	case 'h': cl->help = true; break;
	case 'V':
		cl->version = true;
		cl->version_value = optarg;
		cl->version_next = optind;
		break;
	case OPT_BASELINE_VERSION: cl->baseline_version = optarg; break;
	case OPT_JSON: cl->json = true; break;
	case OPT_DRY_RUN: cl->dry_run = true; break;
	case OPT_SQL: cl->sql = true; break;
	case OPT_STEPS: cl->steps = optarg; break;
	case OPT_TO: cl->to = optarg; break;
	case OPT_APPLIED: cl->applied = true; break;
	case OPT_REVERTED: cl->reverted = true; break;
	case OPT_ACCEPT_CHECKSUMS: cl->accept_checksums = true; break;
	case OPT_RESUME: cl->resume = true; break;
	case OPT_DIALECT: cl->dialect = optarg; break;
	case OPT_SINGLE_FILE: cl->single_file = true; break;
	case OPT_WAIT: cl->wait = true; break;
	case OPT_LISTEN: cl->listen = optarg; break;
	case OPT_CHECK_INTERVAL: cl->check_interval = optarg; break;
	case OPT_CHECK: cl->check = true; break;
	case OPT_SINCE: cl->since = optarg; break;
	case OPT_CREATE_DATABASE: cl->create_database = true; break;
	case OPT_FORMAT: cl->format = optarg; break;
	case OPT_RULES: cl->rules = true; break;
	case OPT_PENDING: cl->pending = true; break;
	case OPT_LINT: cl->lint = true; break;
	case ':':
		/* only long options take values, so argv names the option */
		usage_error(st, "option %s needs a value", argv[optind - 1]);
		break;
	case '?':
	default: {
		const char *arg = argv[optind - 1];
		bool is_long = arg[0] == '-' && arg[1] == '-';
		/* quoted up to its '=', cut after masking: a password holding
		 * '=' would otherwise lose the '@' that marks it as one */
		char *name = sg_url_redact_alloc(arg);
		name[strcspn(name, "=")] = '\0';
		if (optopt && optopt < 256 && !is_long)
			usage_error(st, "unknown option '-%c'", optopt);
		else if (optopt && is_long && strchr(arg, '='))
			usage_error(st, "option %s takes no value", name);
		else if (is_long && count_prefix_matches(arg + 2) > 1)
			usage_error(st, "ambiguous option '%s' (spell it out)", name);
		else
			usage_error(st, "unknown option '%s'", name);
		free(name);
		break;
	}
	}
	if (c >= OPT_BASELINE_VERSION && c < OPT_END)
		cl->seen[c] = true;
}

/*
 * getopt stops at "--" but then folds the words before and after it
 * together, so the split happens here first: argv[0..dash) is ours,
 * argv[dash+1..] is PROGRAM ARGS untouched (they may look like options).
 */
static int find_dash(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

static void scan_command_line(struct parse *st, struct cmdline *cl, int argc, char **argv)
{
	cl->positional = sg_calloc((size_t)argc + 1, sizeof(char *));
	cl->positional_at = sg_calloc((size_t)argc + 1, sizeof(int));
	/* "-" returns words in order as option 1, independent of
	 * POSIXLY_CORRECT; ":" reports a missing value as ':'. */
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "-:vqhV", long_options, NULL)) != -1)
		take_option(st, cl, c, argv);
}

static void copy_program(struct parse *st, struct sg_config *cfg, const struct command_spec *c, int dash,
			 int argc, char **argv)
{
	if (dash >= argc)
		return;
	if (!(c->flags & PROGRAM_ARGS)) {
		usage_error(st, "'-- PROGRAM' is only accepted after up, wait or verify, not '%s'", c->name);
		return;
	}
	if (dash + 1 >= argc) {
		usage_error(st, "no PROGRAM after '--'");
		return;
	}
	int n = argc - dash - 1;
	cfg->program_argv = sg_calloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		cfg->program_argv[i] = sg_strdup(argv[dash + 1 + i]);
}

/* --help / help: print and succeed. --version / version: main prints
 * (it links the libraries whose versions it reports). */
static bool handle_info(struct parse *st, const struct cmdline *cl, const struct command_spec *c,
			struct sg_config *cfg)
{
	if (cl->help || (c && c->cmd == SG_CMD_HELP)) {
		const struct command_spec *topic = c;
		if (c && c->cmd == SG_CMD_HELP) {
			/* help COMMAND; help --help is help's own page */
			topic = cl->help ? c : NULL;
			if (cl->npositional > 1 && !(topic = find_command(cl->positional[1]))) {
				usage_error(st, "unknown command '%s'", cl->positional[1]);
				return false;
			}
		}
		if (topic)
			print_command_help(stdout, topic);
		else
			print_global_help(stdout);
		fflush(stdout);
		cfg->command = SG_CMD_HELP;
		cfg->command_name = "help";
		return true;
	}
	if (cl->version || (c && c->cmd == SG_CMD_VERSION)) {
		cfg->command = SG_CMD_VERSION;
		cfg->command_name = "version";
		return true;
	}
	return false;
}

/* Edit distance with adjacent transpositions ("stauts" is one edit
 * from "status"), for the suggestion after an unknown command. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > 32 || m > 32)
		return SIZE_MAX;
	size_t d[33][33];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) != b[j - 1];
			size_t best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[n][m];
}

/* "unknown command 'stauts' (did you mean 'status'?)": the nearest
 * command within two edits, when there is one. */
static void unknown_command(struct parse *st, const char *word)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		size_t dist = edit_distance(word, commands[i].name);
		if (dist < best_d && dist < strlen(commands[i].name)) {
			best_d = dist;
			best = commands[i].name;
		}
	}
	if (best)
		usage_error(st, "unknown command '%s' (did you mean '%s'?)", word, best);
	else
		usage_error(st, "unknown command '%s'", word);
}

/* `events --version V` filters by version; everywhere else --version
 * asks for schemagate's own version and takes no value. getopt gave V as
 * the word after --version (a positional) or as --version=V. */
static void take_version_value(struct parse *st, struct cmdline *cl, const struct command_spec *c)
{
	if (!cl->version)
		return;
	if (!c || c->cmd != SG_CMD_EVENTS) {
		if (cl->version_value) {
			usage_error(st, "option --version takes no value");
			cl->version = false;
		}
		return;
	}
	cl->version = false;
	cl->events_version = cl->version_value;
	for (size_t i = 1; !cl->events_version && i < cl->npositional; i++) {
		if (cl->positional_at[i] != cl->version_next)
			continue;
		cl->events_version = cl->positional[i];
		memmove(&cl->positional[i], &cl->positional[i + 1], (cl->npositional - i - 1) * sizeof(char *));
		memmove(&cl->positional_at[i], &cl->positional_at[i + 1], (cl->npositional - i - 1) * sizeof(int));
		cl->npositional--;
	}
	if (!cl->events_version)
		usage_error(st, "option --version needs a value with 'events' (the version whose events to show)");
}

/* A failed parse leaves what main needs to report the failure. */
static void keep_only_logging(struct sg_config *cfg)
{
	enum sg_log_format format = cfg->log_format;
	enum sg_log_level level = cfg->log_level;
	char *termination_log = cfg->termination_log;
	cfg->termination_log = NULL;
	sg_config_free(cfg);
	cfg->log_format = format;
	cfg->log_level = level;
	cfg->termination_log = termination_log;
}

int sg_config_parse(struct sg_config *cfg, int argc, char **argv, struct sg_error *err)
{
	set_defaults(cfg);
	struct parse st = { .argc = argc, .argv = argv };
	struct cmdline cl = {0};
	int dash = find_dash(argc, argv);

	scan_command_line(&st, &cl, dash, argv);
	resolve_logging(&st, &cl, cfg);

	const struct command_spec *c = NULL;
	if (cl.npositional > 0) {
		c = find_command(cl.positional[0]);
		if (!c)
			unknown_command(&st, cl.positional[0]);
	} else if (!cl.help && !cl.version) {
		usage_error(&st, "no command given");
	}
	take_version_value(&st, &cl, c);

	/* --help wins over other mistakes on the line: it is how people find
	 * out what the mistake was. */
	if ((cl.help || cl.version || (c && (c->cmd == SG_CMD_HELP || c->cmd == SG_CMD_VERSION))) &&
	    (!cl.npositional || c)) {
		struct parse info = { .argc = argc, .argv = argv };
		if (handle_info(&info, &cl, c, cfg)) {
			free(cl.positional);
			free(cl.positional_at);
			return 0;
		}
		st = info;
	}

	if (c && !st.failed) {
		cfg->command = c->cmd;
		cfg->command_name = c->name;
		resolve_command(&st, &cl, c, cfg);
		resolve_settings(&st, &cl, cfg);
		if (c->flags & NEEDS_URL)
			resolve_database(&st, &cl, cfg);
		copy_program(&st, cfg, c, dash, argc, argv);
	}
	free(cl.positional);
	free(cl.positional_at);

	if (st.failed) {
		keep_only_logging(cfg);
		if (c && c->cmd != SG_CMD_HELP && c->cmd != SG_CMD_VERSION)
			return sg_fail(err, SG_OUTCOME_USAGE, "%s (see schemagate %s --help)", st.error, c->name);
		return sg_fail(err, SG_OUTCOME_USAGE, "%s (see schemagate --help)", st.error);
	}
	return 0;
}

void sg_config_free(struct sg_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->database_url);
	if (cfg->password) {
		/* do not leave the password lying around in freed heap memory */
		explicit_bzero(cfg->password, strlen(cfg->password));
		free(cfg->password);
	}
	free(cfg->dir);
	free(cfg->table);
	free(cfg->target);
	free(cfg->termination_log);
	free(cfg->baseline_version);
	free(cfg->down_to);
	free(cfg->repair_version);
	free(cfg->new_name);
	free(cfg->dialect);
	free(cfg->listen);
	free(cfg->events_version);
	free(cfg->events_since);
	free(cfg->lint_since);
	if (cfg->program_argv) {
		for (char **a = cfg->program_argv; *a; a++)
			free(*a);
		free(cfg->program_argv);
	}
	memset(cfg, 0, sizeof(*cfg));
}
