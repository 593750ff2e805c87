/*
 * sqlsplit.c - split a migration script into statements on the client.
 *
 * The server never sees the script whole when statements must run one at a
 * time (MySQL, whose DDL commits implicitly, and no-transaction scripts), so
 * the split has to agree with each engine's own lexer about where a quote,
 * a comment or a routine body ends. One scanner walks the text; a small
 * per-engine rule table says which constructs exist. Leading comments are
 * not part of a statement, so statement text and line numbers point at the
 * SQL itself, and a script that is only comments yields no statements.
 */
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What each engine's lexer understands. */
struct lexer_rules {
	bool backslash_in_strings;   /* MySQL: '\'' escapes inside '...' and "..." */
	bool double_quote_is_string; /* MySQL: "..." is a string (same rules as '...') */
	bool backticks;              /* `quoted identifiers` */
	bool brackets;               /* SQLite: [quoted identifiers] */
	bool dollar_quotes;          /* PostgreSQL: $tag$...$tag$ */
	bool escape_strings;         /* PostgreSQL: E'...' with backslash escapes */
	bool nested_comments;        /* PostgreSQL: / * / * * / * / nest */
	bool hash_comments;          /* MySQL: # to end of line */
	bool dash_needs_space;       /* MySQL: "--" starts a comment only before whitespace */
	bool delimiter_command;      /* MySQL client: DELIMITER xx */
	bool executable_comments;    /* MySQL: / *! ... * / is SQL, not a comment */
	bool trigger_bodies;         /* SQLite: CREATE TRIGGER ... BEGIN ...; END; */
};

static const struct lexer_rules postgres_rules = {
	.dollar_quotes = true,
	.escape_strings = true,
	.nested_comments = true,
};

static const struct lexer_rules mysql_rules = {
	.backslash_in_strings = true,
	.double_quote_is_string = true,
	.backticks = true,
	.hash_comments = true,
	.dash_needs_space = true,
	.delimiter_command = true,
	.executable_comments = true,
};

static const struct lexer_rules sqlite_rules = {
	.backticks = true,
	.brackets = true,
	.trigger_bodies = true,
};

/* Engine unknown (lint of a generic file): the common subset. */
static const struct lexer_rules generic_rules = {
	.backticks = true,
};

static const struct lexer_rules *rules_for(enum sg_engine engine)
{
	switch (engine) {
	case SG_ENGINE_POSTGRES:
		return &postgres_rules;
	case SG_ENGINE_MYSQL:
		return &mysql_rules;
	case SG_ENGINE_SQLITE:
		return &sqlite_rules;
	default:
		return &generic_rules;
	}
}

/*
 * SQLite's CREATE TRIGGER body holds semicolons; the statement ends only at
 * "END ;" where END is the first token after a semicolon (the same state
 * machine as sqlite3_complete(), so CASE ... END inside the body is fine).
 */
enum trigger_state {
	TRIG_START,     /* no token yet */
	TRIG_CREATE,    /* saw CREATE [TEMP|TEMPORARY] */
	TRIG_NORMAL,    /* an ordinary statement */
	TRIG_BODY,      /* inside CREATE TRIGGER, before/after the body */
	TRIG_SEMI,      /* a ';' inside the trigger */
	TRIG_END,       /* END right after a ';' */
};

struct splitter {
	const char *s;
	size_t len, pos;
	const struct lexer_rules *rules;
	char delimiter[32];
	size_t delimiter_len;
	/* current statement: start offset, or SIZE_MAX while only blanks/comments seen */
	size_t start;
	int start_line;
	enum trigger_state trig;
	/* lazy line counting: line number at offset counted_pos */
	size_t counted_pos;
	int counted_line;
	struct sg_statement_list *out;
	struct sg_error *err;
};

