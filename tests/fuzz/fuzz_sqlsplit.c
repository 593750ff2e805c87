/*
 * fuzz_sqlsplit.c - the statement splitter (src/sqlsplit.c), per engine.
 *
 * Input: byte 0 picks the engine (bits 0-1: PostgreSQL, MySQL, SQLite,
 * none) and the first line number (bits 2-7, plus 1); the rest, up to
 * its first NUL (where the splitter stops), is the script.
 *
 * Properties, every engine:
 *   - the statements are in order and do not overlap; each one's text is
 *     exactly script[start, end), trimmed, never empty; its line is the
 *     first line plus the newlines before start; between end and
 *     delim_end there are blanks, then the delimiter (no blanks in it),
 *     or only blanks for a last statement ended by the end of the script; so
 *     the statements and the separators between them are the script;
 *   - splitting the statements joined again with their own delimiters
 *     (and MySQL DELIMITER commands where the delimiter changes) gives
 *     the same statements;
 *   - a refusal is exit 2 with one line naming a line of the script, and
 *     leaves no list;
 *   - a script sg_sql_engine_neutral() calls neutral is split exactly
 *     alike (statements, offsets, lines, or a refusal) by PostgreSQL's,
 *     MySQL's and SQLite's rules: the loader splits such a script once
 *     for all of them.
 * Against an independent oracle, per engine:
 *   - PostgreSQL: the statements are exactly those of psql's lexer rules
 *     (src/fe_utils/psqlscan.l, rewritten here from its rules): strings
 *     with their prefixes (E'' with backslashes, B'' X'' N'' U&''),
 *     quoted identifiers, dollar quotes, nested comments, "--" comments
 *     ending at LF or CR, ';' ending a statement only outside
 *     parentheses and outside BEGIN ... END of CREATE [OR REPLACE]
 *     FUNCTION|PROCEDURE (CASE counted inside BEGIN only); a refusal
 *     happens exactly when the oracle ends inside a quote or comment;
 *   - SQLite: the statements are exactly those sqlite3_complete() (the
 *     engine's own tokenizer and trigger rule) finds;
 *   - PostgreSQL, once more: when PostgreSQL's own parser (libpg_query's
 *     pg_query_split_with_parser, the PostgreSQL 15 grammar) accepts the
 *     script, it finds the same statements (each trimmed of the blanks
 *     and comments before it and the blanks after it); parsing only
 *     splits valid SQL, so scripts it refuses are not judged by it;
 *   - MySQL: lexically, as the server and the mysql client read it
 *     (backslash escapes, doubled quotes, backticks, "#" and "-- "
 *     comments, DELIMITER commands, the delimiter found before a comment
 *     start as the client does): every delimiter that ends a statement
 *     is outside quotes and comments, everything between statements is
 *     blanks, comments, delimiters or DELIMITER lines, a statement starts
 *     with SQL, never a comment; a ';' inside a statement only where a
 *     routine body may be (a statement starting with CREATE or BEGIN); a
 *     non-';' delimiter never inside one; refused exactly
 *     when a quote or comment is unterminated or a DELIMITER is empty or
 *     too long.
 *
 * What the oracles do not judge, on purpose (invalid SQL where psql and
 * the splitter may tokenize differently, and the server refuses it in
 * every reading): SQLite scripts holding a \v; a number or a $n parameter followed at once by an
 * identifier character or a quote (PostgreSQL 15 rejects "trailing junk
 * after numeric literal"); a string, dollar-quoted string or quoted
 * identifier followed at once by an identifier character (two literals
 * with nothing between). MySQL: scripts that mention NO_BACKSLASH_ESCAPES
 * or ANSI_QUOTES (the quoting rules then depend on the server's mode,
 * which cannot be known offline; the splitter follows literal SET
 * sql_mode statements).
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include <pg_query.h>
#include "schemagate/sqlsplit.h"

#define NONE_YET SIZE_MAX
/* the SQLite oracle is quadratic in the number of ';' */
#define ORACLE_MAX_LEN 8192

struct span {
	size_t start, end;
};

struct spans {
	struct span *item;
	size_t n, cap;
};

static void spans_add(struct spans *l, size_t start, size_t end)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->item = realloc(l->item, l->cap * sizeof(*l->item));
	}
	l->item[l->n++] = (struct span){start, end};
}

static bool blank(unsigned char c)
{
	return isspace(c) != 0;
}

