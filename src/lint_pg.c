/*
 * lint_pg.c - the PostgreSQL analyser of `lint`, on the real parser.
 *
 * libpg_query (PostgreSQL 15's own grammar, linked statically) turns the
 * script into PostgreSQL's raw parse trees (pg_query_raw_parse, in a
 * memory context of its own); this file walks the statements a rule is
 * about, through the node structs of the PostgreSQL 15 server headers
 * (postgresql-server-dev-15; test_lint.c's pg_nodes tests check that they
 * and the archive agree). It skips libpg_query's protobuf form: encoding
 * and decoding that cost five times the parse itself. Nothing here reads SQL text except to
 * point a finding at a column name the tree has no position for. A
 * script the parser refuses as a whole is parsed statement by statement
 * (schemagate's own split), so one bad statement is reported and the
 * others are still checked.
 */
/* PostgreSQL's headers first: postgres.h sets up what the others need. */
#include <pg_query.h>
#include <pg_query/pg_query_internal.h>
#include <nodes/parsenodes.h>

#include "schemagate/lint.h"
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What one script's walk knows so far. */
struct walk {
	const char *script;
	size_t base;                 /* offset of the parsed text in the script */
	bool no_tx;
	struct sg_lint_result *out;
	size_t stmt_start, stmt_end; /* the statement being walked, script offsets */
	char **created;              /* tables created earlier in this script (lower case) */
	size_t ncreated;
};

