/*
 * config_env.h - every environment variable config.c reads or SPEC
 * section 2 names, and POSIXLY_CORRECT (it changes getopt). Tests of the
 * configuration clear them all first: the machine may export any.
 */
#ifndef SG_CONFIG_ENV_H
#define SG_CONFIG_ENV_H

static const char *const config_env_names[] = {
	"DATABASE_URL", "DATABASE_URL_FILE", "DATABASE_PASSWORD_FILE", "SCHEMAGATE_DIR",
	"SCHEMAGATE_TABLE", "SCHEMAGATE_TARGET", "SCHEMAGATE_CONNECT_TIMEOUT",
	"SCHEMAGATE_LOCK_TIMEOUT", "SCHEMAGATE_POLL_INTERVAL", "SCHEMAGATE_TIMEOUT",
	"SCHEMAGATE_LOCK", "SCHEMAGATE_LOCK_LEASE", "SCHEMAGATE_DDL_LOCK_TIMEOUT",
	"SCHEMAGATE_STRICT", "SCHEMAGATE_LOG_FORMAT", "SCHEMAGATE_LOG_LEVEL", "POSIXLY_CORRECT",
	"SCHEMAGATE_ADOPT", "SCHEMAGATE_STOP_GRACE", "SCHEMAGATE_LISTEN", "SCHEMAGATE_CHECK_INTERVAL",
};
#define CONFIG_ENV_COUNT (sizeof(config_env_names) / sizeof(config_env_names[0]))

#endif