static int line_at(struct splitter *sp, size_t pos)
{
	if (pos < sp->counted_pos) {
		sp->counted_pos = 0;
		sp->counted_line = 1;
	}
	for (; sp->counted_pos < pos; sp->counted_pos++)
		if (sp->s[sp->counted_pos] == '\n')
			sp->counted_line++;
	return sp->counted_line;
}

static bool is_ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Mark the current position as statement content. */
static void content_at(struct splitter *sp, size_t pos)
{
	if (sp->start == SIZE_MAX) {
		sp->start = pos;
		sp->start_line = line_at(sp, pos);
	}
}

static void emit(struct splitter *sp, size_t end)
{
	if (sp->start != SIZE_MAX) {
		size_t b = sp->start;
		while (end > b && isspace((unsigned char)sp->s[end - 1]))
			end--;
		if (end > b) {
			struct sg_statement_list *l = sp->out;
			l->items = sg_realloc(l->items, (l->count + 1) * sizeof(*l->items));
			l->items[l->count].sql = sg_strndup(sp->s + b, end - b);
			l->items[l->count].line = sp->start_line;
			l->count++;
		}
	}
	sp->start = SIZE_MAX;
	sp->trig = TRIG_START;
}

static int unterminated(struct splitter *sp, const char *what, size_t at)
{
	return sg_fail(sp->err, SG_EXIT_USAGE, "unterminated %s starting at line %d", what, line_at(sp, at));
}

/* Skip a quoted run starting at sp->pos (the opening quote). */
static int skip_quoted(struct splitter *sp, char close, bool backslash, bool doubled, const char *what)
{
	size_t open = sp->pos;
	size_t i = sp->pos + 1;
	while (i < sp->len) {
		char c = sp->s[i];
		if (backslash && c == '\\' && i + 1 < sp->len) {
			i += 2;
			continue;
		}
		if (c == close) {
			if (doubled && i + 1 < sp->len && sp->s[i + 1] == close) {
				i += 2;
				continue;
			}
			sp->pos = i + 1;
			return 0;
		}
		i++;
	}
	return unterminated(sp, what, open);
}

/* $tag$ at sp->pos? Returns the tag length including both '$', or 0. */
static size_t dollar_tag_len(const struct splitter *sp)
{
	size_t i = sp->pos;
	if (i > 0 && is_ident_char((unsigned char)sp->s[i - 1]))
		return 0;   /* part of an identifier such as foo$bar */
	i++;
	if (i < sp->len && isdigit((unsigned char)sp->s[i]))
		return 0;   /* $1 is a parameter */
	while (i < sp->len && sp->s[i] != '$') {
		unsigned char c = (unsigned char)sp->s[i];
		if (!(isalnum(c) || c == '_' || c >= 0x80))
			return 0;
		i++;
	}
	if (i >= sp->len)
		return 0;
	return i - sp->pos + 1;
}

static int skip_dollar_quote(struct splitter *sp, size_t taglen)
{
	const char *tag = sp->s + sp->pos;
	const char *body = tag + taglen;
	const char *endp = memmem(body, sp->len - (size_t)(body - sp->s), tag, taglen);
	if (!endp)
		return unterminated(sp, "dollar-quoted string", sp->pos);
	sp->pos = (size_t)(endp - sp->s) + taglen;
	return 0;
}

static int skip_block_comment(struct splitter *sp)
{
	size_t open = sp->pos;
	size_t i = sp->pos + 2;
	int depth = 1;
	while (i < sp->len) {
		if (sp->s[i] == '*' && i + 1 < sp->len && sp->s[i + 1] == '/') {
			i += 2;
			if (--depth == 0) {
				sp->pos = i;
				return 0;
			}
			continue;
		}
		if (sp->rules->nested_comments && sp->s[i] == '/' && i + 1 < sp->len && sp->s[i + 1] == '*') {
			depth++;
			i += 2;
			continue;
		}
		i++;
	}
	return unterminated(sp, "/* comment", open);
}

