/*
 * test_pg_nodes.c - lint_pg.c reads libpg_query's raw parse trees through
 * the node structs of the PostgreSQL 15 server headers
 * (postgresql-server-dev-15), while libpg_query.a was compiled against its
 * own copy of them. These tests parse known statements and check the node
 * tags and every field lint reads, so headers and archive that disagree
 * (another major version, a shifted enum, a moved field) fail here, loudly,
 * instead of lint misreading memory.
 */
#include <pg_query.h>
#include <pg_query/pg_query_internal.h>
#include <nodes/parsenodes.h>

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* The one statement of sql, in the memory context the caller entered. */
static const Node *parse_one(const char *sql, const RawStmt **raw_out)
{
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	cr_assert_null(r.error, "%s: %s", sql, r.error ? r.error->message : "");
	free(r.stderr_buffer);
	cr_assert_eq(list_length(r.tree), 1, "%s", sql);
	const RawStmt *raw = linitial(r.tree);
	cr_assert_eq(nodeTag(raw), T_RawStmt, "%s", sql);
	if (raw_out)
		*raw_out = raw;
	return raw->stmt;
}

static const char *last_string(const List *names)
{
	const Node *n = llast(names);
	cr_assert_eq(nodeTag(n), T_String);
	return strVal(n);
}

Test(pg_nodes, the_headers_are_postgresql_15)
{
	cr_assert_eq(PG_VERSION_NUM / 10000, 15);
}

Test(pg_nodes, alter_table_add_column)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	const char *sql = "SELECT 1; ALTER TABLE app.users ADD COLUMN IF NOT EXISTS age int NOT NULL DEFAULT 0";
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse(sql);
	cr_assert_null(r.error);
	free(r.stderr_buffer);
	cr_assert_eq(list_length(r.tree), 2);
	const RawStmt *raw = lsecond(r.tree);
	cr_assert_eq(raw->stmt_location, 9);
	cr_assert_eq(raw->stmt_len, 0); /* the last statement: to the end */
	const AlterTableStmt *s = (const AlterTableStmt *)raw->stmt;
	cr_assert_eq(nodeTag(s), T_AlterTableStmt);
	cr_assert_eq(s->objtype, OBJECT_TABLE);
	cr_assert_str_eq(s->relation->schemaname, "app");
	cr_assert_str_eq(s->relation->relname, "users");
	cr_assert_eq(s->relation->location, 22);
	cr_assert_eq(list_length(s->cmds), 1);
	const AlterTableCmd *cmd = linitial(s->cmds);
	cr_assert_eq(nodeTag(cmd), T_AlterTableCmd);
	cr_assert_eq(cmd->subtype, AT_AddColumn);
	cr_assert(cmd->missing_ok);
	const ColumnDef *col = (const ColumnDef *)cmd->def;
	cr_assert_eq(nodeTag(col), T_ColumnDef);
	cr_assert_str_eq(col->colname, "age");
	cr_assert_eq(col->location, 57);
	cr_assert_str_eq(last_string(col->typeName->names), "int4");
	cr_assert_eq(col->typeName->location, 61);
	cr_assert_null(col->raw_default);
	cr_assert_eq(list_length(col->constraints), 2);
	const Constraint *nn = linitial(col->constraints), *def = lsecond(col->constraints);
	cr_assert_eq(nodeTag(nn), T_Constraint);
	cr_assert_eq(nn->contype, CONSTR_NOTNULL);
	cr_assert_eq(nn->location, 65);
	cr_assert_eq(def->contype, CONSTR_DEFAULT);
	cr_assert_eq(nodeTag(def->raw_expr), T_A_Const);
	pg_query_exit_memory_context(ctx);
}