/* A statement from `start` (NONE_YET: nothing yet) to `end`, trimmed. */
static void oracle_emit(struct spans *l, size_t start, size_t end, const char *s)
{
	if (start == NONE_YET)
		return;
	while (end > start && blank((unsigned char)s[end - 1]))
		end--;
	if (end > start)
		spans_add(l, start, end);
}

static void report_lists(const char *s, size_t n, const struct sg_statement_list *got, const struct spans *want)
{
	fuzz_dump("script", s, n);
	for (size_t i = 0; i < got->count; i++) {
		char label[64];
		snprintf(label, sizeof(label), "split %zu [%zu,%zu)", i, got->items[i].start, got->items[i].end);
		fuzz_dump(label, got->items[i].sql, strlen(got->items[i].sql));
	}
	for (size_t i = 0; i < want->n; i++) {
		char label[64];
		snprintf(label, sizeof(label), "oracle %zu [%zu,%zu)", i, want->item[i].start, want->item[i].end);
		fuzz_dump(label, s + want->item[i].start, want->item[i].end - want->item[i].start);
	}
}

static void expect_same(const char *what, const char *s, size_t n, const struct sg_statement_list *got,
			const struct spans *want)
{
	bool same = got->count == want->n;
	for (size_t i = 0; same && i < got->count; i++)
		same = got->items[i].start == want->item[i].start && got->items[i].end == want->item[i].end;
	if (!same)
		report_lists(s, n, got, want);
	FUZZ_CHECK(same, "the split differs from %s (%zu statements, oracle %zu)", what, got->count, want->n);
}

/* ---- PostgreSQL: psql's lexer rules ------------------------------------ */

static bool pg_ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool pg_ident_cont(unsigned char c)
{
	return pg_ident_start(c) || isdigit(c) || c == '$';
}

struct pg_oracle {
	const char *s;
	size_t n;
	int paren, begin_depth, identifier_count;
	char identifiers[4];
	bool unterminated;   /* ends inside a quote or a comment */
	bool unjudged;       /* invalid token junction: see the header */
	struct spans out;
};

/* The end of the quoted run opening at s[i]: doubled quotes, and with
 * backslash a backslash escaping the next byte; n and *unterminated when
 * it does not close. PostgreSQL, MySQL and SQLite agree on this much. */
static size_t quoted_end(const char *s, size_t n, size_t i, char q, bool backslash, bool *unterminated)
{
	for (size_t j = i + 1; j < n; j++) {
		if (backslash && s[j] == '\\' && j + 1 < n) {
			j++;
			continue;
		}
		if (s[j] == q) {
			if (j + 1 < n && s[j + 1] == q) {
				j++;
				continue;
			}
			return j + 1;
		}
	}
	*unterminated = true;
	return n;
}

static size_t pg_quoted(struct pg_oracle *o, size_t i, char q, bool backslash)
{
	return quoted_end(o->s, o->n, i, q, backslash, &o->unterminated);
}

/* After a literal or a number: an identifier character right after it
 * makes an invalid junction the oracle does not judge. */
static void pg_after_literal(struct pg_oracle *o, size_t end, bool quotes_too)
{
	if (end >= o->n)
		return;
	unsigned char c = (unsigned char)o->s[end];
	if (pg_ident_cont(c) || (quotes_too && (c == '\'' || c == '"')))
		o->unjudged = true;
}

/* psql's identifier rule: BEGIN/CASE/END counted inside CREATE [OR
 * REPLACE] FUNCTION|PROCEDURE, outside parentheses. */
static void pg_identifier(struct pg_oracle *o, const char *w, size_t n)
{
	static const char *const tracked[] = {"create", "function", "procedure", "or", "replace"};
	if (o->identifier_count == 0)
		memset(o->identifiers, 0, sizeof(o->identifiers));
	for (size_t k = 0; k < 5; k++)
		if (strlen(tracked[k]) == n && strncasecmp(w, tracked[k], n) == 0 &&
		    o->identifier_count < (int)sizeof(o->identifiers))
			o->identifiers[o->identifier_count] = (char)tolower((unsigned char)w[0]);
	o->identifier_count++;
	const char *id = o->identifiers;
	if (id[0] == 'c' && (id[1] == 'f' || id[1] == 'p' || (id[1] == 'o' && id[2] == 'r' && (id[3] == 'f' || id[3] == 'p'))) &&
	    o->paren == 0) {
		if (n == 5 && strncasecmp(w, "begin", 5) == 0)
			o->begin_depth++;
		else if (n == 4 && strncasecmp(w, "case", 4) == 0) {
			if (o->begin_depth >= 1)
				o->begin_depth++;
		} else if (n == 3 && strncasecmp(w, "end", 3) == 0) {
			if (o->begin_depth > 0)
				o->begin_depth--;
		}
	}
}

