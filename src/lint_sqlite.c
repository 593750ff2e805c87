/*
 * lint_sqlite.c - the SQLite analyser of `lint`, hand-written.
 *
 * SQLite's parser is not a library either; its ALTER TABLE is small
 * (RENAME TO, RENAME COLUMN, ADD COLUMN, DROP COLUMN), so this reads it
 * word by word, with CREATE/DROP TABLE and CREATE UNIQUE INDEX, and
 * recognises the table rebuild (create a new table, copy, drop the old,
 * rename the new one to the old name) as one change. Another ALTER form
 * is reported as not understood.
 */
#include "schemagate/lint.h"
#include "schemagate/sqlsplit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct name_at {
	char name[128];
	size_t offset, stmt_start, stmt_end;
	bool rebuilt;
};

struct state {
	struct name_at *created, *dropped;
	size_t ncreated, ndropped;
};

static struct name_at *find(struct name_at *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static void push(struct name_at **v, size_t *n, const char *name, size_t offset, size_t ss, size_t se)
{
	*v = sg_realloc(*v, (*n + 1) * sizeof(**v));
	struct name_at *x = &(*v)[(*n)++];
	memset(x, 0, sizeof(*x));
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->offset = offset;
	x->stmt_start = ss;
	x->stmt_end = se;
}

/* The last part of a possibly qualified name at i; *next is past it. */
static const char *qualified(const char *s, const struct sg_lint_token *t, size_t n, size_t i, char *buf, size_t size,
			     size_t *next)
{
	while (i + 2 < n && t[i + 1].kind == SG_TOK_PUNCT && s[t[i + 1].start] == '.')
		i += 2;
	if (next)
		*next = i + 1;
	if (i >= n) {
		buf[0] = '\0';
		return buf;
	}
	return sg_lint_name(s, &t[i], buf, size);
}

static void alter(const char *s, const struct sg_lint_token *t, size_t n, size_t ss, size_t se, struct state *st,
		  struct sg_lint_result *out)
{
	char table[128], a[128], b[128];
	size_t i;
	qualified(s, t, n, 2, table, sizeof(table), &i);
	bool fresh = find(st->created, st->ncreated, table) != NULL;
	size_t here = i < n ? t[i].start : ss;
#define IS(k, w) ((k) < n && sg_lint_is(s, &t[k], (w)))
	if (IS(i, "RENAME") && IS(i + 1, "TO")) {
		qualified(s, t, n, i + 2, a, sizeof(a), NULL);
		struct name_at *old = find(st->dropped, st->ndropped, a);
		if (old && fresh) {
			old->rebuilt = true;
			sg_lint_add(out, "sqlite-table-rebuild", old->offset, old->stmt_start, old->stmt_end,
				    "%s is dropped and %s renamed to take its place", a, table);
		} else if (!fresh) {
			sg_lint_add(out, "renaming-table", ss, ss, se, "%s to %s", table, a);
		}
	} else if (IS(i, "RENAME")) {
		size_t k = IS(i + 1, "COLUMN") ? i + 2 : i + 1;
		if (k < n)
			sg_lint_name(s, &t[k], a, sizeof(a));
		else
			a[0] = '\0';
		if (k + 2 < n)
			sg_lint_name(s, &t[k + 2], b, sizeof(b));
		else
			b[0] = '\0';
		if (!fresh)
			sg_lint_add(out, "renaming-column", k < n ? t[k].start : here, ss, se, "%s.%s to %s", table, a, b);
	} else if (IS(i, "DROP")) {
		size_t k = IS(i + 1, "COLUMN") ? i + 2 : i + 1;
		if (k < n)
			sg_lint_name(s, &t[k], a, sizeof(a));
		else
			a[0] = '\0';
		if (!fresh)
			sg_lint_add(out, "ban-drop-column", k < n ? t[k].start : here, ss, se, "column %s of %s (the table "
				    "is rewritten)", a, table);
	} else if (IS(i, "ADD")) {
		size_t k = IS(i + 1, "COLUMN") ? i + 2 : i + 1;
		bool not_null = false, has_default = false;
		for (size_t j = k + 1; j < n; j++) {
			if (IS(j, "NOT") && IS(j + 1, "NULL"))
				not_null = true;
			if (IS(j, "DEFAULT") || IS(j, "AS"))
				has_default = true;
		}
		if (k < n)
			sg_lint_name(s, &t[k], a, sizeof(a));
		else
			a[0] = '\0';
		if (not_null && !has_default && !fresh)
			sg_lint_add(out, "adding-required-field", k < n ? t[k].start : here, ss, se, "column %s of %s", a,
				    table);
	} else {
		sg_lint_add(out, "not-understood", here, ss, se, "ALTER TABLE %s: a form SQLite's ALTER TABLE does not "
			    "have or schemagate does not read", table);
	}
#undef IS
}

void sg_lint_sqlite(const char *script, const struct sg_statement_list *l, struct sg_lint_result *out)
{
	struct state st = {0};
	for (size_t k = 0; k < l->count; k++) {
		size_t ss = l->items[k].start, se = l->items[k].end;
		struct sg_lint_token *t;
		size_t n = sg_lint_tokenize(script, ss, se, false, &t);
		char name[128];
#define IS(i, w) ((i) < n && sg_lint_is(script, &t[i], (w)))
		if (IS(0, "CREATE")) {
			size_t i = 1;
			if (IS(i, "TEMP") || IS(i, "TEMPORARY"))
				i++;
			bool unique = IS(i, "UNIQUE");
			if (IS(i, "TABLE")) {
				i++;
				if (IS(i, "IF") && IS(i + 1, "NOT") && IS(i + 2, "EXISTS"))
					i += 3;
				qualified(script, t, n, i, name, sizeof(name), NULL);
				push(&st.created, &st.ncreated, name, ss, ss, se);
			} else if (unique && IS(i + 1, "INDEX")) {
				size_t j = i + 2;
				while (j < n && !IS(j, "ON"))
					j++;
				qualified(script, t, n, j + 1, name, sizeof(name), NULL);
				if (j < n && !find(st.created, st.ncreated, name))
					sg_lint_add(out, "adding-unique-index", ss, ss, se, "on %s", name);
			}
		} else if (IS(0, "DROP") && IS(1, "TABLE")) {
			size_t i = 2;
			if (IS(i, "IF") && IS(i + 1, "EXISTS"))
				i += 2;
			qualified(script, t, n, i, name, sizeof(name), NULL);
			push(&st.dropped, &st.ndropped, name, ss, ss, se);
		} else if (IS(0, "ALTER") && IS(1, "TABLE")) {
			alter(script, t, n, ss, se, &st, out);
		}
#undef IS
		free(t);
	}
	/* a drop that was not the old half of a rebuild */
	for (size_t i = 0; i < st.ndropped; i++)
		if (!st.dropped[i].rebuilt && !find(st.created, st.ncreated, st.dropped[i].name))
			sg_lint_add(out, "ban-drop-table", st.dropped[i].offset, st.dropped[i].stmt_start,
				    st.dropped[i].stmt_end, "%s", st.dropped[i].name);
	free(st.created);
	free(st.dropped);
}
