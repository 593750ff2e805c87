/*
 * migration_script.c - the one rule for a script's contents
 * (sg_script_prepare): BOM stripped, no-transaction decided (directive or
 * marker), transaction control checked, split when it will run statement
 * by statement; and dbmate's single-file sections.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migration_internal.h"

#define DIRECTIVE_WORD "schemagate:no-transaction"

/* ---- script contents ----------------------------------------------- */

/* Does a line (without its newline) read "-- KEYWORD..."? Returns the text after the keyword. */
static const char *comment_keyword(const char *line, size_t len, const char *keyword)
{
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (len - i < 2 || line[i] != '-' || line[i + 1] != '-')
		return NULL;
	i += 2;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t k = strlen(keyword);
	if (len - i < k || strncasecmp(line + i, keyword, k) != 0)
		return NULL;
	i += k;
	if (i < len && !isspace((unsigned char)line[i]))
		return NULL;   /* "-- schemagate:no-transactional" is not the directive */
	return line + i;
}

static bool has_directive(const char *sql)
{
	for (const char *p = sql; *p;) {
		size_t n = strcspn(p, "\n");
		if (comment_keyword(p, n, DIRECTIVE_WORD))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

enum no_tx { IN_TRANSACTION, NO_TX_BY_DIRECTIVE, NO_TX_BY_MARK };

/*
 * THE no-transaction rule, for up and down scripts alike and whichever
 * command runs them: a "-- schemagate:no-transaction" line in the text,
 * or a mark outside it (pop's .autocommit file name, dbmate's
 * "-- migrate:up/down transaction:false").
 */
static enum no_tx script_no_transaction(const char *text, bool marked)
{
	if (has_directive(text))
		return NO_TX_BY_DIRECTIVE;
	return marked ? NO_TX_BY_MARK : IN_TRANSACTION;
}

/* Blank text[b, e) but keep its newlines: line numbers stay the file's. */
static void blank(char *text, size_t b, size_t e)
{
	for (size_t i = b; i < e; i++)
		if (text[i] != '\n')
			text[i] = ' ';
}

static void drop_statement(struct sg_statement_list *l, size_t i)
{
	free(l->items[i].sql);
	memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(*l->items));
	l->count--;
}

static void first_word_upper(const char *sql, char *out, size_t outsz)
{
	size_t n = 0;
	while (*sql && isalpha((unsigned char)*sql) && n + 1 < outsz)
		out[n++] = (char)toupper((unsigned char)*sql++);
	out[n] = '\0';
}

/*
 * A transactional script runs inside schemagate's own transaction, with
 * its history row. One leading BEGIN and one trailing COMMIT (the wrapper
 * golang-migrate's docs suggest for PostgreSQL files) are absorbed into
 * it; any other top-level transaction control would commit or end that
 * transaction half way and is refused.
 */
static int check_transaction_control(char *sql, struct sg_statement_list *l, enum sg_engine engine,
				     const char *what, enum sg_dialect d, struct report *rep)
{
	size_t n = l->count;
	bool wrapped = n >= 2 && sg_statement_tx_control(l->items[0].sql, engine) == SG_TXC_BEGIN &&
		       sg_statement_tx_control(l->items[n - 1].sql, engine) == SG_TXC_COMMIT;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if ((wrapped && (i == 0 || i == n - 1)) ||
		    sg_statement_tx_control(l->items[i].sql, engine) == SG_TXC_NONE)
			continue;
		char head[64];
		sg_statement_head(l->items[i].sql, head, sizeof(head));
		sg_report_add(rep, LV_ERROR, what, l->items[i].line, d,
			   "top-level transaction control '%s' in a transactional script: schemagate runs each "
			   "migration in one transaction with its history row, so only one leading BEGIN and one "
			   "trailing COMMIT are allowed (they are absorbed); remove it, or add a line "
			   "'" SG_NO_TX_DIRECTIVE "' to run the script statement by statement", head);
		rc = -1;
	}
	if (rc == 0 && wrapped) {
		sg_report_add(rep, LV_WARNING, what, l->items[0].line, d,
			   "BEGIN ... COMMIT wrapper absorbed: schemagate runs the script in its own transaction "
			   "with its history row; the wrapper can go");
		blank(sql, l->items[n - 1].start, l->items[n - 1].delim_end);
		blank(sql, l->items[0].start, l->items[0].delim_end);
		drop_statement(l, n - 1);
		drop_statement(l, 0);
	}
	return rc;
}

/* The split of sql for engine. A text every engine splits alike is split
 * once and copied for the others (a generic file is loaded for each). */
static int split_for(struct split_cache *c, const char *sql, enum sg_engine engine, int first_line,
		     struct sg_statement_list *l, struct sg_error *e)
{
	size_t len = strlen(sql);
	if (c && !c->known) {
		c->known = true;
		c->len = len;
		c->neutral = sg_sql_engine_neutral(sql) && sg_sql_split_at(sql, engine, first_line, &c->list, e) == 0;
	}
	if (!c || !c->neutral || c->len != len)
		return sg_sql_split_at(sql, engine, first_line, l, e);
	sg_statement_list_copy(&c->list, l);
	return 0;
}

/* The rule of sg_script_prepare, reporting instead of failing, on
 * text[0, len) (a section of a file need not end in NUL). first_line is
 * the file line of the text's first line (single-file sections). */