static void pg_oracle_run(struct pg_oracle *o)
{
	const char *s = o->s;
	size_t n = o->n, i = 0, start = NONE_YET;
	while (i < n && !o->unterminated) {
		unsigned char c = (unsigned char)s[i];
		unsigned char next = i + 1 < n ? (unsigned char)s[i + 1] : 0;
		/* PostgreSQL's blanks are space, \t, \n, \r and \f; \v is taken
		 * as one too, like the splitter: a statement that is only \v is
		 * a syntax error on the server either way */
		if (blank(c)) {
			i++;
			continue;
		}
		if (c == '-' && next == '-') {
			while (i < n && s[i] != '\n' && s[i] != '\r')
				i++;
			continue;
		}
		if (c == '/' && next == '*') {
			int depth = 0;
			size_t j = i + 2;
			for (;;) {
				if (j + 1 >= n) {
					o->unterminated = true;
					break;
				}
				if (s[j] == '/' && s[j + 1] == '*') {
					depth++;
					j += 2;
				} else if (s[j] == '*' && s[j + 1] == '/') {
					j += 2;
					if (depth-- == 0)
						break;
				} else {
					j++;
				}
			}
			i = j;
			continue;
		}
		if (start == NONE_YET)
			start = i;
		if (c == ';') {
			if (o->paren == 0 && o->begin_depth == 0) {
				oracle_emit(&o->out, start, i, s);
				start = NONE_YET;
				o->identifier_count = 0;
			}
			i++;
			continue;
		}
		if (c == '(') {
			o->paren++;
			i++;
			continue;
		}
		if (c == ')') {
			if (o->paren > 0)
				o->paren--;
			i++;
			continue;
		}
		if (c == '\'') {
			i = pg_quoted(o, i, '\'', false);
			pg_after_literal(o, i, false);
			continue;
		}
		if (c == '"') {
			i = pg_quoted(o, i, '"', false);
			pg_after_literal(o, i, false);
			continue;
		}
		if (pg_ident_start(c)) {
			/* prefixed strings: E'', B'', X'', N'', U&'', U&"" */
			char lc = (char)tolower(c);
			if (next == '\'' && (lc == 'e' || lc == 'b' || lc == 'x' || lc == 'n')) {
				i = pg_quoted(o, i + 1, '\'', lc == 'e');
				pg_after_literal(o, i, false);
				continue;
			}
			if (lc == 'u' && next == '&' && i + 2 < n && (s[i + 2] == '\'' || s[i + 2] == '"')) {
				i = pg_quoted(o, i + 2, s[i + 2], false);
				pg_after_literal(o, i, false);
				continue;
			}
			size_t j = i;
			while (j < n && pg_ident_cont((unsigned char)s[j]))
				j++;
			pg_identifier(o, s + i, j - i);
			i = j;
			continue;
		}
		if (isdigit(c) || (c == '.' && isdigit(next))) {
			size_t j = i;
			while (j < n && isdigit((unsigned char)s[j]))
				j++;
			if (j < n && s[j] == '.' && !(j + 1 < n && s[j + 1] == '.')) {
				j++;
				while (j < n && isdigit((unsigned char)s[j]))
					j++;
			}
			pg_after_literal(o, j, true);
			i = j;
			continue;
		}
		if (c == '$') {
			if (isdigit(next)) {
				size_t j = i + 1;
				while (j < n && isdigit((unsigned char)s[j]))
					j++;
				pg_after_literal(o, j, true);
				i = j;
				continue;
			}
			size_t j = i + 1;
			if (j < n && pg_ident_start((unsigned char)s[j]))
				while (j < n && (pg_ident_start((unsigned char)s[j]) || isdigit((unsigned char)s[j])))
					j++;
			if (j < n && s[j] == '$') {
				size_t taglen = j + 1 - i;
				const char *close = memmem(s + j + 1, n - j - 1, s + i, taglen);
				if (!close) {
					o->unterminated = true;
					break;
				}
				i = (size_t)(close - s) + taglen;
				pg_after_literal(o, i, false);
				continue;
			}
			i++;   /* a lone $ */
			continue;
		}
		i++;   /* operators and other single characters */
	}
	if (!o->unterminated)
		oracle_emit(&o->out, start, n, s);
}