static void add(struct walk *w, const char *rule, size_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(struct walk *w, const char *rule, size_t offset, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sg_lint_vadd(w->out, rule, offset, w->stmt_start, w->stmt_end, fmt, ap);
	va_end(ap);
}

/* A parser location (relative to the parsed text, -1 when unknown) as a script offset. */
static size_t at(const struct walk *w, int32_t location)
{
	if (location < 0)
		return w->stmt_start;
	size_t p = w->base + (size_t)location;
	return p < w->stmt_start || p > w->stmt_end ? w->stmt_start : p;
}

/* The first occurrence of identifier name as a word (or quoted) at or
 * after from in the statement: where a tree without positions points. */
static size_t find_name(const struct walk *w, size_t from, const char *name)
{
	size_t n = strlen(name);
	if (n == 0)
		return from;
	for (size_t p = from; p + n <= w->stmt_end; p++) {
		const char *s = w->script + p;
		if (strncasecmp(s, name, n) != 0)
			continue;
		bool before = p > w->stmt_start && (isalnum((unsigned char)s[-1]) || s[-1] == '_');
		bool after = p + n < w->stmt_end && (isalnum((unsigned char)s[n]) || s[n] == '_');
		if (!before && !after)
			return s[-1] == '"' && p > w->stmt_start ? p - 1 : p;
	}
	return from;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	size_t i = 0;
	for (; src[i] && i + 1 < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

/* A name of the tree, which may be absent (NULL). */
static const char *str(const char *s)
{
	return s ? s : "";
}

static bool created_name(const struct walk *w, const char *relation)
{
	if (!relation)
		return false;
	char name[128];
	lower_copy(name, relation, sizeof(name));
	for (size_t i = 0; i < w->ncreated; i++)
		if (strcmp(w->created[i], name) == 0)
			return true;
	return false;
}

static bool created_here(const struct walk *w, const RangeVar *rv)
{
	return rv && created_name(w, rv->relname);
}

static void remember_created(struct walk *w, const RangeVar *rv)
{
	if (!rv || !rv->relname || created_here(w, rv))
		return;
	char name[128];
	lower_copy(name, rv->relname, sizeof(name));
	w->created = sg_realloc(w->created, (w->ncreated + 1) * sizeof(*w->created));
	w->created[w->ncreated++] = sg_strdup(name);
}

static const char *relname(const RangeVar *rv)
{
	return rv && rv->relname ? rv->relname : "?";
}

/* The string of a String node, NULL for any other node. */
static const char *string_value(const Node *n)
{
	return n && IsA(n, String) ? strVal(n) : NULL;
}

/* The last name of a qualified name list ("pg_catalog.int4" -> "int4"). */
static const char *last_name(const List *names)
{
	const char *s = names ? string_value(llast(names)) : NULL;
	return s ? s : "";
}

static bool name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcasecmp(name, *list) == 0)
			return true;
	return false;
}

/* squawk's column type rules, for a column of a new or altered table. */
static void check_type(struct walk *w, const TypeName *t, const char *column)
{
	static const char *const int4[] = {"int4", "int", "integer", "serial", "serial4", NULL};
	static const char *const int2[] = {"int2", "smallint", "smallserial", "serial2", NULL};
	static const char *const serials[] = {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2",
					      NULL};
	const char *name = t ? last_name(t->names) : "";
	if (!*name)
		return;
	column = str(column);
	size_t p = at(w, t->location);
	if (name_in(name, int4))
		add(w, "prefer-bigint-over-int", p, "column %s is %s", column, name);
	if (name_in(name, int2))
		add(w, "prefer-bigint-over-smallint", p, "column %s is %s", column, name);
	if (name_in(name, serials))
		add(w, "prefer-identity", p, "column %s is %s", column, name);
	if (strcasecmp(name, "varchar") == 0 && list_length(t->typmods) > 0)
		add(w, "prefer-text-field", p, "column %s is varchar(n)", column);
	if (strcasecmp(name, "bpchar") == 0)
		add(w, "ban-char-field", p, "column %s is char(n)", column);
	if (strcasecmp(name, "timestamp") == 0)
		add(w, "prefer-timestamp-tz", p, "column %s is timestamp", column);
}

/* A default PostgreSQL 11+ adds without rewriting: constants, casts of
 * constants, and the stable clock functions. */
static bool default_is_cheap(const Node *n)
{
	static const char *const stable[] = {"now", "statement_timestamp", "transaction_timestamp",
					     "current_timestamp", "current_date", NULL};
	if (!n)
		return true;
	switch (nodeTag(n)) {
	case T_A_Const:
	case T_SQLValueFunction:
		return true;
	case T_TypeCast:
		return default_is_cheap(((const TypeCast *)n)->arg);
	case T_FuncCall: {
		const FuncCall *f = (const FuncCall *)n;
		if (list_length(f->funcname) == 0 || list_length(f->args) > 0)
			return false;
		const char *last = string_value(llast(f->funcname));
		return last && name_in(last, stable);
	}
	default:
		return false;
	}
}

/* ALTER TABLE ... ADD COLUMN of an existing table. */
static void check_add_column(struct walk *w, const AlterTableStmt *s, const AlterTableCmd *cmd, const ColumnDef *col)
{
	size_t p = at(w, col->location);
	const char *column = str(col->colname);
	check_type(w, col->typeName, column);
	if (w->no_tx && !cmd->missing_ok)
		add(w, "prefer-robust-stmts", p, "ADD COLUMN %s without IF NOT EXISTS", column);
	if (created_here(w, s->relation))
		return;
	bool not_null = col->is_not_null, has_default = col->raw_default != NULL, generated = false;
	const Node *def = col->raw_default;
	const ListCell *lc;
	foreach (lc, col->constraints) {
		const Node *n = lfirst(lc);
		if (!IsA(n, Constraint))
			continue;
		const Constraint *c = (const Constraint *)n;
		size_t cp = at(w, c->location);
		switch (c->contype) {
		case CONSTR_NOTNULL: not_null = true; break;
		case CONSTR_DEFAULT:
			has_default = true;
			def = c->raw_expr;
			break;
		case CONSTR_IDENTITY: has_default = true; break;
		case CONSTR_GENERATED:
			generated = true;
			add(w, "adding-field-with-default", cp, "column %s of %s is GENERATED ... STORED", column,
			    relname(s->relation));
			break;
		case CONSTR_PRIMARY:
			add(w, "adding-serial-primary-key-field", cp, "column %s of %s", column, relname(s->relation));
			break;
		case CONSTR_UNIQUE:
			add(w, "disallowed-unique-constraint", cp, "column %s of %s", column, relname(s->relation));
			break;
		case CONSTR_FOREIGN:
			add(w, "adding-foreign-key-constraint", cp, "column %s of %s", column, relname(s->relation));
			break;
		default: break;
		}
	}
	const char *t = col->typeName ? last_name(col->typeName->names) : "";
	bool serial = strncasecmp(t, "serial", 6) == 0 || strcasecmp(t, "bigserial") == 0 ||
		      strcasecmp(t, "smallserial") == 0;
	if (not_null && !has_default && !generated && !serial)
		add(w, "adding-required-field", p, "column %s of %s", column, relname(s->relation));
	if (has_default && !default_is_cheap(def))
		add(w, "adding-field-with-default", p, "column %s of %s", column, relname(s->relation));
}

static void check_add_constraint(struct walk *w, const AlterTableStmt *s, const Constraint *c)
{
	size_t p = at(w, c->location);
	const char *table = relname(s->relation);
	bool fresh = created_here(w, s->relation);
	if (w->no_tx)
		add(w, "prefer-robust-stmts", p, "ADD CONSTRAINT on %s cannot be made to run twice", table);
	if (fresh)
		return;
	bool using_index = c->indexname && *c->indexname;
	switch (c->contype) {
	case CONSTR_UNIQUE:
		if (!using_index)
			add(w, "disallowed-unique-constraint", p, "on %s", table);
		break;
	case CONSTR_PRIMARY:
		if (!using_index)
			add(w, "adding-serial-primary-key-field", p, "on %s", table);
		break;
	case CONSTR_FOREIGN:
		if (!c->skip_validation) {
			add(w, "constraint-missing-not-valid", p, "foreign key on %s", table);
			add(w, "adding-foreign-key-constraint", p, "on %s", table);
		}
		break;
	case CONSTR_CHECK:
		if (!c->skip_validation)
			add(w, "constraint-missing-not-valid", p, "check on %s", table);
		break;
	default: break;
	}
}

static void check_alter_table(struct walk *w, const AlterTableStmt *s)
{
	if (s->objtype != OBJECT_TABLE)
		return;
	const char *table = relname(s->relation);
	size_t cursor = at(w, s->relation ? s->relation->location : -1);
	const ListCell *lc;
	foreach (lc, s->cmds) {
		const Node *n = lfirst(lc);
		if (!IsA(n, AlterTableCmd))
			continue;
		const AlterTableCmd *cmd = (const AlterTableCmd *)n;
		const Node *def = cmd->def;
		const char *column = str(cmd->name);
		size_t p;
		switch (cmd->subtype) {
		case AT_AddColumn:
			if (def && IsA(def, ColumnDef)) {
				check_add_column(w, s, cmd, (const ColumnDef *)def);
				cursor = at(w, ((const ColumnDef *)def)->location);
			}
			break;
		case AT_DropColumn:
			p = cursor = find_name(w, cursor, column);
			if (!created_here(w, s->relation))
				add(w, "ban-drop-column", p, "column %s of %s", column, table);
			if (w->no_tx && !cmd->missing_ok)
				add(w, "prefer-robust-stmts", p, "DROP COLUMN %s without IF EXISTS", column);
			break;
		case AT_AlterColumnType:
			p = cursor = find_name(w, cursor, column);
			if (!created_here(w, s->relation))
				add(w, "changing-column-type", p, "column %s of %s", column, table);
			if (def && IsA(def, ColumnDef))
				check_type(w, ((const ColumnDef *)def)->typeName, column);
			break;
		case AT_SetNotNull:
			p = cursor = find_name(w, cursor, column);
			if (!created_here(w, s->relation))
				add(w, "adding-not-nullable-field", p, "column %s of %s", column, table);
			break;
		case AT_DropNotNull:
			p = cursor = find_name(w, cursor, column);
			add(w, "ban-drop-not-null", p, "column %s of %s", column, table);
			break;
		case AT_ColumnDefault:
			p = cursor = find_name(w, cursor, column);
			if (!def && !created_here(w, s->relation))
				add(w, "ban-drop-default", p, "column %s of %s", column, table);
			break;
		case AT_AddConstraint:
			if (def && IsA(def, Constraint)) {
				check_add_constraint(w, s, (const Constraint *)def);
				cursor = at(w, ((const Constraint *)def)->location);
			}
			break;
		default: break;
		}
	}
}

static void check_create_table(struct walk *w, const CreateStmt *s)
{
	remember_created(w, s->relation);
	if (w->no_tx && !s->if_not_exists)
		add(w, "prefer-robust-stmts", w->stmt_start, "CREATE TABLE %s without IF NOT EXISTS", relname(s->relation));
	const ListCell *lc;
	foreach (lc, s->tableElts) {
		const Node *n = lfirst(lc);
		if (IsA(n, ColumnDef))
			check_type(w, ((const ColumnDef *)n)->typeName, ((const ColumnDef *)n)->colname);
	}
}

static void check_index(struct walk *w, const IndexStmt *s)
{
	size_t p = w->stmt_start;
	const char *table = relname(s->relation);
	if (s->concurrent && !w->no_tx)
		add(w, "ban-concurrent-index-creation-in-transaction", p, "index on %s", table);
	if (w->no_tx && !s->if_not_exists)
		add(w, "prefer-robust-stmts", p, "CREATE INDEX on %s without IF NOT EXISTS", table);
	if (created_here(w, s->relation))
		return;
	if (!s->concurrent)
		add(w, "require-concurrent-index-creation", p, "index on %s", table);
	if (s->unique)
		add(w, "adding-unique-index", p, "on %s", table);
}

/* Every table a DROP TABLE names was created earlier in this script
 * (no release uses it yet)? */
static bool dropped_only_new(const struct walk *w, const DropStmt *s)
{
	const ListCell *lc;
	foreach (lc, s->objects) {
		const Node *o = lfirst(lc);
		if (!IsA(o, List) || list_length((const List *)o) == 0 ||
		    !created_name(w, string_value(llast((const List *)o))))
			return false;
	}
	return list_length(s->objects) > 0;
}

static void check_drop(struct walk *w, const DropStmt *s)
{
	size_t p = w->stmt_start;
	switch (s->removeType) {
	case OBJECT_TABLE:
		if (!dropped_only_new(w, s))
			add(w, "ban-drop-table", p, "%s", "");
		break;
	case OBJECT_SCHEMA:
		add(w, "ban-drop-schema", p, "%s", "");
		break;
	case OBJECT_INDEX:
		if (!s->concurrent)
			add(w, "require-concurrent-index-deletion", p, "%s", "");
		else if (!w->no_tx)
			add(w, "ban-concurrent-index-creation-in-transaction", p, "DROP INDEX CONCURRENTLY");
		break;
	default: return;
	}
	if (w->no_tx && !s->missing_ok)
		add(w, "prefer-robust-stmts", p, "DROP without IF EXISTS");
}

static void check_rename(struct walk *w, const RenameStmt *s)
{
	if (s->renameType == OBJECT_TABLE && !created_here(w, s->relation))
		add(w, "renaming-table", w->stmt_start, "%s to %s", relname(s->relation), str(s->newname));
	else if (s->renameType == OBJECT_COLUMN && s->relationType == OBJECT_TABLE && !created_here(w, s->relation))
		add(w, "renaming-column", find_name(w, w->stmt_start, str(s->subname)), "%s.%s to %s",
		    relname(s->relation), str(s->subname), str(s->newname));
}

static bool has_option(const List *options, const char *name)
{
	const ListCell *lc;
	foreach (lc, options) {
		const Node *n = lfirst(lc);
		if (IsA(n, DefElem) && strcasecmp(str(((const DefElem *)n)->defname), name) == 0)
			return true;
	}
	return false;
}

static void check_statement(struct walk *w, const Node *n)
{
	size_t p = w->stmt_start;
	switch (nodeTag(n)) {
	case T_AlterTableStmt: check_alter_table(w, (const AlterTableStmt *)n); break;
	case T_CreateStmt: check_create_table(w, (const CreateStmt *)n); break;
	case T_IndexStmt: check_index(w, (const IndexStmt *)n); break;
	case T_DropStmt: check_drop(w, (const DropStmt *)n); break;
	case T_RenameStmt: check_rename(w, (const RenameStmt *)n); break;
	case T_DropdbStmt: add(w, "ban-drop-database", p, "%s", str(((const DropdbStmt *)n)->dbname)); break;
	case T_ReindexStmt:
		if (!has_option(((const ReindexStmt *)n)->params, "concurrently"))
			add(w, "require-concurrent-reindex", p, "%s", "");
		break;
	case T_AlterEnumStmt: {
		const AlterEnumStmt *s = (const AlterEnumStmt *)n;
		if (s->newVal && *s->newVal && !(s->oldVal && *s->oldVal) && !w->no_tx)
			add(w, "enum-add-value-in-transaction", p, "value '%s'", s->newVal);
		break;
	}
	case T_TruncateStmt:
		if (((const TruncateStmt *)n)->behavior == DROP_CASCADE)
			add(w, "ban-truncate-cascade", p, "%s", "");
		break;
	case T_CreateDomainStmt: {
		const ListCell *lc;
		foreach (lc, ((const CreateDomainStmt *)n)->constraints) {
			const Node *c = lfirst(lc);
			if (IsA(c, Constraint) && ((const Constraint *)c)->contype == CONSTR_CHECK) {
				add(w, "ban-create-domain-with-constraint", at(w, ((const Constraint *)c)->location), "%s",
				    "");
				break;
			}
		}
		break;
	}
	case T_AlterDomainStmt:
		if (((const AlterDomainStmt *)n)->subtype == 'C')
			add(w, "ban-alter-domain-with-add-constraint", p, "%s", "");
		break;
	default: break;
	}
}

/* Past blanks and comments from p (a parser's statement location starts
 * right after the previous ';'). */
static size_t skip_blank(const char *s, size_t p, size_t end)
{
	while (p < end) {
		if (isspace((unsigned char)s[p])) {
			p++;
		} else if (s[p] == '-' && p + 1 < end && s[p + 1] == '-') {
			while (p < end && s[p] != '\n')
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

/* Parse text (script[base, base + strlen(text))) and walk its statements.
 * Returns false with *error_at set when the parser refuses it. The tree
 * lives in libpg_query's memory context, gone once the walk is over;
 * what a finding keeps is copied by sg_lint_vadd. */
static bool walk_text(struct walk *w, const char *text, size_t base, size_t *error_at, char **error)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(text);
	bool ok = r.error == NULL;
	if (!ok) {
		*error_at = base + (r.error->cursorpos > 0 ? (size_t)r.error->cursorpos - 1 : 0);
		*error = sg_strdup(r.error->message);
		pg_query_free_error(r.error);
	} else {
		size_t len = strlen(text);
		w->base = base;
		const ListCell *lc;
		foreach (lc, r.tree) {
			const RawStmt *raw = lfirst(lc);
			size_t start = raw->stmt_location > 0 ? (size_t)raw->stmt_location : 0;
			size_t end = raw->stmt_len > 0 ? start + (size_t)raw->stmt_len : len;
			if (end > len)
				end = len;
			start = skip_blank(text, start, end);
			while (end > start && isspace((unsigned char)text[end - 1]))
				end--;
			w->stmt_start = base + start;
			w->stmt_end = base + end;
			if (raw->stmt)
				check_statement(w, raw->stmt);
		}
	}
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	return ok;
}

void sg_lint_postgres(const char *script, bool no_tx, struct sg_lint_result *out)
{
	struct walk w = {.script = script, .no_tx = no_tx, .out = out};
	size_t error_at = 0;
	char *error = NULL;
	if (!walk_text(&w, script, 0, &error_at, &error)) {
		free(error);
		error = NULL;
		/* one statement at a time, so the others are still checked */
		struct sg_statement_list l;
		struct sg_error e = {0};
		if (sg_sql_split(script, SG_ENGINE_POSTGRES, &l, &e) < 0) {
			sg_lint_add(out, "syntax-error", error_at, 0, strlen(script), "%s", e.msg);
		} else {
			for (size_t i = 0; i < l.count; i++) {
				if (walk_text(&w, l.items[i].sql, l.items[i].start, &error_at, &error))
					continue;
				sg_lint_add(out, "syntax-error", error_at, l.items[i].start, l.items[i].end, "%s", error);
				free(error);
				error = NULL;
			}
			sg_statement_list_free(&l);
		}
	}
	for (size_t i = 0; i < w.ncreated; i++)
		free(w.created[i]);
	free(w.created);
}
