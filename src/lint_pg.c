/*
 * lint_pg.c - the PostgreSQL analyser of `lint`, on the real parser.
 *
 * libpg_query (PostgreSQL 15's own grammar, linked statically) turns the
 * script into parse trees (its protobuf form); this file walks the
 * statements a rule is about. Nothing here reads SQL text except to
 * point a finding at a column name the tree has no position for. A
 * script the parser refuses as a whole is parsed statement by statement
 * (schemagate's own split), so one bad statement is reported and the
 * others are still checked.
 */
#include "schemagate/lint.h"
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <pg_query.h>
#include <stdarg.h>
#include <pg_query/pg_query.pb-c.h>
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

static bool created_here(const struct walk *w, const PgQuery__RangeVar *rv)
{
	if (!rv)
		return false;
	char name[128];
	lower_copy(name, rv->relname, sizeof(name));
	for (size_t i = 0; i < w->ncreated; i++)
		if (strcmp(w->created[i], name) == 0)
			return true;
	return false;
}

static void remember_created(struct walk *w, const PgQuery__RangeVar *rv)
{
	if (!rv || created_here(w, rv))
		return;
	char name[128];
	lower_copy(name, rv->relname, sizeof(name));
	w->created = sg_realloc(w->created, (w->ncreated + 1) * sizeof(*w->created));
	w->created[w->ncreated++] = sg_strdup(name);
}

static const char *relname(const PgQuery__RangeVar *rv)
{
	return rv && rv->relname ? rv->relname : "?";
}

/* The last name of a type ("pg_catalog.int4" -> "int4"). */
static const char *type_last_name(const PgQuery__TypeName *t)
{
	if (!t || t->n_names == 0)
		return "";
	const PgQuery__Node *n = t->names[t->n_names - 1];
	return n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : "";
}

static bool name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcasecmp(name, *list) == 0)
			return true;
	return false;
}

/* squawk's column type rules, for a column of a new or altered table. */
static void check_type(struct walk *w, const PgQuery__TypeName *t, const char *column)
{
	static const char *const int4[] = {"int4", "int", "integer", "serial", "serial4", NULL};
	static const char *const int2[] = {"int2", "smallint", "smallserial", "serial2", NULL};
	static const char *const serials[] = {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2",
					      NULL};
	const char *name = type_last_name(t);
	if (!*name)
		return;
	size_t p = at(w, t->location);
	if (name_in(name, int4))
		add(w, "prefer-bigint-over-int", p, "column %s is %s", column, name);
	if (name_in(name, int2))
		add(w, "prefer-bigint-over-smallint", p, "column %s is %s", column, name);
	if (name_in(name, serials))
		add(w, "prefer-identity", p, "column %s is %s", column, name);
	if (strcasecmp(name, "varchar") == 0 && t->n_typmods > 0)
		add(w, "prefer-text-field", p, "column %s is varchar(n)", column);
	if (strcasecmp(name, "bpchar") == 0)
		add(w, "ban-char-field", p, "column %s is char(n)", column);
	if (strcasecmp(name, "timestamp") == 0)
		add(w, "prefer-timestamp-tz", p, "column %s is timestamp", column);
}

/* A default PostgreSQL 11+ adds without rewriting: constants, casts of
 * constants, and the stable clock functions. */
static bool default_is_cheap(const PgQuery__Node *n)
{
	static const char *const stable[] = {"now", "statement_timestamp", "transaction_timestamp",
					     "current_timestamp", "current_date", NULL};
	if (!n)
		return true;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_SQLVALUE_FUNCTION:
		return true;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		return default_is_cheap(n->type_cast->arg);
	case PG_QUERY__NODE__NODE_FUNC_CALL: {
		const PgQuery__FuncCall *f = n->func_call;
		if (f->n_funcname == 0 || f->n_args > 0)
			return false;
		const PgQuery__Node *last = f->funcname[f->n_funcname - 1];
		return last->node_case == PG_QUERY__NODE__NODE_STRING && name_in(last->string->sval, stable);
	}
	default:
		return false;
	}
}

