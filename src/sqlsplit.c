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
 *
 * Routine bodies hold semicolons. Where the engine's own client would send
 * them whole, so does this scanner:
 *  - PostgreSQL BEGIN ATOMIC ... END: psql's rule, BEGIN (and CASE inside
 *    BEGIN) opens and END closes inside CREATE [OR REPLACE]
 *    FUNCTION/PROCEDURE, outside parentheses; like psql, a ';' inside
 *    parentheses never ends a statement (CREATE RULE ... DO (a; b));
 *  - MySQL routines, triggers and events with BEGIN ... END but without
 *    DELIMITER (golang-migrate sends such files as one multi-statement
 *    query, so they work there), and MariaDB's BEGIN NOT ATOMIC;
 *  - the mysql client's DELIMITER command ($$, //, ;;);
 *  - SQLite CREATE TRIGGER ... BEGIN ... END (sqlite3_complete()'s rule).
 */
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum routine_kind {
	ROUTINES_NONE,
	ROUTINES_POSTGRES,   /* BEGIN ATOMIC bodies */
	ROUTINES_MYSQL,      /* compound statements in routines, triggers, events */
};

/* What each engine's lexer understands. */
struct lexer_rules {
	bool backslash_in_strings;   /* MySQL: '\'' escapes inside '...' and "..." (until NO_BACKSLASH_ESCAPES) */
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
	bool paren_semicolons;       /* psql: a ';' inside parentheses does not end a statement */
	bool cr_ends_comments;       /* PostgreSQL: a "--" comment ends at CR as well as LF */
	enum routine_kind routines;
};

static const struct lexer_rules postgres_rules = {
	.dollar_quotes = true,
	.escape_strings = true,
	.nested_comments = true,
	.paren_semicolons = true,
	.cr_ends_comments = true,
	.routines = ROUTINES_POSTGRES,
};

static const struct lexer_rules mysql_rules = {
	.backslash_in_strings = true,
	.double_quote_is_string = true,
	.backticks = true,
	.hash_comments = true,
	.dash_needs_space = true,
	.delimiter_command = true,
	.executable_comments = true,
	.routines = ROUTINES_MYSQL,
};

static const struct lexer_rules sqlite_rules = {
	.backticks = true,
	.brackets = true,
	.trigger_bodies = true,
};

/* Engine unknown: the common subset. */
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
	TRIG_EXPLAIN,   /* saw EXPLAIN [anything but the keywords below] */
	TRIG_CREATE,    /* saw CREATE [TEMP|TEMPORARY] */
	TRIG_NORMAL,    /* an ordinary statement */
	TRIG_BODY,      /* inside CREATE TRIGGER, before/after the body */
	TRIG_SEMI,      /* a ';' inside the trigger */
	TRIG_END,       /* END right after a ';' */
};

/* PostgreSQL and MySQL routine bodies: where does the statement end? */
struct routine {
	int words;          /* word tokens so far in this statement */
	bool create;        /* the statement starts with CREATE */
	bool or_replace;    /* CREATE OR REPLACE (PostgreSQL word positions) */
	bool blocked;       /* CREATE TABLE/VIEW/...: never a routine */
	bool routine;       /* inside a routine statement: BEGIN ... END nests */
	bool anonymous;     /* MariaDB BEGIN NOT ATOMIC, at word 1 */
	int depth;          /* open BEGIN/CASE/IF/LOOP/REPEAT/WHILE */
	bool stmt_start;    /* MySQL body: the next word starts a statement */
	bool label;         /* MySQL body: that word may be a label ("l1: LOOP") */
	bool after_end;     /* MySQL: END IF / END LOOP ... : the next word opens nothing */
};