static void check_postgres(const char *s, size_t n, const struct sg_statement_list *got, bool refused)
{
	struct pg_oracle o = {.s = s, .n = n};
	pg_oracle_run(&o);
	if (!o.unjudged) {
		if (refused != o.unterminated)
			fuzz_dump("script", s, n);
		FUZZ_CHECK(refused == o.unterminated, "postgres: splitter %s, psql's rules %s",
			   refused ? "refused" : "accepted", o.unterminated ? "end inside a quote or comment" : "do not");
		if (!refused)
			expect_same("psql's rules", s, n, got, &o.out);
	}
	free(o.out.item);
}

/* ---- SQLite: sqlite3_complete() ----------------------------------------- */

/* First byte of SQL from i on (SQLite's blanks and comments skipped). */
static size_t sqlite_skip_noise(const char *s, size_t n, size_t i)
{
	while (i < n) {
		if (blank((unsigned char)s[i])) {
			i++;
		} else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				i++;
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			const char *e = memmem(s + i + 2, n - i - 2, "*/", 2);
			i = e ? (size_t)(e - s) + 2 : n;
		} else {
			break;
		}
	}
	return i;
}

static bool sqlite_complete_range(const char *s, size_t b, size_t e)
{
	char *text = strndup(s + b, e - b);
	bool done = sqlite3_complete(text) != 0;
	free(text);
	return done;
}

static void check_sqlite(const char *s, size_t n, const struct sg_statement_list *got, bool refused)
{
	/* unterminated quotes: sqlite3_complete() cannot tell them from a
	 * trigger; \v: a blank to the splitter, a token to sqlite3_complete()
	 * and an illegal character to SQLite's parser */
	if (refused || memchr(s, '\v', n))
		return;
	struct spans want = {0};
	size_t cur = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != ';' || !sqlite_complete_range(s, cur, i + 1))
			continue;
		size_t b = sqlite_skip_noise(s, i, cur);
		oracle_emit(&want, b < i ? b : NONE_YET, i, s);
		cur = i + 1;
	}
	size_t b = sqlite_skip_noise(s, n, cur);
	oracle_emit(&want, b < n ? b : NONE_YET, n, s);
	expect_same("sqlite3_complete()", s, n, got, &want);
	free(want.item);
}

/* ---- MySQL: quotes, comments and DELIMITER as the client reads them ------- */

/* M_SEMI: the delimiter, ';'; M_EXEC: an executable comment (SQL, one opaque token) */
enum mark { M_BLANK, M_COMMENT, M_CODE, M_EXEC, M_DELIM, M_SEMI, M_COMMAND };
#define IS_SQL(m) ((m) == M_CODE || (m) == M_EXEC)

struct my_oracle {
	const char *s;
	size_t n;
	unsigned char *mark;
	bool *word;        /* a byte of a word (not of a quote or comment) */
	bool unterminated, bad_delimiter;
	/* without a split: a DELIMITER line after a ';' that may have been
	 * inside a routine body (whether it is a command is the body rule's) */
	bool ambiguous;
	char delim[64];   /* in effect at the end of the script */
};

static bool word_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static bool inside_statement(const struct sg_statement_list *l, size_t pos)
{
	for (size_t k = 0; k < l->count; k++)
		if (pos >= l->items[k].start && pos < l->items[k].delim_end)
			return true;
	return false;
}

static void my_set(struct my_oracle *o, size_t b, size_t e, enum mark m)
{
	for (size_t i = b; i < e && i < o->n; i++)
		o->mark[i] = (unsigned char)m;
}

static size_t line_end(const char *s, size_t n, size_t i)
{
	const char *nl = memchr(s + i, '\n', n - i);
	return nl ? (size_t)(nl - s) + 1 : n;
}

static size_t my_quoted(struct my_oracle *o, size_t i, char q, bool backslash)
{
	return quoted_end(o->s, o->n, i, q, backslash, &o->unterminated);
}

/* Marks every byte. A DELIMITER command stands at the start of a line
 * between statements: those of the split when there is one (the body
 * rule is the splitter's), else where no SQL was seen since the last
 * delimiter. */
