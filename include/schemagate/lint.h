/*
 * lint.h - `schemagate lint` (SPEC section 3): the directory's problems,
 * all of them, for every dialect.
 */
#ifndef SCHEMAGATE_LINT_H
#define SCHEMAGATE_LINT_H

#include "schemagate/common.h"

/* Every problem of the directory at once, for every dialect (or only for
 * one: dialect is a tag, NULL for all; mysql includes mariadb), on stdout
 * (text, or one JSON document). Returns 0, or -1 (a usage outcome) on
 * errors, and with strict on warnings too. */
int sg_lint(const char *dir, const char *dialect, bool strict, bool json, struct sg_error *err);

#endif