struct splitter {
	const char *s;
	size_t len, pos;
	const struct lexer_rules *rules;
	bool backslash;          /* current rule: NO_BACKSLASH_ESCAPES turns it off */
	char delimiter[32];
	size_t delimiter_len;
	bool delimiter_in_words; /* the delimiter starts with an identifier character ($$) */
	int parens;              /* open parentheses in the current statement */
	size_t word_start;       /* the last word scanned: [word_start, word_end) */
	size_t word_end;
	/* current statement: start offset, or SIZE_MAX while only blanks/comments seen */
	size_t start;
	int start_line;
	enum trigger_state trig;
	struct routine routine;
	/* lazy line counting: line number at offset counted_pos */
	int first_line;
	size_t counted_pos;
	int counted_line;
	struct sg_statement_list *out;
	struct sg_error *err;
};

static int line_at(struct splitter *sp, size_t pos)
{
	if (pos < sp->counted_pos) {
		sp->counted_pos = 0;
		sp->counted_line = sp->first_line;
	}
	for (; sp->counted_pos < pos; sp->counted_pos++)
		if (sp->s[sp->counted_pos] == '\n')
			sp->counted_line++;
	return sp->counted_line;
}

/* The scanner looks at every byte of every script the loader reads (a
 * thousand files at each start): plain comparisons, not <ctype.h> calls,
 * which mean the C locale here anyway. */
static inline bool is_ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
	       c >= 0x80;
}

static inline bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* Case-insensitive search in s[0, n). */
static bool contains_ci(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp(s + i, needle, k) == 0)
			return true;
	return false;
}

/* Mark the current position as statement content. */
static void content_at(struct splitter *sp, size_t pos)
{
	if (sp->start == SIZE_MAX) {
		sp->start = pos;
		sp->start_line = line_at(sp, pos);
	}
}

/*
 * MySQL: after SET [SESSION] sql_mode = ..., backslashes in strings are
 * literal if the new mode holds NO_BACKSLASH_ESCAPES. A literal mode
 * without it turns escapes back on; an expression (@@sql_mode, a variable)
 * leaves the rule as it was, since it cannot be known offline.
 */
static void track_sql_mode(struct splitter *sp, const char *stmt, size_t n)
{
	size_t i = 0;
	if (n >= 3 && strncmp(stmt, "/*!", 3) == 0)
		for (i = 3; i < n && isdigit((unsigned char)stmt[i]); i++)
			;
	while (i < n && isspace((unsigned char)stmt[i]))
		i++;
	if (n - i < 4 || strncasecmp(stmt + i, "set", 3) != 0 || is_ident_char((unsigned char)stmt[i + 3]))
		return;
	if (!contains_ci(stmt, n, "sql_mode") || contains_ci(stmt, n, "global"))
		return;
	if (contains_ci(stmt, n, "no_backslash_escapes"))
		sp->backslash = false;
	else if (!memchr(stmt, '@', n))
		sp->backslash = true;
}

static void statement_done(struct splitter *sp)
{
	sp->start = SIZE_MAX;
	sp->parens = 0;
	sp->trig = TRIG_START;
	memset(&sp->routine, 0, sizeof(sp->routine));
}

/* The statement ends at `end` (its delimiter, if any, runs to delim_end). */
static void emit(struct splitter *sp, size_t end, size_t delim_end)
{
	if (sp->start != SIZE_MAX) {
		size_t b = sp->start;
		while (end > b && is_space((unsigned char)sp->s[end - 1]))
			end--;
		if (end > b) {
			struct sg_statement_list *l = sp->out;
			/* doubling: growing by one copied the list at every statement
			 * where realloc cannot grow in place (ASan, other libcs) */
			if (l->count == l->cap) {
				l->cap = l->cap ? l->cap * 2 : 1;
				l->items = sg_realloc(l->items, l->cap * sizeof(*l->items));
			}
			struct sg_statement *st = &l->items[l->count++];
			st->sql = sg_strndup(sp->s + b, end - b);
			st->line = sp->start_line;
			st->start = b;
			st->end = end;
			st->delim_end = delim_end;
			if (sp->rules->backslash_in_strings)
				track_sql_mode(sp, sp->s + b, end - b);
		}
	}
	statement_done(sp);
}