static void my_oracle_run(struct my_oracle *o, const struct sg_statement_list *l)
{
	bool in_progress = false;
	bool first_word = false;      /* this statement's first word was seen */
	bool body_possible = false;   /* and is CREATE or BEGIN */
	bool after_body_semicolon = false;
	const char *s = o->s;
	size_t n = o->n, i = 0;
	char *delim = o->delim;
	strcpy(delim, ";");
	size_t dlen = 1;
	while (i < n && !o->unterminated && !o->bad_delimiter) {
		unsigned char c = (unsigned char)s[i];
		size_t ls = i;
		while (ls > 0 && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
			ls--;
		bool between = l->count ? !inside_statement(l, i) : !in_progress;
		if ((c == 'd' || c == 'D') && (ls == 0 || s[ls - 1] == '\n') && between &&
		    n - i >= 10 && strncasecmp(s + i, "delimiter", 9) == 0 && (s[i + 9] == ' ' || s[i + 9] == '\t')) {
			if (!l->count && after_body_semicolon)
				o->ambiguous = true;
			size_t j = i + 9;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			size_t b = j;
			while (j < n && !blank((unsigned char)s[j]))
				j++;
			if (j == b || j - b >= 32) {
				o->bad_delimiter = true;
				break;
			}
			memcpy(delim, s + b, j - b);
			delim[j - b] = '\0';
			dlen = j - b;
			size_t e = line_end(s, n, j);
			my_set(o, i, e, M_COMMAND);
			i = e;
			continue;
		}
		if (blank(c)) {
			my_set(o, i, i + 1, M_BLANK);
			i++;
			continue;
		}
		/* the client looks for the delimiter before anything else */
		if (n - i >= dlen && memcmp(s + i, delim, dlen) == 0) {
			my_set(o, i, i + dlen, dlen == 1 && delim[0] == ';' ? M_SEMI : M_DELIM);
			i += dlen;
			after_body_semicolon |= in_progress && body_possible;   /* a body may run on */
			in_progress = false;
			first_word = body_possible = false;
			continue;
		}
		unsigned char next = i + 1 < n ? (unsigned char)s[i + 1] : 0;
		unsigned char after = i + 2 < n ? (unsigned char)s[i + 2] : 0;
		if (c == '#' || (c == '-' && next == '-' && (after == 0 || isspace(after) || iscntrl(after)))) {
			size_t e = line_end(s, n, i);
			my_set(o, i, e, M_COMMENT);
			i = e;
			continue;
		}
		if (c == '/' && next == '*') {
			/* executable comments and optimizer hints are SQL */
			bool sql = after == '!' || after == '+' || (after == 'M' && i + 3 < n && s[i + 3] == '!');
			const char *e = i + 2 < n ? memmem(s + i + 2, n - i - 2, "*/", 2) : NULL;
			if (!e) {
				o->unterminated = true;
				break;
			}
			size_t end = (size_t)(e - s) + 2;
			my_set(o, i, end, sql ? M_EXEC : M_COMMENT);
			in_progress |= sql;
			i = end;
			continue;
		}
		size_t end = i + 1;
		if (c == '\'' || c == '"')
			end = my_quoted(o, i, (char)c, true);
		else if (c == '`')
			end = my_quoted(o, i, '`', false);
		my_set(o, i, end, M_CODE);
		o->word[i] = end == i + 1 && word_char(c);
		if (!first_word && word_char(c)) {   /* as the splitter reads the statement's first word */
			size_t w = i;
			while (w < n && word_char((unsigned char)s[w]))
				w++;
			body_possible = (w - i == 6 && strncasecmp(s + i, "create", 6) == 0) ||
					(w - i == 5 && strncasecmp(s + i, "begin", 5) == 0);
			first_word = true;
		}
		in_progress = true;
		i = end;
	}
}


/* Where a routine body may hold ';': a statement whose first word is
 * CREATE (a routine, trigger or event) or BEGIN (MariaDB's BEGIN NOT
 * ATOMIC); a word as the splitter reads one, so not the D of '--D'
 * (regressions/sqlsplit/oracle-word-inside-a-quote). Where the body ends is the splitter's heuristic: there is no
 * reference to hold it against (the mysql client needs DELIMITER), so
 * the unit tests of test_sqlsplit.c pin it down instead. */
static bool may_hold_a_body(const struct my_oracle *o, const struct sg_statement *st)
{
	const char *s = o->s;
	size_t b = st->start;
	while (b < st->end && !o->word[b])
		b++;
	size_t w = b;
	while (w < st->end && o->word[w])
		w++;
	size_t n = w - b;
	return (n == 6 && strncasecmp(s + b, "create", 6) == 0) || (n == 5 && strncasecmp(s + b, "begin", 5) == 0);
}

/* Quoting that depends on the server's sql_mode: not judged. */
static bool mysql_mode_dependent(const char *s)
{
	return strcasestr(s, "no_backslash_escapes") || strcasestr(s, "ansi_quotes");
}

static void check_mysql(const char *s, size_t n, const struct sg_statement_list *got, bool refused,
			const struct sg_error *err)
{
	if (mysql_mode_dependent(s))
		return;
	struct my_oracle o = {.s = s, .n = n, .mark = calloc(n + 1, 1), .word = calloc(n + 1, sizeof(bool))};
	my_oracle_run(&o, got);
	bool oracle_refuses = o.unterminated || o.bad_delimiter;
	if (o.ambiguous) {
		free(o.mark);
		free(o.word);
		return;
	}
	if (refused != oracle_refuses)
		fuzz_dump("script", s, n);
	FUZZ_CHECK(refused == oracle_refuses, "mysql: splitter %s (%s); the oracle %s", refused ? "refused" : "accepted",
		   refused ? err->msg : "", oracle_refuses ? "refuses" : "accepts");
	if (refused) {
		free(o.mark);
		free(o.word);
		return;
	}
	size_t at = 0;
	for (size_t k = 0; k < got->count; k++) {
		const struct sg_statement *st = &got->items[k];
		for (size_t i = at; i < st->start; i++) {
			if (IS_SQL(o.mark[i]))
				fuzz_dump("script", s, n);
			FUZZ_CHECK(!IS_SQL(o.mark[i]), "mysql: SQL at byte %zu between statements %zu and %zu", i, k, k + 1);
		}
		if (!IS_SQL(o.mark[st->start]))
			fuzz_dump("script", s, n);
		FUZZ_CHECK(IS_SQL(o.mark[st->start]), "mysql: statement %zu starts in a %s", k,
			   o.mark[st->start] == M_COMMENT ? "comment" : "blank, delimiter or command");
		size_t d = st->end;
		while (d < st->delim_end && blank((unsigned char)s[d]))
			d++;
		for (size_t i = d; i < st->delim_end; i++) {
			if (o.mark[i] != M_DELIM && o.mark[i] != M_SEMI)
				fuzz_dump("script", s, n);
			FUZZ_CHECK(o.mark[i] == M_DELIM || o.mark[i] == M_SEMI,
				   "mysql: statement %zu ends at byte %zu, inside a quote or comment",
				   k, i);
		}
		for (size_t i = st->start; i < st->end; i++) {
			if (o.mark[i] != M_DELIM && o.mark[i] != M_SEMI)
				continue;
			bool ok = o.mark[i] == M_SEMI && may_hold_a_body(&o, st);
			if (!ok)
				fuzz_dump("statement", st->sql, strlen(st->sql));
			FUZZ_CHECK(ok, "mysql: statement %zu holds a delimiter at byte %zu outside a compound statement", k, i);
		}
		at = st->delim_end;
	}
	for (size_t i = at; i < n; i++) {
		if (IS_SQL(o.mark[i]))
			fuzz_dump("script", s, n);
		FUZZ_CHECK(!IS_SQL(o.mark[i]), "mysql: SQL at byte %zu after the last statement", i);
	}
	free(o.mark);
	free(o.word);
}

/* ---- every engine --------------------------------------------------------- */

static void check_structure(const char *s, size_t n, int first_line, const struct sg_statement_list *l)
{
	size_t at = 0;
	int line = first_line;
	size_t counted = 0;
	for (size_t k = 0; k < l->count; k++) {
		const struct sg_statement *st = &l->items[k];
		FUZZ_CHECK(st->start >= at && st->start < st->end && st->end <= st->delim_end && st->delim_end <= n,
			   "statement %zu at [%zu, %zu, %zu) after %zu in %zu bytes", k, st->start, st->end,
			   st->delim_end, at, n);
		FUZZ_CHECK(strlen(st->sql) == st->end - st->start && memcmp(st->sql, s + st->start, st->end - st->start) == 0,
			   "statement %zu is not script[%zu, %zu)", k, st->start, st->end);
		FUZZ_CHECK(!blank((unsigned char)st->sql[0]) && !blank((unsigned char)s[st->end - 1]),
			   "statement %zu is not trimmed", k);
		for (; counted < st->start; counted++)
			line += s[counted] == '\n';
		FUZZ_CHECK(st->line == line, "statement %zu: line %d, its start is on line %d", k, st->line, line);
		size_t d = st->end;
		while (d < st->delim_end && blank((unsigned char)s[d]))
			d++;
		if (d == st->delim_end) {
			/* ended by the end of the script, not by a delimiter */
			FUZZ_CHECK(k + 1 == l->count && st->delim_end == n,
				   "statement %zu has no delimiter but does not end the script", k);
		} else {
			for (size_t i = d; i < st->delim_end; i++)
				FUZZ_CHECK(!blank((unsigned char)s[i]), "statement %zu: a blank inside its delimiter", k);
		}
		at = st->delim_end;
	}
}

static bool starts_with_delimiter_word(const char *sql)
{
	/* "delimiter" then its own delimiter after a blank reads as a command too */
	return strncasecmp(sql, "delimiter", 9) == 0 && (sql[9] == ' ' || sql[9] == '\t' || sql[9] == '\0');
}

/* The statements again, each with its own delimiter; MySQL gets a
 * DELIMITER command wherever the delimiter changes. */
static char *rejoin(const char *s, const struct sg_statement_list *l, enum sg_engine engine, const char *final_delim)
{
	size_t cap = 64;
	for (size_t k = 0; k < l->count; k++)
		cap += l->items[k].delim_end - l->items[k].start + 64;
	char *out = malloc(cap);
	size_t o = 0;
	char delim[64] = ";";
	for (size_t k = 0; k < l->count; k++) {
		const struct sg_statement *st = &l->items[k];
		size_t d = st->end;
		while (d < st->delim_end && blank((unsigned char)s[d]))
			d++;
		size_t dlen = st->delim_end - d;
		/* a last statement ended by the end of the script: the
		 * delimiter then in effect */
		const char *want = dlen ? s + d : final_delim;
		size_t wlen = dlen ? dlen : strlen(final_delim);
		if (engine == SG_ENGINE_MYSQL && (wlen != strlen(delim) || memcmp(delim, want, wlen) != 0)) {
			memcpy(delim, want, wlen);
			delim[wlen] = '\0';
			o += (size_t)sprintf(out + o, "DELIMITER %s\n", delim);
		}
		memcpy(out + o, st->sql, st->end - st->start);
		o += st->end - st->start;
		if (dlen) {   /* the blanks and the delimiter, as in the script */
			memcpy(out + o, s + st->end, st->delim_end - st->end);
			o += st->delim_end - st->end;
		}
		out[o++] = '\n';
	}
	out[o] = '\0';
	return out;
}

/* Joined again, the statements split into themselves. */
static void check_rejoin(const char *script, size_t n, const struct sg_statement_list *l, enum sg_engine engine)
{
	/* a statement that reads "delimiter x" is one only where a command
	 * cannot start (not at the start of a line): joined again, it would
	 * be one */
	for (size_t k = 0; engine == SG_ENGINE_MYSQL && k < l->count; k++)
		if (starts_with_delimiter_word(l->items[k].sql))
			return;
	struct my_oracle o = {.s = script, .n = n, .mark = calloc(n + 1, 1), .word = calloc(n + 1, sizeof(bool))};
	if (engine == SG_ENGINE_MYSQL)
		my_oracle_run(&o, l);
	char *joined = rejoin(script, l, engine, engine == SG_ENGINE_MYSQL ? o.delim : ";");
	free(o.mark);
	free(o.word);
	struct sg_statement_list again;
	struct sg_error err = {0};
	int rc = sg_sql_split(joined, engine, &again, &err);
	bool same = rc == 0 && again.count == l->count;
	for (size_t k = 0; same && k < l->count; k++)
		same = strcmp(again.items[k].sql, l->items[k].sql) == 0;
	if (!same) {
		fuzz_dump("script", script, n);
		fuzz_dump("joined", joined, strlen(joined));
		for (size_t k = 0; rc == 0 && k < again.count; k++)
			fuzz_dump("again", again.items[k].sql, strlen(again.items[k].sql));
	}
	FUZZ_CHECK(same, "the statements joined again split into %zu statements, not %zu (%s)",
		   rc == 0 ? again.count : 0, l->count, rc == 0 ? "" : err.msg);
	sg_statement_list_free(&again);
	free(joined);
}

/* ---- PostgreSQL: its own parser ---------------------------------------- */

/* Past blanks and comments (nested block comments, as the server reads them). */
static size_t pg_skip_blank(const char *s, size_t p, size_t end)
{
	while (p < end) {
		if (blank((unsigned char)s[p])) {
			p++;
		} else if (s[p] == '-' && p + 1 < end && s[p + 1] == '-') {
			while (p < end && s[p] != '\n' && s[p] != '\r')
				p++;
		} else if (s[p] == '/' && p + 1 < end && s[p + 1] == '*') {
			int depth = 0;
			do {
				if (s[p] == '/' && p + 1 < end && s[p + 1] == '*') {
					depth++;
					p += 2;
				} else if (s[p] == '*' && p + 1 < end && s[p + 1] == '/') {
					depth--;
					p += 2;
				} else {
					p++;
				}
			} while (p < end && depth > 0);
		} else {
			break;
		}
	}
	return p;
}

static void check_pg_query(const char *s, size_t n, const struct sg_statement_list *l, bool refused)
{
	PgQuerySplitResult r = pg_query_split_with_parser(s);
	if (r.error) {
		pg_query_free_split_result(r);
		return;
	}
	FUZZ_CHECK(!refused, "the splitter refused a script PostgreSQL's parser accepts");
	struct spans want = {0};
	for (int i = 0; i < r.n_stmts; i++) {
		size_t start = (size_t)r.stmts[i]->stmt_location;
		size_t end = r.stmts[i]->stmt_len ? start + (size_t)r.stmts[i]->stmt_len : n;
		if (end > n)
			end = n;
		start = pg_skip_blank(s, start, end);
		oracle_emit(&want, start, end, s);
	}
	expect_same("PostgreSQL's parser (pg_query_split_with_parser)", s, n, l, &want);
	free(want.item);
	pg_query_free_split_result(r);
}

/* A neutral script: every engine's split is PostgreSQL's. */
static void check_neutral(const char *script, int first_line)
{
	static const enum sg_engine others[] = {SG_ENGINE_MYSQL, SG_ENGINE_SQLITE};
	struct sg_statement_list pg;
	struct sg_error e = {0};
	bool pg_refused = sg_sql_split_at(script, SG_ENGINE_POSTGRES, first_line, &pg, &e) != 0;
	for (size_t k = 0; k < 2; k++) {
		struct sg_statement_list l;
		bool refused = sg_sql_split_at(script, others[k], first_line, &l, &e) != 0;
		FUZZ_CHECK(refused == pg_refused, "neutral script: engine %d %s, PostgreSQL %s", (int)others[k],
			   refused ? "refuses" : "splits", pg_refused ? "refuses" : "splits");
		FUZZ_CHECK(l.count == pg.count, "neutral script: engine %d finds %zu statements, PostgreSQL %zu",
			   (int)others[k], l.count, pg.count);
		for (size_t i = 0; i < l.count; i++) {
			const struct sg_statement *a = &l.items[i], *b = &pg.items[i];
			FUZZ_CHECK(a->start == b->start && a->end == b->end && a->delim_end == b->delim_end &&
					   a->line == b->line && strcmp(a->sql, b->sql) == 0,
				   "neutral script: statement %zu differs: engine %d [%zu,%zu) line %d, PostgreSQL [%zu,%zu) "
				   "line %d", i, (int)others[k], a->start, a->end, a->line, b->start, b->end, b->line);
		}
		sg_statement_list_free(&l);
	}
	sg_statement_list_free(&pg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const enum sg_engine engines[] = {SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE, SG_ENGINE_NONE};
	enum sg_engine engine = engines[data[0] & 3];
	int first_line = 1 + (data[0] >> 2);
	char *script = strndup((const char *)data + 1, size - 1);
	size_t n = strlen(script);

	struct sg_statement_list l;
	struct sg_error err = {0};
	bool refused = sg_sql_split_at(script, engine, first_line, &l, &err) != 0;
	if (refused) {
		FUZZ_CHECK(l.count == 0 && l.items == NULL, "a refused split left %zu statements", l.count);
		FUZZ_CHECK(err.outcome == SG_OUTCOME_USAGE, "refused with outcome %d: %s", (int)err.outcome, err.msg);
		FUZZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "not one line: %s", err.msg);
		const char *at = strstr(err.msg, "line ");
		int line = at ? atoi(at + 5) : 0;
		int lines = first_line;
		for (size_t i = 0; i < n; i++)
			lines += script[i] == '\n';
		FUZZ_CHECK(line >= first_line && line <= lines, "'%s' names no line of the script (%d..%d)", err.msg,
			   first_line, lines);
	} else {
		check_structure(script, n, first_line, &l);
		if (!(engine == SG_ENGINE_MYSQL && mysql_mode_dependent(script)))
			check_rejoin(script, n, &l, engine);
	}
	if (sg_sql_engine_neutral(script))
		check_neutral(script, first_line);
	if (n <= ORACLE_MAX_LEN) {
		if (engine == SG_ENGINE_POSTGRES) {
			check_postgres(script, n, &l, refused);
			check_pg_query(script, n, &l, refused);
		}
		else if (engine == SG_ENGINE_SQLITE)
			check_sqlite(script, n, &l, refused);
		else if (engine == SG_ENGINE_MYSQL)
			check_mysql(script, n, &l, refused, &err);
	}
	sg_statement_list_free(&l);
	free(script);
	return 0;
}