int sg_script_prepare_text(const char *text, size_t len, bool marked, bool stored, bool keep,
			   struct split_cache *cache, enum sg_dialect d, const char *what, int first_line,
			   struct sg_script *out, struct report *rep)
{
	memset(out, 0, sizeof(*out));
	enum sg_engine engine = sg_dialect_engine(d);
	out->sql = sg_strndup(text, len);
	enum no_tx how = script_no_transaction(out->sql, marked);
	out->no_tx = how != IN_TRANSACTION;
	/* a mark outside the text becomes a line in it when the text is
	 * stored (down scripts): `rollback` reads the same rule from it */
	bool prefix = stored && how == NO_TX_BY_MARK;
	if (prefix) {
		char *marked_sql = sg_asprintf("%s\n%s", SG_NO_TX_DIRECTIVE, out->sql);
		free(out->sql);
		out->sql = marked_sql;
	}
	struct sg_statement_list l;
	struct sg_error e = {0};
	if (split_for(cache, out->sql, engine, prefix ? first_line - 1 : first_line, &l, &e) < 0) {
		sg_report_add(rep, LV_ERROR, what, 0, d, "%s", e.msg);
		sg_script_free(out);
		return -1;
	}
	int rc = 0;
	if (!out->no_tx) {
		rc = check_transaction_control(out->sql, &l, engine, what, d, rep);
	} else {
		for (size_t i = 0; i < l.count; i++) {
			if (sg_statement_tx_control(l.items[i].sql, engine) == SG_TXC_NONE)
				continue;
			char w[16];
			first_word_upper(l.items[i].sql, w, sizeof(w));
			sg_report_add(rep, LV_WARNING, what, l.items[i].line, d,
				   "no-transaction script contains %s; each statement already commits on its own", w);
		}
	}
	out->split = out->no_tx || engine == SG_ENGINE_MYSQL;
	out->empty = l.count == 0;
	out->first_line = prefix ? first_line - 1 : first_line;
	if (rc == 0 && (out->split || keep))
		out->statements = l;
	else
		sg_statement_list_free(&l);
	if (rc < 0)
		sg_script_free(out);
	return rc;
}

int sg_script_prepare(const char *text, bool marked, enum sg_dialect dialect, const char *what,
		      struct sg_script *out, struct sg_error *err)
{
	struct report rep = {0};
	int rc = sg_script_prepare_text(text, strlen(text), marked, false, false, NULL, dialect, what, 1, out, &rep);
	if (rc < 0)
		sg_report_fail(&rep, err);
	sg_report_free(&rep);
	return rc;
}

void sg_script_free(struct sg_script *s)
{
	free(s->sql);
	sg_statement_list_free(&s->statements);
	memset(s, 0, sizeof(*s));
}

/* "transaction:false" / "transaction:true"; anything else is refused
 * (dbmate ignores what it does not know; a typo should not run a
 * CREATE INDEX CONCURRENTLY inside a transaction). */
static int marker_options(const char *file, int lineno, const char *opts, const char *end, const char *marker,
			  bool *no_tx, struct report *rep)
{
	while (opts < end) {
		while (opts < end && isspace((unsigned char)*opts))
			opts++;
		size_t w = 0;
		while (opts + w < end && !isspace((unsigned char)opts[w]))
			w++;
		if (w == 0)
			break;
		if (w == 17 && strncasecmp(opts, "transaction:false", w) == 0) {
			*no_tx = true;
		} else if (!(w == 16 && strncasecmp(opts, "transaction:true", w) == 0)) {
			sg_report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, "unknown %s option '%.*s'", marker,
				   (int)w, opts);
			return -1;
		}
		opts += w;
	}
	return 0;
}

/* "-- migrate:up [transaction:false]", then "-- migrate:down [...]". Only
 * comments may precede the up marker. */
int sg_single_file_sections(const struct entry *e, struct sections *s, struct report *rep)
{
	memset(s, 0, sizeof(*s));
	const char *text = e->text, *file = e->file;
	const char *up_end = NULL;
	int lineno = 0;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *next = p[n] ? p + n + 1 : p + n;
		lineno++;
		const char *opts;
		if ((opts = comment_keyword(p, n, "migrate:up")) != NULL) {
			if (s->up || s->down) {
				sg_report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, s->up ? "second '-- migrate:up'"
						   : "'-- migrate:up' after '-- migrate:down'");
				return -1;
			}
			if (marker_options(file, lineno, opts, p + n, "migrate:up", &s->up_no_tx, rep) < 0)
				return -1;
			s->up = next;
			s->up_line = lineno + 1;
		} else if ((opts = comment_keyword(p, n, "migrate:down")) != NULL) {
			if (s->down || !s->up) {
				sg_report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, s->down ? "second '-- migrate:down'"
						   : "'-- migrate:down' before '-- migrate:up'");
				return -1;
			}
			if (marker_options(file, lineno, opts, p + n, "migrate:down", &s->down_no_tx, rep) < 0)
				return -1;
			up_end = p;
			s->down = next;
			s->down_line = lineno + 1;
		} else if (!s->up) {
			size_t i = 0;
			while (i < n && isspace((unsigned char)p[i]))
				i++;
			if (i < n && !(n - i >= 2 && p[i] == '-' && p[i + 1] == '-')) {
				sg_report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, "SQL before '-- migrate:up'");
				return -1;
			}
		}
		p = next;
	}
	if (!s->up) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE, "single-file migration without a '-- migrate:up' line");
		return -1;
	}
	const char *text_end = text + e->len;
	s->up_len = (size_t)((up_end ? up_end : text_end) - s->up);
	if (s->down)
		s->down_len = (size_t)(text_end - s->down);
	return 0;
}