static int unterminated(struct splitter *sp, const char *what, size_t at)
{
	return sg_fail(sp->err, SG_OUTCOME_USAGE, "unterminated %s starting at line %d", what, line_at(sp, at));
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

/* $tag$ at sp->pos, where a token starts (foo$bar$ is one word, never
 * seen here)? Returns the tag length including both '$', or 0. */
static size_t dollar_tag_len(const struct splitter *sp)
{
	size_t i = sp->pos + 1;
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

/* A "--" or "#" comment: to the end of the line (the CR is one too for
 * PostgreSQL, whose lexer takes a lone CR as a newline). */
static void skip_line_comment(struct splitter *sp)
{
	if (!sp->rules->cr_ends_comments) {
		skip_line(sp);
		return;
	}
	sp->pos += strcspn(sp->s + sp->pos, "\r\n");
}

static bool at_line_start(const struct splitter *sp)
{
	size_t i = sp->pos;
	while (i > 0 && (sp->s[i - 1] == ' ' || sp->s[i - 1] == '\t'))
		i--;
	return i == 0 || sp->s[i - 1] == '\n';
}

static bool delimiter_at(const struct splitter *sp, size_t pos)
{
	return sp->delimiter_len && sp->s[pos] == sp->delimiter[0] && sp->len - pos >= sp->delimiter_len &&
	       memcmp(sp->s + pos, sp->delimiter, sp->delimiter_len) == 0;
}

/*
 * MySQL client command "DELIMITER xx" at the start of a line, where a new
 * statement would begin (like the mysql client, so a column named
 * "delimiter" inside a CREATE TABLE is left alone). It is not a statement.
 */
static int try_delimiter_command(struct splitter *sp, bool *handled)
{
	*handled = false;
	if (sp->start != SIZE_MAX || !at_line_start(sp) || sp->len - sp->pos < 10 ||
	    strncasecmp(sp->s + sp->pos, "delimiter", 9) != 0 ||
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
		return sg_fail(sp->err, SG_OUTCOME_USAGE, "line %d: DELIMITER without a delimiter", line);
	if (i - b >= sizeof(sp->delimiter))
		return sg_fail(sp->err, SG_OUTCOME_USAGE, "line %d: DELIMITER too long", line);
	memcpy(sp->delimiter, sp->s + b, i - b);
	sp->delimiter[i - b] = '\0';
	sp->delimiter_len = i - b;
	sp->delimiter_in_words = is_ident_char((unsigned char)sp->delimiter[0]);
	sp->pos = i;
	skip_line(sp);
	*handled = true;
	return 0;
}

/* Feed one top-level token to the SQLite trigger state machine. */
static void trigger_token(struct splitter *sp, const char *w, size_t n)
{
	switch (sp->trig) {
	case TRIG_START:
		if (w && (word_is(w, n, "create")))
			sp->trig = TRIG_CREATE;
		else if (w && word_is(w, n, "explain"))
			sp->trig = TRIG_EXPLAIN;
		else
			sp->trig = TRIG_NORMAL;
		break;
	case TRIG_EXPLAIN:
		/* EXPLAIN [QUERY PLAN] CREATE TRIGGER ...: any other token keeps waiting */
		if (w && word_is(w, n, "create"))
			sp->trig = TRIG_CREATE;
		else if (w && (word_is(w, n, "explain") || word_is(w, n, "temp") || word_is(w, n, "temporary") ||
			       word_is(w, n, "trigger") || word_is(w, n, "end")))
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

static bool word_in(const char *w, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (word_is(w, n, *list))
			return true;
	return false;
}

/* Is this CREATE statement a routine whose body may hold BEGIN ... END? */
static void routine_header_word(struct splitter *sp, const char *w, size_t n, int idx)
{
	static const char *const mysql_routines[] = {"procedure", "function", "trigger", "event", NULL};
	static const char *const mysql_blockers[] = {"table", "view", "index", "unique", "fulltext", "spatial",
						     "database", "schema", "user", "role", "server", "sequence",
						     "tablespace", "temporary", "logfile", "resource", NULL};
	static const char *const pg_routines[] = {"function", "procedure", NULL};
	struct routine *r = &sp->routine;
	if (sp->rules->routines == ROUTINES_POSTGRES) {
		/* psql: CREATE [OR REPLACE] FUNCTION|PROCEDURE */
		if (idx == 1 && word_is(w, n, "or"))
			r->or_replace = true;
		else if (idx == 2 && !word_is(w, n, "replace"))
			r->or_replace = false;
		else if ((idx == 1 || (idx == 3 && r->or_replace)) && word_in(w, n, pg_routines))
			r->routine = true;
		return;
	}
	if (r->blocked || idx > 12)
		return;
	if (word_in(w, n, mysql_routines))
		r->routine = true;
	else if (word_in(w, n, mysql_blockers))
		r->blocked = true;
}

/* An opener of a MySQL compound statement, and where its body begins. */
static void mysql_body_word(struct splitter *sp, const char *w, size_t n, bool paren_follows)
{
	static const char *const statement_openers[] = {"if", "loop", "repeat", "while", NULL};
	static const char *const body_starts[] = {"then", "else", "do", "row", "atomic", NULL};
	struct routine *r = &sp->routine;
	bool at_start = r->stmt_start;
	r->stmt_start = false;
	r->label = false;
	if (w > sp->s && w[-1] == '.') {
		r->after_end = false;   /* NEW.begin, t.end: a column, never a keyword */
		return;
	}
	if (r->after_end) {
		r->after_end = false;
		if (word_is(w, n, "case") || word_in(w, n, statement_openers))
			return;   /* END IF, END CASE, END LOOP ... */
	}
	if (word_is(w, n, "begin")) {
		r->depth++;
		r->stmt_start = true;
	} else if (word_is(w, n, "case")) {
		r->depth++;   /* the expression and the statement both end with END */
	} else if (at_start && !paren_follows && word_in(w, n, statement_openers)) {
		/* IF(...) and REPEAT(...) are functions; IF x THEN is a statement */
		r->depth++;
		r->stmt_start = word_is(w, n, "loop") || word_is(w, n, "repeat");
	} else if (word_is(w, n, "end")) {
		if (r->depth > 0)
			r->depth--;
		r->after_end = true;
	} else if (word_in(w, n, body_starts)) {
		r->stmt_start = true;
	} else if (at_start) {
		r->label = true;
	}
}

static void routine_word(struct splitter *sp, const char *w, size_t n, bool paren_follows)
{
	struct routine *r = &sp->routine;
	int idx = r->words++;
	if (idx == 0) {
		r->create = word_is(w, n, "create");
		r->anonymous = sp->rules->routines == ROUTINES_MYSQL && word_is(w, n, "begin");
		return;
	}
	if (r->anonymous && idx == 1) {
		r->anonymous = false;
		if (word_is(w, n, "not")) {   /* MariaDB: BEGIN NOT ATOMIC ... END */
			r->routine = true;
			r->depth = 1;
		}
		return;
	}
	if (!r->routine) {
		if (r->create)
			routine_header_word(sp, w, n, idx);
		return;
	}
	if (sp->rules->routines == ROUTINES_MYSQL) {
		mysql_body_word(sp, w, n, paren_follows);
	} else if (sp->parens > 0) {
		/* psql counts only outside parentheses: f(begin int) is a parameter */
	} else if (word_is(w, n, "begin") || (word_is(w, n, "case") && r->depth > 0)) {
		r->depth++;   /* CASE ... END matters only inside a body, as in psql */
	} else if (word_is(w, n, "end") && r->depth > 0) {
		r->depth--;
	}
}

/* A delimiter at sp->pos ends the statement, unless inside a body. */
static bool delimiter_ends_statement(struct splitter *sp)
{
	if (sp->rules->paren_semicolons && sp->parens > 0)
		return false;
	if (sp->routine.depth > 0 && sp->delimiter_len == 1 && sp->delimiter[0] == ';') {
		sp->routine.stmt_start = true;
		return false;
	}
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

/* An identifier or keyword at sp->pos; stops where a delimiter such as $$ starts. */
static void scan_word(struct splitter *sp)
{
	const struct lexer_rules *r = sp->rules;
	size_t b = sp->pos;
	while (sp->pos < sp->len && is_ident_char((unsigned char)sp->s[sp->pos])) {
		if (sp->delimiter_in_words && sp->pos > b && delimiter_at(sp, sp->pos))
			break;
		sp->pos++;
	}
	sp->word_start = b;
	sp->word_end = sp->pos;
	if (r->trigger_bodies)
		trigger_token(sp, sp->s + b, sp->pos - b);
	/* psql counts identifiers; a number is not one */
	bool number = r->routines == ROUTINES_POSTGRES && isdigit((unsigned char)sp->s[b]);
	if (r->routines != ROUTINES_NONE && !number)
		routine_word(sp, sp->s + b, sp->pos - b, sp->pos < sp->len && sp->s[sp->pos] == '(');
}

/* Any token other than a word: labels and statement starts in MySQL bodies. */
static void other_token(struct splitter *sp, char c, char next)
{
	struct routine *rt = &sp->routine;
	if (sp->rules->trigger_bodies)
		trigger_token(sp, NULL, 0);
	if (sp->rules->routines != ROUTINES_MYSQL)
		return;
	bool label = rt->label;
	rt->label = false;
	rt->after_end = false;
	if (c == ':' && label && next != '=')
		rt->stmt_start = true;   /* "l1: LOOP" */
	else if (c == ';' && rt->depth > 0)
		rt->stmt_start = true;   /* inside a body, under a DELIMITER other than ';' */
	else
		rt->stmt_start = false;
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
		if (is_space((unsigned char)c)) {
			sp->pos++;
			continue;
		}
		/* the mysql client looks for the delimiter before a comment
		 * ("DELIMITER #"); ';' never starts one */
		if (delimiter_at(sp, sp->pos)) {
			size_t at = sp->pos;
			sp->pos += sp->delimiter_len;
			if (delimiter_ends_statement(sp))
				emit(sp, at, sp->pos);
			continue;
		}
		if (c == '-' && next == '-') {
			char after = sp->pos + 2 < sp->len ? p[2] : ' ';
			if (!r->dash_needs_space || isspace((unsigned char)after) || iscntrl((unsigned char)after)) {
				skip_line_comment(sp);
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

		/* Everything from here on is statement content. */
		content_at(sp, sp->pos);
		int rc = 0;
		if (c == '\'') {
			/* E'...': the word right before the quote is exactly E */
			bool e = r->escape_strings && sp->word_end == sp->pos && sp->word_start + 1 == sp->pos &&
				 (p[-1] == 'E' || p[-1] == 'e');
			rc = skip_quoted(sp, '\'', sp->backslash || e, true, "quoted string");
		} else if (c == '"') {
			rc = skip_quoted(sp, '"', r->double_quote_is_string && sp->backslash, true,
					 r->double_quote_is_string ? "quoted string" : "quoted identifier");
		} else if (c == '`' && r->backticks) {
			rc = skip_quoted(sp, '`', false, true, "`quoted identifier`");
		} else if (c == '[' && r->brackets) {
			rc = skip_quoted(sp, ']', false, false, "[quoted identifier]");
		} else if (c == '$' && r->dollar_quotes) {
			/* PostgreSQL: no identifier starts with '$' ($1, $x are two tokens) */
			size_t tag = dollar_tag_len(sp);
			if (tag)
				rc = skip_dollar_quote(sp, tag);
			else
				sp->pos++;
		} else if (is_ident_char((unsigned char)c)) {
			scan_word(sp);
			continue;
		} else {
			if (c == '(')
				sp->parens++;
			else if (c == ')' && sp->parens > 0)
				sp->parens--;
			sp->pos++;
		}
		if (rc < 0)
			return -1;
		other_token(sp, c, next);
	}
	emit(sp, sp->len, sp->len);
	return 0;
}

int sg_sql_split(const char *script, enum sg_engine engine, struct sg_statement_list *out, struct sg_error *err)
{
	return sg_sql_split_at(script, engine, 1, out, err);
}

int sg_sql_split_at(const char *script, enum sg_engine engine, int first_line, struct sg_statement_list *out,
		    struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct lexer_rules *rules = rules_for(engine);
	struct splitter sp = {
		.s = script,
		.len = strlen(script),
		.rules = rules,
		.backslash = rules->backslash_in_strings,
		.delimiter = ";",
		.delimiter_len = 1,
		.start = SIZE_MAX,
		.first_line = first_line,
		.counted_line = first_line,
		.out = out,
		.err = err,
	};
	if (scan(&sp) < 0) {
		sg_statement_list_free(out);
		return -1;
	}
	return 0;
}

void sg_statement_list_copy(const struct sg_statement_list *l, struct sg_statement_list *out)
{
	memset(out, 0, sizeof(*out));
	if (l->count == 0)
		return;
	out->items = sg_malloc(l->count * sizeof(*out->items));
	out->count = out->cap = l->count;
	for (size_t i = 0; i < l->count; i++) {
		out->items[i] = l->items[i];
		out->items[i].sql = sg_strdup(l->items[i].sql);
	}
}

bool sg_sql_engine_neutral(const char *s)
{
	static const char *const openers[] = {"begin", "function", "procedure", "trigger", "event", "delimiter", NULL};
	int parens = 0;
	for (const char *p = s; *p;) {
		unsigned char c = (unsigned char)*p;
		if (c == '\\' || c == '`' || c == '[' || c == '$' || c == '#' || c == '\r' ||
		    (c == '/' && p[1] == '*'))
			return false;
		if (c == '-' && p[1] == '-') {
			unsigned char after = (unsigned char)p[2];
			if (after && !isspace(after) && !iscntrl(after))
				return false;   /* MySQL: not a comment */
			p += strcspn(p, "\r\n");
			if (*p == '\r')
				return false;   /* PostgreSQL ends the comment there, the others at LF */
		} else if (c == '\'' || c == '"') {
			/* a string or quoted identifier ('' and "" double the quote in
			 * every engine; with no backslash, nothing else differs) */
			for (p++;; p++) {
				if (!*p || *p == '\\')
					return false;   /* unterminated; an escape in MySQL (and E'') */
				if (*p == (char)c && *++p != (char)c)
					break;
			}
		} else if (is_ident_char(c)) {
			const char *w = p;
			while (is_ident_char((unsigned char)*p))
				p++;
			size_t n = (size_t)(p - w);
			if (n >= 5 && n <= 9 && strchr("bBfFpPtTeEdD", *w) && word_in(w, n, openers))
				return false;
		} else {
			if (c == '(')
				parens++;
			else if (c == ')' && parens > 0)
				parens--;
			else if (c == ';' && parens > 0)
				return false;   /* psql keeps it inside the statement */
			p++;
		}
	}
	return true;
}

void sg_statement_list_free(struct sg_statement_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i].sql);
	free(l->items);
	l->items = NULL;
	l->count = l->cap = 0;
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

/* ---- transaction control ------------------------------------------------- */

/* The next word of a statement after *pos (comments and blanks skipped);
 * its length, 0 at the end or at anything that is not a word. */
static size_t next_word(const char *s, size_t *pos, const char **w)
{
	size_t i = *pos;
	for (;;) {
		while (s[i] && isspace((unsigned char)s[i]))
			i++;
		if (s[i] == '-' && s[i + 1] == '-') {
			i += strcspn(s + i, "\n");
			continue;
		}
		if (s[i] == '/' && s[i + 1] == '*' && s[i + 2] != '!') {
			const char *e = strstr(s + i + 2, "*/");
			i = e ? (size_t)(e - s) + 2 : strlen(s);
			continue;
		}
		break;
	}
	size_t b = i;
	while (s[i] && (isalnum((unsigned char)s[i]) || s[i] == '_'))
		i++;
	*w = s + b;
	*pos = i;
	return i - b;
}

/* Nothing but blanks and comments from pos on? */
static bool ends_at(const char *s, size_t pos)
{
	const char *w;
	return next_word(s, &pos, &w) == 0 && s[pos] == '\0';
}

/* MySQL: "[SESSION | LOCAL] autocommit", "@@[session.]autocommit" after SET. */
static bool sets_autocommit(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (s[0] == '@' && s[1] == '@')
		s += 2;
	for (int i = 0; i < 2; i++) {
		if (strncasecmp(s, "session", 7) == 0 && (s[7] == '.' || isspace((unsigned char)s[7])))
			s += 8;
		else if (strncasecmp(s, "local", 5) == 0 && (s[5] == '.' || isspace((unsigned char)s[5])))
			s += 6;
		while (isspace((unsigned char)*s))
			s++;
	}
	return strncasecmp(s, "autocommit", 10) == 0 && !is_ident_char((unsigned char)s[10]);
}

enum sg_tx_control sg_statement_tx_control(const char *sql, enum sg_engine engine)
{
	size_t pos = 0;
	const char *w1, *w2;
	size_t n1 = next_word(sql, &pos, &w1);
	size_t after1 = pos;
	size_t n2 = next_word(sql, &pos, &w2);
	size_t after2 = pos;
	/* KEYWORD [WORK | TRANSACTION] and nothing else */
	bool plain = n2 == 0 ? ends_at(sql, after1)
			     : (word_is(w2, n2, "work") || word_is(w2, n2, "transaction")) && ends_at(sql, after2);

	if (word_is(w1, n1, "begin")) {
		/* MariaDB BEGIN NOT ATOMIC is a compound statement, BEGIN ATOMIC a body */
		if (word_is(w2, n2, "not") || word_is(w2, n2, "atomic"))
			return SG_TXC_NONE;
		return plain ? SG_TXC_BEGIN : SG_TXC_OTHER;
	}
	if (word_is(w1, n1, "start"))
		return !word_is(w2, n2, "transaction") ? SG_TXC_NONE : ends_at(sql, after2) ? SG_TXC_BEGIN : SG_TXC_OTHER;
	if (word_is(w1, n1, "commit"))
		return plain ? SG_TXC_COMMIT : SG_TXC_OTHER;
	if (word_is(w1, n1, "end")) {
		/* END is COMMIT on PostgreSQL and SQLite; in MySQL it only closes blocks */
		if (engine == SG_ENGINE_MYSQL)
			return SG_TXC_NONE;
		return plain ? SG_TXC_COMMIT : SG_TXC_OTHER;
	}
	if (word_is(w1, n1, "rollback") || word_is(w1, n1, "savepoint") || word_is(w1, n1, "release") ||
	    word_is(w1, n1, "abort"))
		return SG_TXC_OTHER;
	if (word_is(w1, n1, "prepare") && word_is(w2, n2, "transaction"))
		return SG_TXC_OTHER;   /* PostgreSQL two-phase commit */
	if (word_is(w1, n1, "xa"))
		return SG_TXC_OTHER;   /* MySQL XA START/END/COMMIT */
	if (word_is(w1, n1, "set") && sets_autocommit(sql + after1))
		return SG_TXC_OTHER;   /* SET autocommit = 1 commits */
	return SG_TXC_NONE;
}
