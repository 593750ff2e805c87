/*
 * lint_script.c - lint one script: run it through its engine's analyser
 * (lint_pg.c, lint_mysql.c, lint_sqlite.c), drop what a suppression
 * comment covers (schemagate's, squawk's and Atlas's spellings), place
 * each finding at its file line and column; and `up --lint`'s gate.
 *
 * It sits above the analysers and the rule table (lint_rules.c), which
 * the analysers call to report: the call graph stays a tree.
 */
#include "schemagate/lint.h"
#include "schemagate/migration.h"
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* ---- suppression ---------------------------------------------------- */

/*
 * The three spellings, each "-- WORD [RULE[,RULE]...]" on a comment line:
 * schemagate:lint-ignore, squawk-ignore and atlas:nolint. No rule named
 * means every rule. The comment applies to the statement that follows it
 * (or holds it); before the first statement and followed by a blank line
 * it applies to the whole file, as do squawk-ignore-file and
 * schemagate:lint-ignore-file anywhere. Atlas names may be its analyzer
 * codes (DS103) or classes (destructive); they match the rules whose
 * atlas field holds them.
 */
struct ignore {
	size_t offset;          /* where the comment's word starts */
	size_t applies_from;    /* the statement it applies to starts at or after this... */
	bool file_wide;
	bool atlas;
	char **names;           /* NULL-terminated; empty = every rule */
	size_t nnames;
	bool *used;             /* per name; used[0] for "every rule" */
};

static const struct {
	const char *word;
	bool file_wide, atlas;
} ignore_words[] = {
	{"schemagate:lint-ignore-file", true, false},
	{"schemagate:lint-ignore", false, false},
	{"squawk-ignore-file", true, false},
	{"squawk-ignore", false, false},
	{"atlas:nolint", false, true},
};

static const struct {
	const char *cls;
	const char *prefix;
} atlas_classes[] = {
	{"destructive", "DS"}, {"data_depend", "MF"}, {"incompatible", "BC"}, {"backward_incompatible", "BC"},
	{"concurrent_index", "PG1"}, {"pg", "PG3"}, {"mysql", "MY"},
};

static bool atlas_matches(const char *name, const struct sg_lint_rule *rule)
{
	const char *prefix = name;
	for (size_t i = 0; i < sizeof(atlas_classes) / sizeof(atlas_classes[0]); i++)
		if (strcasecmp(name, atlas_classes[i].cls) == 0)
			prefix = atlas_classes[i].prefix;
	size_t n = strlen(prefix);
	for (const char *a = rule->atlas; *a;) {
		size_t w = strcspn(a, " ");
		/* a code matches itself; a class prefix matches its codes ("PG3xx" rules match PG3...) */
		if (n <= w && strncasecmp(a, prefix, n) == 0 && (n == w || prefix != name))
			return true;
		if (w >= 3 && strncasecmp(a + w - 2, "xx", 2) == 0 && n > w - 2 && strncasecmp(a, prefix, w - 2) == 0)
			return true;   /* "PG3xx" in the table matches PG301, PG302, ... */
		a += w;
		while (*a == ' ')
			a++;
	}
	return false;
}

/* Does the ignore's name k cover rule? */
static bool name_covers(const struct ignore *ig, size_t k, const struct sg_lint_rule *rule)
{
	if (strcasecmp(ig->names[k], rule->id) == 0)
		return true;
	return ig->atlas && atlas_matches(ig->names[k], rule);
}

static void ignore_free(struct ignore *ig)
{
	for (size_t k = 0; k < ig->nnames; k++)
		free(ig->names[k]);
	free(ig->names);
	free(ig->used);
}

/* Is offset p inside one of the statements? (a directive is a comment
 * between statements or a comment line inside one) */
static size_t statement_at_or_after(const struct sg_statement_list *l, size_t p)
{
	for (size_t i = 0; i < l->count; i++)
		if (l->items[i].end > p)
			return i;
	return l->count;
}

/* Find the directives of a script: "--" comments whose text starts with
 * one of the words. The statements (as split) tell which comments are
 * not inside a string: only comment lines outside statements, or lines
 * of a statement that start with "--", are read. */