Test(pg_nodes, alter_table_column_commands)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	const AlterTableStmt *s = (const AlterTableStmt *)parse_one(
		"ALTER TABLE t ALTER COLUMN a SET NOT NULL, ALTER COLUMN b DROP NOT NULL, ALTER COLUMN c DROP DEFAULT, "
		"ALTER COLUMN d TYPE varchar(20), DROP COLUMN IF EXISTS e, "
		"ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES u (y) NOT VALID, ADD CONSTRAINT k UNIQUE USING INDEX i, "
		"ADD CONSTRAINT c CHECK (a > 0)",
		NULL);
	cr_assert_eq(nodeTag(s), T_AlterTableStmt);
	static const AlterTableType want[] = {AT_SetNotNull,   AT_DropNotNull, AT_ColumnDefault, AT_AlterColumnType,
					      AT_DropColumn,   AT_AddConstraint, AT_AddConstraint, AT_AddConstraint};
	static const char *const names[] = {"a", "b", "c", "d", "e", NULL, NULL, NULL};
	cr_assert_eq(list_length(s->cmds), 8);
	for (int i = 0; i < 8; i++) {
		const AlterTableCmd *cmd = list_nth(s->cmds, i);
		cr_assert_eq(cmd->subtype, want[i], "command %d", i);
		if (names[i])
			cr_assert_str_eq(cmd->name, names[i]);
	}
	cr_assert_null(((const AlterTableCmd *)list_nth(s->cmds, 2))->def); /* DROP DEFAULT */
	cr_assert(((const AlterTableCmd *)list_nth(s->cmds, 4))->missing_ok);
	const ColumnDef *type = (const ColumnDef *)((const AlterTableCmd *)list_nth(s->cmds, 3))->def;
	cr_assert_str_eq(last_string(type->typeName->names), "varchar");
	cr_assert_eq(list_length(type->typeName->typmods), 1);
	const Constraint *fk = (const Constraint *)((const AlterTableCmd *)list_nth(s->cmds, 5))->def;
	cr_assert_eq(fk->contype, CONSTR_FOREIGN);
	cr_assert_str_eq(fk->conname, "f");
	cr_assert_str_eq(fk->pktable->relname, "u");
	cr_assert(fk->skip_validation);
	const Constraint *uq = (const Constraint *)((const AlterTableCmd *)list_nth(s->cmds, 6))->def;
	cr_assert_eq(uq->contype, CONSTR_UNIQUE);
	cr_assert_str_eq(uq->indexname, "i");
	const Constraint *ck = (const Constraint *)((const AlterTableCmd *)list_nth(s->cmds, 7))->def;
	cr_assert_eq(ck->contype, CONSTR_CHECK);
	cr_assert_not(ck->skip_validation);
	pg_query_exit_memory_context(ctx);
}

Test(pg_nodes, create_table_and_index)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	const CreateStmt *t = (const CreateStmt *)parse_one(
		"CREATE TABLE IF NOT EXISTS t (a char(2), b timestamp DEFAULT now(), c bigint GENERATED ALWAYS AS (1) STORED)",
		NULL);
	cr_assert_eq(nodeTag(t), T_CreateStmt);
	cr_assert(t->if_not_exists);
	cr_assert_str_eq(t->relation->relname, "t");
	cr_assert_eq(list_length(t->tableElts), 3);
	const ColumnDef *a = linitial(t->tableElts), *b = lsecond(t->tableElts), *c = lthird(t->tableElts);
	cr_assert_str_eq(last_string(a->typeName->names), "bpchar");
	const Constraint *now = linitial(b->constraints);
	cr_assert_eq(now->contype, CONSTR_DEFAULT);
	const FuncCall *f = (const FuncCall *)now->raw_expr;
	cr_assert_eq(nodeTag(f), T_FuncCall);
	cr_assert_str_eq(last_string(f->funcname), "now");
	cr_assert_eq(list_length(f->args), 0);
	cr_assert_eq(((const Constraint *)linitial(c->constraints))->contype, CONSTR_GENERATED);

	const IndexStmt *i = (const IndexStmt *)parse_one("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", NULL);
	cr_assert_eq(nodeTag(i), T_IndexStmt);
	cr_assert_str_eq(i->idxname, "i");
	cr_assert_str_eq(i->relation->relname, "t");
	cr_assert(i->unique && i->concurrent && i->if_not_exists);
	const IndexStmt *plain = (const IndexStmt *)parse_one("CREATE INDEX ON t (a)", NULL);
	cr_assert_not(plain->unique || plain->concurrent || plain->if_not_exists);
	pg_query_exit_memory_context(ctx);
}