/* ALTER TABLE ... ADD COLUMN of an existing table. */
static void check_add_column(struct walk *w, const PgQuery__AlterTableStmt *s, const PgQuery__AlterTableCmd *cmd,
			     const PgQuery__ColumnDef *col)
{
	size_t p = at(w, col->location);
	check_type(w, col->type_name, col->colname);
	if (w->no_tx && !cmd->missing_ok)
		add(w, "prefer-robust-stmts", p, "ADD COLUMN %s without IF NOT EXISTS", col->colname);
	if (created_here(w, s->relation))
		return;
	bool not_null = col->is_not_null, has_default = col->raw_default != NULL, generated = false;
	const PgQuery__Node *def = col->raw_default;
	for (size_t i = 0; i < col->n_constraints; i++) {
		const PgQuery__Node *n = col->constraints[i];
		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		const PgQuery__Constraint *c = n->constraint;
		size_t cp = at(w, c->location);
		switch (c->contype) {
		case PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL: not_null = true; break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT:
			has_default = true;
			def = c->raw_expr;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY: has_default = true; break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED:
			generated = true;
			add(w, "adding-field-with-default", cp, "column %s of %s is GENERATED ... STORED", col->colname,
			    relname(s->relation));
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
			add(w, "adding-serial-primary-key-field", cp, "column %s of %s", col->colname,
			    relname(s->relation));
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
			add(w, "disallowed-unique-constraint", cp, "column %s of %s", col->colname, relname(s->relation));
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
			add(w, "adding-foreign-key-constraint", cp, "column %s of %s", col->colname,
			    relname(s->relation));
			break;
		default: break;
		}
	}
	const char *t = type_last_name(col->type_name);
	bool serial = strncasecmp(t, "serial", 6) == 0 || strcasecmp(t, "bigserial") == 0 ||
		      strcasecmp(t, "smallserial") == 0;
	if (not_null && !has_default && !generated && !serial)
		add(w, "adding-required-field", p, "column %s of %s", col->colname, relname(s->relation));
	if (has_default && !default_is_cheap(def))
		add(w, "adding-field-with-default", p, "column %s of %s", col->colname, relname(s->relation));
}

static void check_add_constraint(struct walk *w, const PgQuery__AlterTableStmt *s, const PgQuery__Constraint *c)
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
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		if (!using_index)
			add(w, "disallowed-unique-constraint", p, "on %s", table);
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		if (!using_index)
			add(w, "adding-serial-primary-key-field", p, "on %s", table);
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		if (!c->skip_validation) {
			add(w, "constraint-missing-not-valid", p, "foreign key on %s", table);
			add(w, "adding-foreign-key-constraint", p, "on %s", table);
		}
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		if (!c->skip_validation)
			add(w, "constraint-missing-not-valid", p, "check on %s", table);
		break;
	default: break;
	}
}

static void check_alter_table(struct walk *w, const PgQuery__AlterTableStmt *s)
{
	if (s->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return;
	const char *table = relname(s->relation);
	size_t cursor = at(w, s->relation ? s->relation->location : -1);
	for (size_t i = 0; i < s->n_cmds; i++) {
		if (s->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		const PgQuery__AlterTableCmd *cmd = s->cmds[i]->alter_table_cmd;
		const PgQuery__Node *def = cmd->def;
		size_t p;
		switch (cmd->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
			if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF) {
				check_add_column(w, s, cmd, def->column_def);
				cursor = at(w, def->column_def->location);
			}
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
			p = cursor = find_name(w, cursor, cmd->name);
			if (!created_here(w, s->relation))
				add(w, "ban-drop-column", p, "column %s of %s", cmd->name, table);
			if (w->no_tx && !cmd->missing_ok)
				add(w, "prefer-robust-stmts", p, "DROP COLUMN %s without IF EXISTS", cmd->name);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
			p = cursor = find_name(w, cursor, cmd->name);
			if (!created_here(w, s->relation))
				add(w, "changing-column-type", p, "column %s of %s", cmd->name, table);
			if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				check_type(w, def->column_def->type_name, cmd->name);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
			p = cursor = find_name(w, cursor, cmd->name);
			if (!created_here(w, s->relation))
				add(w, "adding-not-nullable-field", p, "column %s of %s", cmd->name, table);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull:
			p = cursor = find_name(w, cursor, cmd->name);
			add(w, "ban-drop-not-null", p, "column %s of %s", cmd->name, table);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault:
			p = cursor = find_name(w, cursor, cmd->name);
			if (!def && !created_here(w, s->relation))
				add(w, "ban-drop-default", p, "column %s of %s", cmd->name, table);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
			if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT) {
				check_add_constraint(w, s, def->constraint);
				cursor = at(w, def->constraint->location);
			}
			break;
		default: break;
		}
	}
}