static size_t find_ignores(const char *script, const struct sg_statement_list *l, struct ignore **out)
{
	size_t n = 0, cap = 0;
	*out = NULL;
	size_t first_start = l->count ? l->items[0].start : strlen(script);
	for (const char *line = script; *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		const char *p = line;
		while (p < line + len && (*p == ' ' || *p == '\t'))
			p++;
		const char *c = NULL;
		bool trailing = false;
		if (p + 1 < line + len && p[0] == '-' && p[1] == '-') {
			c = p + 2;
		} else {
			/* a trailing comment after a statement's end on the same line ("...; -- squawk-ignore x") */
			const char *dash = NULL;
			for (const char *q = line; q + 1 < line + len; q++)
				if (q[0] == '-' && q[1] == '-') {
					dash = q;
					break;
				}
			size_t at = dash ? (size_t)(dash - script) : 0;
			size_t si = dash ? statement_at_or_after(l, at) : l->count;
			bool outside = dash && (si == l->count || l->items[si].start > at);
			if (outside) {
				c = dash + 2;
				trailing = true;
			}
		}
		if (c) {
			while (c < line + len && (*c == ' ' || *c == '\t'))
				c++;
			for (size_t w = 0; w < sizeof(ignore_words) / sizeof(ignore_words[0]); w++) {
				size_t wl = strlen(ignore_words[w].word);
				if ((size_t)(line + len - c) < wl || strncasecmp(c, ignore_words[w].word, wl) != 0)
					continue;
				const char *rest = c + wl;
				if (rest < line + len && !isspace((unsigned char)*rest) && *rest != ':')
					continue;   /* another word that starts the same */
				if (rest < line + len && *rest == ':')
					rest++;   /* squawk accepts "squawk-ignore: rule" too */
				struct ignore ig = {0};
				ig.offset = (size_t)(c - script);
				ig.file_wide = ignore_words[w].file_wide;
				ig.atlas = ignore_words[w].atlas;
				/* names, separated by commas and blanks, up to the line's end */
				char *names = sg_strndup(rest, (size_t)(line + len - rest));
				char *save = NULL;
				for (char *tok = strtok_r(names, ", \t\r", &save); tok; tok = strtok_r(NULL, ", \t\r", &save)) {
					ig.names = sg_realloc(ig.names, (ig.nnames + 1) * sizeof(*ig.names));
					ig.names[ig.nnames++] = sg_strdup(tok);
				}
				free(names);
				ig.used = sg_calloc(ig.nnames + 1, sizeof(bool));
				/* before the first statement and followed by a blank line: the whole file */
				if (!ig.file_wide && ig.offset < first_start) {
					const char *q = eol;
					while (q && q[1] && (size_t)(q + 1 - script) < first_start) {
						const char *r = q + 1;
						while (*r == ' ' || *r == '\t' || *r == '\r')
							r++;
						if (*r == '\n') {
							ig.file_wide = true;
							break;
						}
						q = strchr(r, '\n');
					}
				}
				/* a comment after a statement on its line is about that statement */
				ig.applies_from = trailing ? (size_t)(line - script) : ig.offset;
				if (n == cap) {
					cap = cap ? cap * 2 : 4;
					*out = sg_realloc(*out, cap * sizeof(**out));
				}
				(*out)[n++] = ig;
				break;
			}
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return n;
}

/* Does an ignore cover a hit (marking what it used)? */
static bool ignore_covers(struct ignore *ig, const struct sg_statement_list *l, const struct sg_lint_hit *h)
{
	if (!ig->file_wide) {
		/* the statement the comment applies to: the one holding it, or the next */
		size_t si = statement_at_or_after(l, ig->applies_from);
		if (si == l->count || l->items[si].start != h->stmt_start)
			return false;
	}
	if (ig->nnames == 0) {
		ig->used[0] = true;
		return true;
	}
	bool covered = false;
	for (size_t k = 0; k < ig->nnames; k++)
		if (name_covers(ig, k, h->rule)) {
			ig->used[k] = true;
			covered = true;
		}
	return covered;
}

/* ---- one script ----------------------------------------------------- */

/* Could the script hold an ignore comment? Every spelling contains
 * "-ignore" or "atlas:nolint" (case-insensitive): a scan for their
 * punctuation, not a substring search per script. */
static bool may_hold_ignore(const char *script)
{
	for (const char *p = script; (p = strpbrk(p, "-:")) != NULL; p++)
		if ((*p == '-' && strncasecmp(p + 1, "ignore", 6) == 0) ||
		    (*p == ':' && p - script >= 5 && strncasecmp(p - 5, "atlas:nolint", 12) == 0))
			return true;
	return false;
}

static int compare_hits(const void *pa, const void *pb)
{
	const struct sg_lint_hit *a = pa, *b = pb;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return strcmp(a->rule->id, b->rule->id);
}

/* Line and column (in characters: UTF-8 continuation bytes do not count) of each hit. */
static void place_hits(const char *script, int first_line, struct sg_lint_hit *items, size_t n)
{
	int line = first_line, column = 1;
	size_t p = 0;
	for (size_t i = 0; i < n; i++) {
		for (; p < items[i].offset && script[p]; p++) {
			if (script[p] == '\n') {
				line++;
				column = 1;
			} else if (((unsigned char)script[p] & 0xC0) != 0x80) {
				column++;
			}
		}
		items[i].line = line;
		items[i].column = column;
	}
}

void sg_lint_script(const char *script, enum sg_dialect dialect, bool no_tx, int first_line,
		    const struct sg_statement_list *statements, struct sg_lint_result *out)
{
	enum sg_engine engine = dialect == SG_DIALECT_POSTGRES ? SG_ENGINE_POSTGRES
				: dialect == SG_DIALECT_MYSQL || dialect == SG_DIALECT_MARIADB ? SG_ENGINE_MYSQL
				: dialect == SG_DIALECT_SQLITE ? SG_ENGINE_SQLITE
							       : SG_ENGINE_NONE;
	if (engine == SG_ENGINE_NONE)
		return;   /* generic files are linted as each engine's */
	unsigned engine_bit = engine == SG_ENGINE_POSTGRES ? SG_LINT_POSTGRES
			      : engine == SG_ENGINE_MYSQL  ? SG_LINT_MYSQL
							   : SG_LINT_SQLITE;
	/* One split, for the hand-written analysers and the ignore comments;
	 * PostgreSQL's parser cuts its own statements, so there it is needed
	 * only for a script with an ignore comment (every spelling holds
	 * "-ignore" or "atlas:nolint"). */
	bool ignores = may_hold_ignore(script);
	struct sg_statement_list own = {0};
	struct sg_error e = {0};
	bool split = statements != NULL;
	if (!split && (engine != SG_ENGINE_POSTGRES || ignores)) {
		split = sg_sql_split(script, engine, &own, &e) == 0;
		if (!split)
			memset(&own, 0, sizeof(own));   /* the loader reports what does not split */
	}
	const struct sg_statement_list l = statements ? *statements : own;
	struct sg_lint_result found = {0};
	if (engine == SG_ENGINE_POSTGRES)
		sg_lint_postgres(script, no_tx, &found);
	else if (split && engine == SG_ENGINE_MYSQL)
		sg_lint_mysql(script, &l, &found);
	else if (split)
		sg_lint_sqlite(script, &l, &found);
	struct ignore *igs = NULL;
	size_t nig = ignores ? find_ignores(script, &l, &igs) : 0;
	size_t first_new = out->count;
	for (size_t i = 0; i < found.count; i++) {
		struct sg_lint_hit *h = &found.items[i];
		bool suppressed = false;
		for (size_t k = 0; k < nig; k++)
			suppressed |= ignore_covers(&igs[k], &l, h);
		if (suppressed) {
			free(h->message);
			continue;
		}
		if (out->count == out->cap) {
			out->cap = out->cap ? out->cap * 2 : 8;
			out->items = sg_realloc(out->items, out->cap * sizeof(*out->items));
		}
		out->items[out->count++] = *h;
	}
	free(found.items);
	for (size_t k = 0; k < nig; k++) {
		struct ignore *ig = &igs[k];
		size_t si = statement_at_or_after(&l, ig->offset);
		size_t ss = si < l.count ? l.items[si].start : ig->offset, se = si < l.count ? l.items[si].end : ig->offset;
		if (ig->nnames == 0 && !ig->used[0])
			sg_lint_add(out, "unused-ignore", ig->offset, ss, se, "no finding %s",
				    ig->file_wide ? "in this file" : "on the next statement");
		for (size_t n = 0; n < ig->nnames; n++) {
			if (ig->used[n])
				continue;
			const struct sg_lint_rule *named = sg_lint_rule_find(ig->names[n]);
			if (named && !(named->engines & engine_bit))
				continue;   /* a generic file's ignore of another engine's rule */
			bool known = named != NULL;
			for (size_t r = 0; !known && ig->atlas && r < sg_lint_nrules; r++)
				known = atlas_matches(ig->names[n], &sg_lint_rules[r]);
			sg_lint_add(out, "unused-ignore", ig->offset, ss, se, "%s %s", ig->names[n],
				    !known ? "is not a rule schemagate knows"
				    : ig->file_wide ? "has no finding in this file"
						    : "has no finding on the statement it applies to");
		}
		ignore_free(ig);
	}
	free(igs);
	sg_statement_list_free(&own);
	if (out->count == first_new)
		return;   /* items may be NULL: no pointer arithmetic on it */
	qsort(out->items + first_new, out->count - first_new, sizeof(*out->items), compare_hits);
	place_hits(script, first_line, out->items + first_new, out->count - first_new);
}

int sg_lint_gate(const struct sg_migration *m, enum sg_dialect dialect, struct sg_error *err)
{
	struct sg_lint_result r = {0};
	sg_lint_script(m->up_sql, dialect, m->up_no_tx, m->up_line, m->up_split ? &m->up_statements : NULL, &r);
	int rc = 0;
	for (size_t i = 0; i < r.count && rc == 0; i++) {
		const struct sg_lint_hit *h = &r.items[i];
		if (h->rule->severity == SG_LINT_ERROR)
			rc = sg_fail(err, SG_OUTCOME_INTEGRITY,
				     "up --lint: %s:%d:%d: %s: %s (nothing was applied; fix the migration, or keep it "
				     "deliberately with -- schemagate:lint-ignore %s on the statement)",
				     m->up_file, h->line, h->column, h->rule->id, h->message, h->rule->id);
	}
	sg_lint_result_free(&r);
	return rc;
}