Test(pg_nodes, drop_rename_and_the_rest)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	const DropStmt *d = (const DropStmt *)parse_one("DROP INDEX CONCURRENTLY IF EXISTS s.i", NULL);
	cr_assert_eq(nodeTag(d), T_DropStmt);
	cr_assert_eq(d->removeType, OBJECT_INDEX);
	cr_assert(d->concurrent && d->missing_ok);
	cr_assert_str_eq(last_string(linitial(d->objects)), "i");
	d = (const DropStmt *)parse_one("DROP TABLE a, b", NULL);
	cr_assert_eq(d->removeType, OBJECT_TABLE);
	cr_assert_eq(list_length(d->objects), 2);
	cr_assert_eq(((const DropStmt *)parse_one("DROP SCHEMA s", NULL))->removeType, OBJECT_SCHEMA);

	const RenameStmt *r = (const RenameStmt *)parse_one("ALTER TABLE t RENAME COLUMN a TO b", NULL);
	cr_assert_eq(nodeTag(r), T_RenameStmt);
	cr_assert_eq(r->renameType, OBJECT_COLUMN);
	cr_assert_eq(r->relationType, OBJECT_TABLE);
	cr_assert_str_eq(r->relation->relname, "t");
	cr_assert_str_eq(r->subname, "a");
	cr_assert_str_eq(r->newname, "b");
	cr_assert_eq(((const RenameStmt *)parse_one("ALTER TABLE t RENAME TO u", NULL))->renameType, OBJECT_TABLE);

	const DropdbStmt *db = (const DropdbStmt *)parse_one("DROP DATABASE old", NULL);
	cr_assert_eq(nodeTag(db), T_DropdbStmt);
	cr_assert_str_eq(db->dbname, "old");

	const ReindexStmt *ri = (const ReindexStmt *)parse_one("REINDEX TABLE CONCURRENTLY t", NULL);
	cr_assert_eq(nodeTag(ri), T_ReindexStmt);
	const DefElem *opt = linitial(ri->params);
	cr_assert_eq(nodeTag(opt), T_DefElem);
	cr_assert_str_eq(opt->defname, "concurrently");

	const AlterEnumStmt *e = (const AlterEnumStmt *)parse_one("ALTER TYPE mood ADD VALUE 'meh'", NULL);
	cr_assert_eq(nodeTag(e), T_AlterEnumStmt);
	cr_assert_str_eq(e->newVal, "meh");
	cr_assert_null(e->oldVal);
	e = (const AlterEnumStmt *)parse_one("ALTER TYPE mood RENAME VALUE 'a' TO 'b'", NULL);
	cr_assert_str_eq(e->oldVal, "a");

	const TruncateStmt *tr = (const TruncateStmt *)parse_one("TRUNCATE t CASCADE", NULL);
	cr_assert_eq(nodeTag(tr), T_TruncateStmt);
	cr_assert_eq(tr->behavior, DROP_CASCADE);

	const CreateDomainStmt *cd =
		(const CreateDomainStmt *)parse_one("CREATE DOMAIN pos AS int CHECK (VALUE > 0)", NULL);
	cr_assert_eq(nodeTag(cd), T_CreateDomainStmt);
	cr_assert_eq(((const Constraint *)linitial(cd->constraints))->contype, CONSTR_CHECK);
	const AlterDomainStmt *ad =
		(const AlterDomainStmt *)parse_one("ALTER DOMAIN pos ADD CONSTRAINT c CHECK (VALUE < 9)", NULL);
	cr_assert_eq(nodeTag(ad), T_AlterDomainStmt);
	cr_assert_eq(ad->subtype, 'C');

	const CreateStmt *defaults = (const CreateStmt *)parse_one(
		"CREATE TABLE t (a text DEFAULT 'x'::text, b timestamptz DEFAULT CURRENT_TIMESTAMP)", NULL);
	const Constraint *cast = linitial(((const ColumnDef *)linitial(defaults->tableElts))->constraints);
	cr_assert_eq(nodeTag(cast->raw_expr), T_TypeCast);
	cr_assert_eq(nodeTag(((const TypeCast *)cast->raw_expr)->arg), T_A_Const);
	const Constraint *clock = linitial(((const ColumnDef *)lsecond(defaults->tableElts))->constraints);
	cr_assert_eq(nodeTag(clock->raw_expr), T_SQLValueFunction);
	pg_query_exit_memory_context(ctx);
}

Test(pg_nodes, a_refused_statement_reports_where)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError r = pg_query_raw_parse("SELECT 1;\nALTER TABLE t ADD;");
	cr_assert_not_null(r.error);
	cr_assert_eq(r.error->cursorpos, 28);
	cr_assert_not_null(strstr(r.error->message, "syntax error"));
	pg_query_free_error(r.error);
	free(r.stderr_buffer);
	pg_query_exit_memory_context(ctx);
}
