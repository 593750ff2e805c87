/*
 * url.h - database URLs (SPEC section 2).
 *
 * postgres://, postgresql://, mysql://, mariadb://, sqlite:PATH,
 * sqlite:///ABS. User and password are percent-decoded.
 */
#ifndef SCHEMAGATE_URL_H
#define SCHEMAGATE_URL_H

#include "schemagate/common.h"

enum sg_engine { SG_ENGINE_NONE = 0, SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE };

/* The SQL a server speaks, which decides the migration files it gets:
 * MariaDB is the MySQL engine with its own dialect tag (SPEC section 3). */
enum sg_dialect {
	SG_DIALECT_NONE = 0,
	SG_DIALECT_POSTGRES,
	SG_DIALECT_MYSQL,
	SG_DIALECT_MARIADB,
	SG_DIALECT_SQLITE,
};

struct sg_url_param {
	char *key, *value;   /* percent-decoded */
};

/* One entry of the host list; host NULL if absent, port 0 if absent. */
struct sg_url_host {
	char *host;          /* percent-decoded; IPv6 without brackets */
	int port;
};

/* Everything owned by the struct; sg_url_free() releases it. */
struct sg_url {
	enum sg_engine engine;
	char *scheme;        /* as written: "postgresql" */
	char *user;          /* NULL if absent */
	char *password;      /* user info or ?password= (not kept in params); NULL if absent */
	char *host;          /* NULL if absent; IPv6 without brackets */
	int port;            /* 0 if absent */
	/* every host[:port] in order (libpq's host1:port1,host2:port2,
	 * PostgreSQL only); host and port above are the first entry's */
	struct sg_url_host *hosts;
	size_t nhosts;
	char *database;      /* path without leading '/', NULL if absent */
	char *path;          /* sqlite: file path; NULL otherwise */
	struct sg_url_param *params;
	size_t nparams;
	char *redacted;      /* "postgres://user:***@host:5432/db" for messages */
};

int sg_url_parse(const char *text, struct sg_url *url, struct sg_error *err);
void sg_url_free(struct sg_url *url);
const char *sg_url_param(const struct sg_url *url, const char *key);  /* NULL if absent */
/* A URL's text for a message (out, outsz: as sg_redact): its passwords
 * masked where sg_url_parse finds them, whatever bytes they hold, then
 * sg_redact. For text that holds URLs the user gave (each running to the
 * next one's scheme); sg_redact alone finds URLs in free text and stops
 * at a space or a quote. */
void sg_url_redact_text(const char *text, char *out, size_t outsz);
/* The same, malloc'd. */
char *sg_url_redact_alloc(const char *text);
/* Register the password and every password-like query value (sslpassword)
 * with the log's redaction, so that no message can print them. */
void sg_url_register_secrets(const struct sg_url *url);
const char *sg_engine_name(enum sg_engine e);  /* "postgres", "mysql", "sqlite" */
/* Percent-decode into a new string; NULL on malformed escapes. */
char *sg_percent_decode(const char *s, size_t n);

#endif