static void check_create_table(struct walk *w, const PgQuery__CreateStmt *s)
{
	remember_created(w, s->relation);
	if (w->no_tx && !s->if_not_exists)
		add(w, "prefer-robust-stmts", w->stmt_start, "CREATE TABLE %s without IF NOT EXISTS", relname(s->relation));
	for (size_t i = 0; i < s->n_table_elts; i++)
		if (s->table_elts[i]->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
			check_type(w, s->table_elts[i]->column_def->type_name, s->table_elts[i]->column_def->colname);
}

static void check_index(struct walk *w, const PgQuery__IndexStmt *s)
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
static bool dropped_only_new(const struct walk *w, const PgQuery__DropStmt *s)
{
	for (size_t i = 0; i < s->n_objects; i++) {
		const PgQuery__Node *o = s->objects[i];
		if (o->node_case != PG_QUERY__NODE__NODE_LIST || o->list->n_items == 0)
			return false;
		const PgQuery__Node *last = o->list->items[o->list->n_items - 1];
		if (last->node_case != PG_QUERY__NODE__NODE_STRING)
			return false;
		PgQuery__RangeVar rv = PG_QUERY__RANGE_VAR__INIT;
		rv.relname = last->string->sval;
		if (!created_here(w, &rv))
			return false;
	}
	return s->n_objects > 0;
}

static void check_drop(struct walk *w, const PgQuery__DropStmt *s)
{
	size_t p = w->stmt_start;
	switch (s->remove_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		if (!dropped_only_new(w, s))
			add(w, "ban-drop-table", p, "%s", "");
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
		add(w, "ban-drop-schema", p, "%s", "");
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
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

static void check_rename(struct walk *w, const PgQuery__RenameStmt *s)
{
	if (s->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE && !created_here(w, s->relation))
		add(w, "renaming-table", w->stmt_start, "%s to %s", relname(s->relation), s->newname);
	else if (s->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN &&
		 s->relation_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE && !created_here(w, s->relation))
		add(w, "renaming-column", find_name(w, w->stmt_start, s->subname), "%s.%s to %s", relname(s->relation),
		    s->subname, s->newname);
}

static bool has_option(PgQuery__Node *const *opts, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && strcasecmp(opts[i]->def_elem->defname, name) == 0)
			return true;
	return false;
}

static void check_statement(struct walk *w, const PgQuery__Node *n)
{
	size_t p = w->stmt_start;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT: check_alter_table(w, n->alter_table_stmt); break;
	case PG_QUERY__NODE__NODE_CREATE_STMT: check_create_table(w, n->create_stmt); break;
	case PG_QUERY__NODE__NODE_INDEX_STMT: check_index(w, n->index_stmt); break;
	case PG_QUERY__NODE__NODE_DROP_STMT: check_drop(w, n->drop_stmt); break;
	case PG_QUERY__NODE__NODE_RENAME_STMT: check_rename(w, n->rename_stmt); break;
	case PG_QUERY__NODE__NODE_DROPDB_STMT: add(w, "ban-drop-database", p, "%s", n->dropdb_stmt->dbname); break;
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
		if (!has_option(n->reindex_stmt->params, n->reindex_stmt->n_params, "concurrently"))
			add(w, "require-concurrent-reindex", p, "%s", "");
		break;
	case PG_QUERY__NODE__NODE_ALTER_ENUM_STMT:
		if (*n->alter_enum_stmt->new_val && !*n->alter_enum_stmt->old_val && !w->no_tx)
			add(w, "enum-add-value-in-transaction", p, "value '%s'", n->alter_enum_stmt->new_val);
		break;
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		if (n->truncate_stmt->behavior == PG_QUERY__DROP_BEHAVIOR__DROP_CASCADE)
			add(w, "ban-truncate-cascade", p, "%s", "");
		break;
	case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
		for (size_t i = 0; i < n->create_domain_stmt->n_constraints; i++) {
			const PgQuery__Node *c = n->create_domain_stmt->constraints[i];
			if (c->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
			    c->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK) {
				add(w, "ban-create-domain-with-constraint", at(w, c->constraint->location), "%s", "");
				break;
			}
		}
		break;
	case PG_QUERY__NODE__NODE_ALTER_DOMAIN_STMT:
		if (strcmp(n->alter_domain_stmt->subtype, "C") == 0)
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
 * Returns false with *error_at set when the parser refuses it. */
static bool walk_text(struct walk *w, const char *text, size_t base, size_t *error_at, char **error)
{
	PgQueryProtobufParseResult r = pg_query_parse_protobuf(text);
	if (r.error) {
		*error_at = base + (r.error->cursorpos > 0 ? (size_t)r.error->cursorpos - 1 : 0);
		*error = sg_strdup(r.error->message);
		pg_query_free_protobuf_parse_result(r);
		return false;
	}
	PgQuery__ParseResult *tree =
		pg_query__parse_result__unpack(NULL, r.parse_tree.len, (const uint8_t *)r.parse_tree.data);
	size_t len = strlen(text);
	w->base = base;
	for (size_t i = 0; tree && i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *raw = tree->stmts[i];
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
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(r);
	return true;
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