static void skip_line(struct splitter *sp)
{
	const char *nl = memchr(sp->s + sp->pos, '\n', sp->len - sp->pos);
	sp->pos = nl ? (size_t)(nl - sp->s) + 1 : sp->len;
}

static bool at_line_start(const struct splitter *sp)
{
	size_t i = sp->pos;
	while (i > 0 && (sp->s[i - 1] == ' ' || sp->s[i - 1] == '\t'))
		i--;
	return i == 0 || sp->s[i - 1] == '\n';
}

/*
 * MySQL client command "DELIMITER xx" at the start of a line, where a new
 * statement would begin (like the mysql client, so a column named
 * "delimiter" inside a CREATE TABLE is left alone). It is not a statement.
 */
static int try_delimiter_command(struct splitter *sp, bool *handled)
{
	*handled = false;
	if (sp->start != SIZE_MAX || !at_line_start(sp) || sp->len - sp->pos < 10 || strncasecmp(sp->s + sp->pos, "delimiter", 9) != 0 ||
	    !(sp->s[sp->pos + 9] == ' ' || sp->s[sp->pos + 9] == '\t'))
		return 0;
	int line = line_at(sp, sp->pos);
	size_t i = sp->pos + 9;
	while (i < sp->len && (sp->s[i] == ' ' || sp->s[i] == '\t'))
		i++;
	size_t b = i;
	while (i < sp->len && !isspace((unsigned char)sp->s[i]))
		i++;
	if (i == b)
		return sg_fail(sp->err, SG_EXIT_USAGE, "line %d: DELIMITER without a delimiter", line);
	if (i - b >= sizeof(sp->delimiter))
		return sg_fail(sp->err, SG_EXIT_USAGE, "line %d: DELIMITER too long", line);
	memcpy(sp->delimiter, sp->s + b, i - b);
	sp->delimiter[i - b] = '\0';
	sp->delimiter_len = i - b;
	sp->pos = i;
	skip_line(sp);
	*handled = true;
	return 0;
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* Feed one top-level token to the SQLite trigger state machine. */
static void trigger_token(struct splitter *sp, const char *w, size_t n)
{
	switch (sp->trig) {
	case TRIG_START:
		if (w && (word_is(w, n, "create")))
			sp->trig = TRIG_CREATE;
		else if (w && word_is(w, n, "explain"))
			sp->trig = TRIG_START;
		else
			sp->trig = TRIG_NORMAL;
		break;
	case TRIG_CREATE:
		if (w && (word_is(w, n, "temp") || word_is(w, n, "temporary")))
			break;
		sp->trig = w && word_is(w, n, "trigger") ? TRIG_BODY : TRIG_NORMAL;
		break;
	case TRIG_SEMI:
		sp->trig = w && word_is(w, n, "end") ? TRIG_END : TRIG_BODY;
		break;
	case TRIG_END:
		sp->trig = TRIG_BODY;
		break;
	default:
		break;
	}
}

/* A delimiter at sp->pos ends the statement, unless inside a trigger body. */
static bool delimiter_ends_statement(struct splitter *sp)
{
	if (!sp->rules->trigger_bodies)
		return true;
	switch (sp->trig) {
	case TRIG_BODY:
	case TRIG_SEMI:
		sp->trig = TRIG_SEMI;
		return false;
	default:
		return true;
	}
}

static int scan(struct splitter *sp)
{
	const struct lexer_rules *r = sp->rules;
	while (sp->pos < sp->len) {
		const char *p = sp->s + sp->pos;
		char c = *p;
		char next = sp->pos + 1 < sp->len ? p[1] : '\0';

		if (r->delimiter_command && (c == 'd' || c == 'D')) {
			bool handled;
			if (try_delimiter_command(sp, &handled) < 0)
				return -1;
			if (handled)
				continue;
		}
		if (isspace((unsigned char)c)) {
			sp->pos++;
			continue;
		}
		if (c == '-' && next == '-') {
			char after = sp->pos + 2 < sp->len ? p[2] : ' ';
			if (!r->dash_needs_space || isspace((unsigned char)after) || iscntrl((unsigned char)after)) {
				skip_line(sp);
				continue;
			}
		}
		if (c == '#' && r->hash_comments) {
			skip_line(sp);
			continue;
		}
		if (c == '/' && next == '*') {
			bool is_sql = r->executable_comments && sp->pos + 2 < sp->len &&
				      (p[2] == '!' || p[2] == '+' || (p[2] == 'M' && sp->pos + 3 < sp->len && p[3] == '!'));
			if (is_sql)
				content_at(sp, sp->pos);
			if (skip_block_comment(sp) < 0)
				return -1;
			continue;
		}
		if (sp->delimiter_len && strncmp(p, sp->delimiter, sp->delimiter_len) == 0) {
			if (delimiter_ends_statement(sp))
				emit(sp, sp->pos);
			sp->pos += sp->delimiter_len;
			continue;
		}

		/* Everything from here on is statement content. */
		content_at(sp, sp->pos);
		int rc = 0;
		bool word = false;
		if (c == '\'') {
			bool e = r->escape_strings && sp->pos > 0 && (p[-1] == 'E' || p[-1] == 'e') &&
				 (sp->pos < 2 || !is_ident_char((unsigned char)p[-2]));
			rc = skip_quoted(sp, '\'', r->backslash_in_strings || e, true, "quoted string");
		} else if (c == '"') {
			rc = skip_quoted(sp, '"', r->double_quote_is_string && r->backslash_in_strings, true,
					 r->double_quote_is_string ? "quoted string" : "quoted identifier");
		} else if (c == '`' && r->backticks) {
			rc = skip_quoted(sp, '`', false, true, "`quoted identifier`");
		} else if (c == '[' && r->brackets) {
			rc = skip_quoted(sp, ']', false, false, "[quoted identifier]");
		} else if (c == '$' && r->dollar_quotes && dollar_tag_len(sp) > 0) {
			rc = skip_dollar_quote(sp, dollar_tag_len(sp));
		} else if (is_ident_char((unsigned char)c)) {
			size_t b = sp->pos;
			while (sp->pos < sp->len && is_ident_char((unsigned char)sp->s[sp->pos]))
				sp->pos++;
			if (r->trigger_bodies)
				trigger_token(sp, sp->s + b, sp->pos - b);
			word = true;
		} else {
			sp->pos++;
		}
		if (rc < 0)
			return -1;
		if (!word && r->trigger_bodies)
			trigger_token(sp, NULL, 0);
	}
	emit(sp, sp->len);
	return 0;
}

int sg_sql_split(const char *script, enum sg_engine engine, struct sg_statement_list *out, struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	struct splitter sp = {
		.s = script,
		.len = strlen(script),
		.rules = rules_for(engine),
		.delimiter = ";",
		.delimiter_len = 1,
		.start = SIZE_MAX,
		.counted_line = 1,
		.out = out,
		.err = err,
	};
	if (scan(&sp) < 0) {
		sg_statement_list_free(out);
		return -1;
	}
	return 0;
}

void sg_statement_list_free(struct sg_statement_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i].sql);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

void sg_statement_head(const char *sql, char *out, size_t outsz)
{
	if (outsz == 0)
		return;
	while (*sql && isspace((unsigned char)*sql))
		sql++;
	size_t line = strcspn(sql, "\r\n");
	bool more = sql[line] != '\0';
	while (line > 0 && isspace((unsigned char)sql[line - 1]))
		line--;
	if (!more && line < outsz) {
		memcpy(out, sql, line);
		out[line] = '\0';
		return;
	}
	/* Something is left out: keep what fits and say so with "...". */
	size_t keep = line;
	if (keep + 4 > outsz)
		keep = outsz > 4 ? outsz - 4 : 0;
	memcpy(out, sql, keep);
	snprintf(out + keep, outsz - keep, "...");
}
