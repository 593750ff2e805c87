/*
 * lint_mysql.c - the MySQL/MariaDB analyser of `lint`, hand-written.
 *
 * No library parses MySQL's grammar, so this reads the DDL that matters
 * word by word: ALTER TABLE and its comma-separated clauses (ADD, DROP,
 * MODIFY, CHANGE, RENAME, ALTER COLUMN, ALGORITHM, LOCK, table options),
 * CREATE/DROP INDEX, CREATE/DROP TABLE, DROP DATABASE/SCHEMA and RENAME
 * TABLE. A clause it does not know is reported as not understood, never
 * guessed at. Statements come from schemagate's splitter (DELIMITER and
 * routine bodies as the client reads them).
 */
#include "schemagate/lint.h"
#include "schemagate/sqlsplit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct reader {
	const char *s;
	struct sg_lint_token *t;
	size_t n;
	size_t stmt_start, stmt_end;
	struct sg_lint_result *out;
	char **created;
	size_t ncreated;
};

static bool is(const struct reader *r, size_t i, const char *word)
{
	return i < r->n && sg_lint_is(r->s, &r->t[i], word);
}

static bool punct(const struct reader *r, size_t i, char c)
{
	return i < r->n && r->t[i].kind == SG_TOK_PUNCT && r->s[r->t[i].start] == c;
}

static const char *name_at(const struct reader *r, size_t i, char *buf, size_t size)
{
	if (i >= r->n) {
		buf[0] = '\0';
		return buf;
	}
	/* schema.table: the last part */
	while (i + 2 < r->n && punct(r, i + 1, '.'))
		i += 2;
	return sg_lint_name(r->s, &r->t[i], buf, size);
}

/* Past a possibly qualified name starting at i. */
static size_t skip_name(const struct reader *r, size_t i)
{
	i++;
	while (i + 1 < r->n && punct(r, i, '.'))
		i += 2;
	return i;
}

static size_t at(const struct reader *r, size_t i)
{
	return i < r->n ? r->t[i].start : r->stmt_start;
}

static bool created_here(const struct reader *r, const char *name)
{
	for (size_t i = 0; i < r->ncreated; i++)
		if (strcasecmp(r->created[i], name) == 0)
			return true;
	return false;
}

static void add(struct reader *r, const char *rule, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add(struct reader *r, const char *rule, size_t i, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sg_lint_vadd(r->out, rule, at(r, i), r->stmt_start, r->stmt_end, fmt, ap);
	va_end(ap);
}

/* The end of a clause: the next comma outside parentheses. */
static size_t clause_end(const struct reader *r, size_t i)
{
	int depth = 0;
	for (; i < r->n; i++) {
		if (punct(r, i, '('))
			depth++;
		else if (punct(r, i, ')'))
			depth--;
		else if (punct(r, i, ',') && depth == 0)
			break;
	}
	return i;
}

/* Does [i, end) hold the word? */
static bool holds(const struct reader *r, size_t i, size_t end, const char *word)
{
	for (; i < end; i++)
		if (is(r, i, word))
			return true;
	return false;
}

/* Does the column definition [i, end) say NOT NULL (itself, not inside
 * a CHECK (... IS NOT NULL))? */
static bool declares_not_null(const struct reader *r, size_t i, size_t end)
{
	int depth = 0;
	for (size_t k = i; k < end; k++) {
		if (punct(r, k, '('))
			depth++;
		else if (punct(r, k, ')'))
			depth--;
		else if (depth == 0 && k + 1 < end && is(r, k, "NOT") && is(r, k + 1, "NULL") && !is(r, k - 1, "IS"))
			return true;
	}
	return false;
}

/* A column definition at i (its name) to end: NOT NULL without DEFAULT? */
static void check_new_column(struct reader *r, const char *table, size_t i, size_t end)
{
	char col[128];
	name_at(r, i, col, sizeof(col));
	bool not_null = declares_not_null(r, i + 1, end);
	bool has_default = holds(r, i, end, "DEFAULT") || holds(r, i, end, "AUTO_INCREMENT") ||
			   holds(r, i, end, "GENERATED") || holds(r, i, end, "AS");
	if (not_null && !has_default && !created_here(r, table))
		add(r, "adding-required-field", i, "column %s of %s", col, table);
	if (holds(r, i, end, "UNIQUE") && !created_here(r, table))
		add(r, "disallowed-unique-constraint", i, "column %s of %s", col, table);
}

/* MODIFY/CHANGE: the column's new definition starts at def. The old one
 * is not visible offline, so a restated NOT NULL counts as a new one. */
static void check_redefined_column(struct reader *r, const char *table, size_t name, size_t def, size_t end)
{
	char col[128];
	name_at(r, name, col, sizeof(col));
	if (is(r, def, "ENUM") || is(r, def, "SET"))
		add(r, "enum-set-change", name, "column %s of %s", col, table);
	else
		add(r, "changing-column-type", name, "column %s of %s is restated as %.*s", col, table,
		    def < end ? (int)r->t[def].len : 1, def < end ? r->s + r->t[def].start : "?");
	if (declares_not_null(r, def, end) && !holds(r, def, end, "PRIMARY"))
		add(r, "adding-not-nullable-field", name, "column %s of %s is restated NOT NULL", col, table);
}

static void alter_table(struct reader *r, size_t i)
{
	char table[128];
	size_t tname = i;
	name_at(r, tname, table, sizeof(table));
	i = skip_name(r, i);
	bool fresh = created_here(r, table);
	bool index_build = false, may_copy = false, lock_none = false, online_algorithm = false;
	size_t index_at = 0, copy_at = 0;
	while (i < r->n) {
		size_t end = clause_end(r, i);
		size_t c = i;
		if (is(r, c, "ADD")) {
			c++;
			if (is(r, c, "CONSTRAINT")) {
				c++;
				if (!is(r, c, "UNIQUE") && !is(r, c, "PRIMARY") && !is(r, c, "FOREIGN") && !is(r, c, "CHECK"))
					c++;   /* the constraint's name */
			}
			if (is(r, c, "UNIQUE")) {
				if (!fresh)
					add(r, "disallowed-unique-constraint", c, "on %s", table);
				index_build = true;
				index_at = c;
			} else if (is(r, c, "INDEX") || is(r, c, "KEY") || is(r, c, "FULLTEXT") || is(r, c, "SPATIAL")) {
				index_build = true;
				index_at = c;
			} else if (is(r, c, "PRIMARY") || is(r, c, "FOREIGN") || is(r, c, "CHECK")) {
				may_copy = true;
				copy_at = c;
			} else if (is(r, c, "PARTITION")) {
				may_copy = true;
				copy_at = c;
			} else {
				if (is(r, c, "COLUMN"))
					c++;
				if (is(r, c, "IF") && is(r, c + 1, "NOT") && is(r, c + 2, "EXISTS"))
					c += 3;
				if (punct(r, c, '(')) {
					/* ADD (a INT, b INT): each definition up to a top-level comma */
					size_t k = c + 1;
					while (k < end && !punct(r, k, ')')) {
						size_t e = k;
						int depth = 0;
						for (; e < end; e++) {
							if (punct(r, e, '('))
								depth++;
							else if (punct(r, e, ')') && depth-- == 0)
								break;
							else if (punct(r, e, ',') && depth == 0)
								break;
						}
						check_new_column(r, table, k, e);
						k = punct(r, e, ',') ? e + 1 : e;
					}
				} else {
					check_new_column(r, table, c, end);
				}
			}
		} else if (is(r, c, "DROP")) {
			c++;
			if (is(r, c, "PRIMARY")) {
				may_copy = true;
				copy_at = c;
			} else if (is(r, c, "INDEX") || is(r, c, "KEY") || is(r, c, "FOREIGN") || is(r, c, "CONSTRAINT") ||
				   is(r, c, "CHECK") || is(r, c, "PARTITION")) {
				/* in place, metadata only */
			} else {
				if (is(r, c, "COLUMN"))
					c++;
				if (is(r, c, "IF") && is(r, c + 1, "EXISTS"))
					c += 2;
				char col[128];
				add(r, "ban-drop-column", c, "column %s of %s", name_at(r, c, col, sizeof(col)), table);
			}
		} else if (is(r, c, "MODIFY")) {
			c++;
			if (is(r, c, "COLUMN"))
				c++;
			if (!fresh)
				check_redefined_column(r, table, c, c + 1, end);
			may_copy = true;
			copy_at = i;
		} else if (is(r, c, "CHANGE")) {
			c++;
			if (is(r, c, "COLUMN"))
				c++;
			char from[128], to[128];
			name_at(r, c, from, sizeof(from));
			name_at(r, c + 1, to, sizeof(to));
			if (!fresh && strcasecmp(from, to) != 0)
				add(r, "renaming-column", c, "%s.%s to %s", table, from, to);
			if (!fresh)
				check_redefined_column(r, table, c, c + 2, end);
			may_copy = true;
			copy_at = i;
		} else if (is(r, c, "RENAME")) {
			c++;
			if (is(r, c, "COLUMN")) {
				char from[128], to[128];
				name_at(r, c + 1, from, sizeof(from));
				name_at(r, c + 3, to, sizeof(to));
				if (!fresh)
					add(r, "renaming-column", c + 1, "%s.%s to %s", table, from, to);
			} else if (is(r, c, "INDEX") || is(r, c, "KEY")) {
				/* in place */
			} else {
				if (is(r, c, "TO") || is(r, c, "AS"))
					c++;
				char to[128];
				if (!fresh)
					add(r, "renaming-table", 0, "%s to %s", table, name_at(r, c, to, sizeof(to)));
			}
		} else if (is(r, c, "ALTER")) {
			c++;
			if (is(r, c, "COLUMN"))
				c++;
			if (is(r, c + 1, "DROP") && is(r, c + 2, "DEFAULT") && !fresh) {
				char col[128];
				add(r, "ban-drop-default", c, "column %s of %s", name_at(r, c, col, sizeof(col)), table);
			} else if (!is(r, c + 1, "SET") && !is(r, c + 1, "DROP")) {
				add(r, "not-understood", i, "ALTER TABLE %s: an ALTER clause schemagate does not read", table);
			}
		} else if (is(r, c, "ALGORITHM")) {
			size_t v = punct(r, c + 1, '=') ? c + 2 : c + 1;
			online_algorithm = is(r, v, "INSTANT") || is(r, v, "INPLACE") || is(r, v, "NOCOPY");
		} else if (is(r, c, "LOCK")) {
			size_t v = punct(r, c + 1, '=') ? c + 2 : c + 1;
			lock_none = is(r, v, "NONE");
		} else if (is(r, c, "CONVERT") || is(r, c, "ENGINE") || is(r, c, "FORCE") || is(r, c, "ORDER")) {
			may_copy = true;
			copy_at = c;
		} else if (is(r, c, "COMMENT") || is(r, c, "AUTO_INCREMENT") || is(r, c, "DEFAULT") ||
			   is(r, c, "CHARACTER") || is(r, c, "CHARSET") || is(r, c, "COLLATE") || is(r, c, "ROW_FORMAT") ||
			   is(r, c, "KEY_BLOCK_SIZE") || is(r, c, "STATS_PERSISTENT") || is(r, c, "ENABLE") ||
			   is(r, c, "DISABLE") || is(r, c, "WITH") || is(r, c, "WITHOUT")) {
			/* table options: metadata only */
		} else if (c < end) {
			add(r, "not-understood", i, "ALTER TABLE %s: a clause schemagate does not read", table);
		}
		i = end < r->n ? end + 1 : end;
	}
	if (fresh)
		return;
	if (index_build && !lock_none)
		add(r, "require-lock-none", index_at, "on %s", table);
	if (may_copy && !online_algorithm)
		add(r, "require-online-alter", copy_at, "on %s", table);
}

static void create_index(struct reader *r, size_t i)
{
	bool unique = is(r, i, "UNIQUE");
	while (i < r->n && !is(r, i, "ON"))
		i++;
	if (i >= r->n) {
		add(r, "not-understood", 0, "CREATE INDEX without ON");
		return;
	}
	char table[128];
	name_at(r, i + 1, table, sizeof(table));
	if (created_here(r, table))
		return;
	if (unique)
		add(r, "adding-unique-index", 0, "on %s", table);
	bool lock_none = false;
	for (size_t k = i; k + 1 < r->n; k++)
		if (is(r, k, "LOCK")) {
			size_t v = punct(r, k + 1, '=') ? k + 2 : k + 1;
			lock_none |= is(r, v, "NONE");
		}
	if (!lock_none)
		add(r, "require-lock-none", 0, "on %s", table);
}

static void statement(struct reader *r)
{
	char name[128];
	size_t i = 0;
	if (is(r, 0, "CREATE")) {
		i = 1;
		if (is(r, i, "OR") && is(r, i + 1, "REPLACE"))
			i += 2;
		if (is(r, i, "TEMPORARY"))
			return;
		if (is(r, i, "TABLE")) {
			i++;
			if (is(r, i, "IF") && is(r, i + 1, "NOT") && is(r, i + 2, "EXISTS"))
				i += 3;
			name_at(r, i, name, sizeof(name));
			r->created = sg_realloc(r->created, (r->ncreated + 1) * sizeof(*r->created));
			r->created[r->ncreated++] = sg_strdup(name);
		} else if (is(r, i, "INDEX") || ((is(r, i, "UNIQUE") || is(r, i, "FULLTEXT") || is(r, i, "SPATIAL")) &&
						  is(r, i + 1, "INDEX"))) {
			create_index(r, i);
		} else if (is(r, i, "ONLINE") || is(r, i, "OFFLINE")) {
			create_index(r, i + 1);
		}
	} else if (is(r, 0, "ALTER")) {
		i = 1;
		if (is(r, i, "ONLINE") || is(r, i, "IGNORE"))
			i++;
		if (is(r, i, "TABLE"))
			alter_table(r, i + 1);
	} else if (is(r, 0, "DROP")) {
		if (is(r, 1, "TABLE")) {
			i = 2;
			if (is(r, i, "IF") && is(r, i + 1, "EXISTS"))
				i += 2;
			add(r, "ban-drop-table", 0, "%s", name_at(r, i, name, sizeof(name)));
		} else if (is(r, 1, "DATABASE") || is(r, 1, "SCHEMA")) {
			add(r, "ban-drop-database", 0, "%s", "");
		}
	} else if (is(r, 0, "RENAME") && is(r, 1, "TABLE")) {
		char to[128];
		name_at(r, 2, name, sizeof(name));
		size_t k = skip_name(r, 2);
		if (is(r, k, "TO"))
			k++;
		if (!created_here(r, name))
			add(r, "renaming-table", 0, "%s to %s", name, name_at(r, k, to, sizeof(to)));
	}
}

/* No transaction question here: MySQL DDL commits implicitly either way. */
void sg_lint_mysql(const char *script, const struct sg_statement_list *l, struct sg_lint_result *out)
{
	struct reader r = {.s = script, .out = out};
	for (size_t k = 0; k < l->count; k++) {
		r.stmt_start = l->items[k].start;
		r.stmt_end = l->items[k].end;
		r.n = sg_lint_tokenize(script, r.stmt_start, r.stmt_end, true, &r.t);
		statement(&r);
		free(r.t);
		r.t = NULL;
	}
	for (size_t k = 0; k < r.ncreated; k++)
		free(r.created[k]);
	free(r.created);
}
