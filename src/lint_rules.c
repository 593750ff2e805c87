/*
 * lint_rules.c - the lint rule table, what the analysers call to report
 * a finding (sg_lint_add) and to read tokens, and `lint --rules`. Running
 * a script through its analyser and the suppression comments are in
 * lint_script.c, above the analysers.
 *
 * A rule's severity says what it costs: error for what breaks the
 * release still running (or fails outright), warning for long blocking
 * locks and squawk's style rules, note for what an analyser did not
 * understand. The timeout rules of squawk are listed so `lint --rules`
 * says why they never fire: schemagate sets lock_timeout per migration.
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

#define P SG_LINT_POSTGRES
#define M SG_LINT_MYSQL
#define S SG_LINT_SQLITE
#define E SG_LINT_ERROR
#define W SG_LINT_WARNING

/* Text shared by the rules that break the release still running. */
#define EXPAND_CONTRACT                                                                                       \
	" Do it in steps (expand, migrate, contract): first a release that no longer uses it, then, in a "    \
	"later migration once no pod of the old release runs, the change itself."

const struct sg_lint_rule sg_lint_rules[] = {
	/* ---- breaks the release still running ---- */
	{"ban-drop-table", E, P | M | S, true, "DS102", "drops a table",
	 "The pods of the previous release still read and write this table while the migration runs, and "
	 "after a rollback the old image finds it gone; the data is lost for good." EXPAND_CONTRACT},
	{"ban-drop-column", E, P | M | S, true, "DS103", "drops a column",
	 "Queries of the release still running name the column (INSERT with a column list, SELECT col) "
	 "and fail from the moment it is gone; ORMs that select every mapped column fail on any read. "
	 "On SQLite, DROP COLUMN also rewrites the table." EXPAND_CONTRACT},
	{"ban-drop-schema", E, P, false, "DS101", "drops a schema",
	 "Every table, view and function in the schema goes with it, while the running release uses "
	 "them." EXPAND_CONTRACT},
	{"ban-drop-database", E, P | M, true, "DS101", "drops a database",
	 "Dropping a database (on MySQL also DROP SCHEMA) from a migration destroys everything the "
	 "running release uses; do it by hand, never from a migration."},
	{"renaming-table", E, P | M | S, true, "BC101", "renames a table",
	 "The release still running queries the old name and fails at once. Create the new table (or a "
	 "view with the new name), write to both, move the readers, then drop the old one in a later "
	 "release."},
	{"renaming-column", E, P | M | S, true, "BC102", "renames a column",
	 "The release still running queries the old name and fails at once. Add the new column, write "
	 "both and backfill, move the readers, then drop the old column in a later release."},
	{"adding-required-field", E, P | M | S, true, "MF103 MY101",
	 "adds a NOT NULL column without a default to an existing table",
	 "The release still running inserts rows without the new column and every such INSERT fails "
	 "(PostgreSQL and MySQL in strict mode; SQLite refuses the ALTER itself). Add the column "
	 "nullable or with a constant DEFAULT; make it required in a later release once every writer "
	 "sets it."},
	{"changing-column-type", E, P | M, true, "PG301",
	 "changes a column's type",
	 "A new type can break the release still running (narrower values, other text in its driver) and "
	 "most type changes rewrite the table under an ACCESS EXCLUSIVE lock (MySQL: a table copy). Add a "
	 "column of the new type, write both and backfill in batches, move the readers, then drop the old "
	 "column. On MySQL, MODIFY restates the whole column: schemagate cannot see the old definition "
	 "offline, so any MODIFY or CHANGE is reported."},
	{"disallowed-unique-constraint", W, P | M, true, "MF101 PG105",
	 "adds a UNIQUE constraint to an existing table",
	 "The constraint fails on duplicates already in the table, writes of the running release that "
	 "would create one start failing, and building it takes an ACCESS EXCLUSIVE lock on PostgreSQL. "
	 "Create a unique index CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE USING INDEX."},
	{"adding-unique-index", W, P | M | S, false, "MF101",
	 "creates a unique index on an existing table",
	 "The index fails on duplicates already in the table (on PostgreSQL a failed CONCURRENTLY build "
	 "leaves an INVALID index behind) and writes of the running release that would create a "
	 "duplicate start failing. Check for duplicates first and deploy the release that stops writing "
	 "them before the index."},
	{"adding-not-nullable-field", E, P | M, true, "MF104 PG303",
	 "makes an existing column NOT NULL",
	 "Writers of the release still running that leave it NULL fail, and on PostgreSQL SET NOT NULL "
	 "scans the whole table under an ACCESS EXCLUSIVE lock. First deploy a release that always sets "
	 "it; on PostgreSQL add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in another "
	 "migration, then SET NOT NULL (PostgreSQL 12+ uses the validated check and skips the scan). On "
	 "MySQL/MariaDB, MODIFY/CHANGE ... NOT NULL fails on rows that hold NULL (or, outside strict mode, "
	 "silently turns them into the type's zero value) and rebuilds the table; the old definition is "
	 "not visible offline, so every MODIFY/CHANGE that states NOT NULL is reported: backfill the "
	 "NULLs in batches after the writers are fixed, then restate the column in a later migration."},
	{"ban-drop-not-null", W, P, true, "", "drops a NOT NULL constraint",
	 "Readers of the release still running may not expect NULL in this column. Deploy readers that "
	 "handle NULL first."},
	{"ban-drop-default", W, P | M, false, "", "drops a column default",
	 "Inserts of the release still running that rely on the default now write NULL (or fail on a NOT "
	 "NULL column). Drop the default only after a release that sets the column itself."},
	{"enum-set-change", W, M, false, "MY110 MY111 MY112 MY113 MY120 MY121 MY122 MY123", "redefines an ENUM or SET column",
	 "Removing or reordering values copies the table and makes rows of the running release invalid; "
	 "only appending values at the end is INSTANT. Schemagate cannot see the old list offline: "
	 "append, never remove or reorder, and write ALGORITHM=INSTANT so the server refuses a copy."},
	/* ---- long blocking locks ---- */
	{"require-concurrent-index-creation", W, P, true, "PG101",
	 "creates an index on an existing table without CONCURRENTLY",
	 "CREATE INDEX holds a SHARE lock that blocks every write to the table for as long as the build "
	 "takes, minutes on a big table. Use CREATE INDEX CONCURRENTLY in a script marked "
	 "-- schemagate:no-transaction."},
	{"require-concurrent-index-deletion", W, P, true, "PG102", "drops an index without CONCURRENTLY",
	 "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table. Use DROP INDEX CONCURRENTLY in a script "
	 "marked -- schemagate:no-transaction."},
	{"require-concurrent-reindex", W, P, true, "", "reindexes without CONCURRENTLY",
	 "REINDEX blocks writes (and reads that would use the index) while it rebuilds. Use REINDEX ... "
	 "CONCURRENTLY (PostgreSQL 12+) in a script marked -- schemagate:no-transaction."},
	{"ban-concurrent-index-creation-in-transaction", E, P, true, "PG103",
	 "builds or drops an index CONCURRENTLY inside a transaction",
	 "PostgreSQL refuses CONCURRENTLY inside a transaction block, and schemagate runs this script in "
	 "one: the migration fails. Put the statement in its own migration marked "
	 "-- schemagate:no-transaction."},
	{"constraint-missing-not-valid", W, P, true, "PG305 PG306",
	 "adds a CHECK or FOREIGN KEY constraint without NOT VALID",
	 "The new constraint is checked against every row while a lock blocks writes. Add it NOT VALID "
	 "(only new rows are checked, the lock is brief), then VALIDATE CONSTRAINT in a later migration, "
	 "which takes a lock that lets writes through."},
	{"adding-foreign-key-constraint", W, P, true, "PG306",
	 "adds a foreign key that scans the table",
	 "A foreign key takes SHARE ROW EXCLUSIVE locks on both tables and, without NOT VALID, scans the "
	 "referencing table while writes to both wait. Add it NOT VALID, then VALIDATE CONSTRAINT in a "
	 "later migration."},
	{"adding-field-with-default", W, P, true, "PG302",
	 "adds a column whose default is volatile or stored-generated",
	 "A constant default is only catalog work since PostgreSQL 11, but a volatile default "
	 "(gen_random_uuid(), clock_timestamp(), nextval) or a STORED generated column rewrites the table "
	 "under an ACCESS EXCLUSIVE lock. Add the column without the default, set the default, backfill "
	 "in batches."},
	{"adding-serial-primary-key-field", W, P, true, "PG104 PG304", "adds a primary key by building its index",
	 "ALTER TABLE ... ADD PRIMARY KEY builds the index under an ACCESS EXCLUSIVE lock. Build a unique "
	 "index CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX."},
	{"enum-add-value-in-transaction", W, P, false, "",
	 "adds an enum value inside a transaction",
	 "Before PostgreSQL 12, ALTER TYPE ... ADD VALUE fails inside a transaction block; from 12 on the "
	 "new value cannot be used until the transaction commits, so a later statement of this migration "
	 "that uses it fails. Put it in its own migration marked -- schemagate:no-transaction."},
	{"require-online-alter", W, M, false, "",
	 "an ALTER TABLE that may copy the table",
	 "MODIFY/CHANGE of a column, CONVERT TO CHARACTER SET, ADD/DROP PRIMARY KEY, ENGINE= and FORCE can "
	 "make MySQL/MariaDB copy the table, blocking writes for the whole copy. State ALGORITHM=INSTANT "
	 "(or INPLACE) and LOCK=NONE: the server then refuses what it cannot do online instead of copying, "
	 "and you can use an online schema change tool for the rest."},
	{"require-lock-none", W, M, false, "", "builds an index without LOCK=NONE",
	 "Without LOCK=NONE an index build may take a lock that blocks writes (FULLTEXT and SPATIAL "
	 "indexes always do). Write ALGORITHM=INPLACE, LOCK=NONE so the server refuses a blocking build."},
	{"sqlite-table-rebuild", W, S, false, "",
	 "rebuilds a table (create, copy, drop, rename)",
	 "SQLite's twelve-step table rebuild holds the database's write lock for the whole copy and the "
	 "release still running sees the table change under it; with foreign_keys on, dropping the old "
	 "table can cascade. Keep the rebuild as its own migration, with PRAGMA foreign_keys off around "
	 "it as SQLite's documentation describes, and only for changes the release still running can "
	 "live with."},
	/* ---- squawk's other default rules ---- */
	{"prefer-robust-stmts", W, P, true, "",
	 "a statement of a no-transaction script that cannot run twice",
	 "A script marked -- schemagate:no-transaction commits statement by statement; when it fails "
	 "halfway, the statements before are done and `up --resume` runs the rest, but an operator "
	 "retrying by hand runs them again. Use IF NOT EXISTS / IF EXISTS. Transactional scripts roll "
	 "back as a whole and are not reported."},
	{"ban-char-field", W, P, true, "", "uses char(n)",
	 "char(n) pads with blanks and is almost always a mistake; use text or varchar."},
	{"prefer-bigint-over-int", W, P, true, "", "uses a 32-bit integer column",
	 "32-bit ids run out, and widening later rewrites the table under an ACCESS EXCLUSIVE lock. Use "
	 "bigint (bigserial, or bigint GENERATED ... AS IDENTITY)."},
	{"prefer-bigint-over-smallint", W, P, true, "", "uses a 16-bit integer column",
	 "smallint overflows at 32767 and widening later rewrites the table. Use bigint."},
	{"prefer-identity", W, P, true, "", "uses a serial column",
	 "serial types create a sequence with its own ownership and permissions; identity columns "
	 "(GENERATED BY DEFAULT AS IDENTITY) are the standard, simpler form."},
	{"prefer-text-field", W, P, true, "", "uses varchar(n)",
	 "Changing a varchar's length later takes an ACCESS EXCLUSIVE lock. Use text with a CHECK "
	 "(length(col) <= n) constraint, which can be replaced NOT VALID."},
	{"prefer-timestamp-tz", W, P, true, "", "uses timestamp without time zone",
	 "timestamp drops the UTC offset, so two instants hours apart may store the same value. Use "
	 "timestamptz."},
	{"ban-truncate-cascade", W, P, true, "", "truncates with CASCADE",
	 "TRUNCATE ... CASCADE also empties every table that references this one, recursively."},
	{"ban-create-domain-with-constraint", W, P, true, "", "creates a domain with a constraint",
	 "Changing a domain's constraint later checks every column of the domain in every table under "
	 "locks. Put the CHECK on the tables' columns instead."},
	{"ban-alter-domain-with-add-constraint", W, P, true, "", "adds a constraint to a domain",
	 "Adding a constraint to a domain checks every column using it in every table under locks. Put "
	 "the CHECK on the tables' columns instead."},
	/* ---- squawk's timeout rules: satisfied by schemagate ---- */
	{"require-timeout-settings", SG_LINT_NOTE, 0, true, "", "never reported: schemagate sets lock_timeout",
	 "schemagate sets lock_timeout for every migration (--lock-timeout), so a statement waiting for a "
	 "lock gives up instead of queueing every other query of the table behind it. Set "
	 "statement_timeout in the script if a statement must also be bounded."},
	{"require-lock-timeout", SG_LINT_NOTE, 0, true, "", "never reported: schemagate sets lock_timeout",
	 "schemagate sets lock_timeout for every migration (--lock-timeout)."},
	{"require-statement-timeout", SG_LINT_NOTE, 0, true, "", "never reported: schemagate bounds the run",
	 "schemagate bounds a run with --timeout and sets lock_timeout per migration; a script may still "
	 "SET statement_timeout itself."},
	/* ---- about the check itself ---- */
	{"syntax-error", E, P, false, "", "PostgreSQL's parser refuses the statement",
	 "The PostgreSQL 15 parser (libpg_query) does not accept this statement: it fails when it runs, "
	 "or uses syntax newer than PostgreSQL 15 (then ignore the finding in the file)."},
	{"not-understood", SG_LINT_NOTE, M | S, false, "", "a statement the analyser does not understand",
	 "MySQL/MariaDB and SQLite have no parser library: schemagate reads the DDL that matters "
	 "(ALTER TABLE clauses, CREATE/DROP INDEX, DROP, RENAME) statement by statement and says so when "
	 "a clause is beyond it rather than guessing. Review the statement by hand."},
	{"unused-ignore", W, P | M | S, false, "", "an ignore comment that suppresses nothing",
	 "A lint-ignore (or squawk-ignore, atlas:nolint) comment names a rule that has no finding where it "
	 "applies: the statement changed, or the rule name is misspelt. Remove it or fix it."},
};
const size_t sg_lint_nrules = sizeof(sg_lint_rules) / sizeof(sg_lint_rules[0]);

#undef P
#undef M
#undef S
#undef E
#undef W

const char *sg_lint_severity_name(enum sg_lint_severity s)
{
	return s == SG_LINT_ERROR ? "error" : s == SG_LINT_WARNING ? "warning" : "note";
}

const struct sg_lint_rule *sg_lint_rule_find(const char *id)
{
	for (size_t i = 0; i < sg_lint_nrules; i++)
		if (strcasecmp(sg_lint_rules[i].id, id) == 0)
			return &sg_lint_rules[i];
	return NULL;
}

static void engines_text(unsigned engines, struct sg_buf *b)
{
	static const char *const names[] = {"postgres", "mysql", "sqlite"};
	size_t n0 = b->len;
	for (unsigned k = 0; k < 3; k++)
		if (engines & (1u << k))
			sg_buf_printf(b, "%s%s", b->len > n0 ? "," : "", names[k]);
	if (b->len == n0)
		sg_buf_puts(b, "none");
}

void sg_lint_print_rules(bool json)
{
	struct sg_buf out = {0};
	if (json)
		sg_buf_puts(&out, "{\"rules\":[");
	for (size_t i = 0; i < sg_lint_nrules; i++) {
		const struct sg_lint_rule *r = &sg_lint_rules[i];
		if (json) {
			sg_buf_printf(&out, "%s{\"id\":", i ? "," : "");
			sg_buf_json_string(&out, r->id);
			sg_buf_printf(&out, ",\"severity\":\"%s\",\"engines\":[", sg_lint_severity_name(r->severity));
			struct sg_buf e = {0};
			engines_text(r->engines, &e);
			if (r->engines) {
				for (char *tok = strtok(e.data, ","), *first = tok; tok; tok = strtok(NULL, ",")) {
					sg_buf_printf(&out, "%s", tok == first ? "" : ",");
					sg_buf_json_string(&out, tok);
				}
			}
			sg_buf_free(&e);
			sg_buf_printf(&out, "],\"squawk\":%s,\"atlas\":", r->squawk ? "true" : "false");
			sg_buf_json_string(&out, r->atlas);
			sg_buf_puts(&out, ",\"summary\":");
			sg_buf_json_string(&out, r->summary);
			sg_buf_puts(&out, ",\"explanation\":");
			sg_buf_json_string(&out, r->explanation);
			sg_buf_puts(&out, "}");
		} else {
			sg_buf_printf(&out, "%s  %s  ", r->id, sg_lint_severity_name(r->severity));
			engines_text(r->engines, &out);
			if (*r->atlas)
				sg_buf_printf(&out, "  atlas:%s", r->atlas);
			sg_buf_printf(&out, "\n    %s.\n    %s\n\n", r->summary, r->explanation);
		}
	}
	if (json)
		sg_buf_puts(&out, "]}\n");
	fwrite(out.data, 1, out.len, stdout);
	fflush(stdout);
	sg_buf_free(&out);
}

void sg_lint_vadd(struct sg_lint_result *r, const char *id, size_t offset, size_t stmt_start, size_t stmt_end,
		  const char *fmt, va_list ap)
{
	const struct sg_lint_rule *rule = sg_lint_rule_find(id);
	if (!rule)
		abort();   /* an analyser naming a rule the table lacks is a programming error */
	/* "summary: detail" in one allocation (a directory of findings makes thousands) */
	struct sg_buf b = {0};
	sg_buf_puts(&b, rule->summary);
	size_t plain = b.len;
	sg_buf_puts(&b, ": ");
	size_t before = b.len;
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(b.data + before, b.cap - before, fmt, copy);
	va_end(copy);
	if (n < 0)
		abort();
	if ((size_t)n >= b.cap - before) {
		b.data = sg_realloc(b.data, before + (size_t)n + 1);
		b.cap = before + (size_t)n + 1;
		vsnprintf(b.data + before, (size_t)n + 1, fmt, ap);
	}
	if (n == 0)
		b.data[plain] = '\0';   /* no detail: the summary alone */
	char *message = b.data;
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->items = sg_realloc(r->items, r->cap * sizeof(*r->items));
	}
	/* names come from the script: a quoted identifier may hold a newline,
	 * and a finding is one line in every output */
	for (char *p = message; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	r->items[r->count++] = (struct sg_lint_hit){rule, offset, 0, 0, stmt_start, stmt_end, message};
}

void sg_lint_add(struct sg_lint_result *r, const char *id, size_t offset, size_t stmt_start, size_t stmt_end,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sg_lint_vadd(r, id, offset, stmt_start, stmt_end, fmt, ap);
	va_end(ap);
}

void sg_lint_result_free(struct sg_lint_result *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->items[i].message);
	free(r->items);
	memset(r, 0, sizeof(*r));
}

/* ---- tokens for the analysers without a parser ---------------------- */

size_t sg_lint_tokenize(const char *s, size_t p, size_t end, bool hash_comments, struct sg_lint_token **out)
{
	size_t n = 0, cap = 0;
	*out = NULL;
	while (p < end) {
		unsigned char c = (unsigned char)s[p];
		if (isspace(c)) {
			p++;
			continue;
		}
		if ((c == '-' && p + 1 < end && s[p + 1] == '-') || (c == '#' && hash_comments)) {
			while (p < end && s[p] != '\n')
				p++;
			continue;
		}
		if (c == '/' && p + 1 < end && s[p + 1] == '*') {
			const char *close = NULL;
			for (size_t q = p + 2; q + 1 < end; q++)
				if (s[q] == '*' && s[q + 1] == '/') {
					close = s + q;
					break;
				}
			p = close ? (size_t)(close - s) + 2 : end;
			continue;
		}
		struct sg_lint_token t = {SG_TOK_PUNCT, p, 1};
		if (isalpha(c) || c == '_' || c >= 0x80 || c == '$') {
			t.kind = SG_TOK_WORD;
			size_t q = p;
			while (q < end && (isalnum((unsigned char)s[q]) || s[q] == '_' || s[q] == '$' ||
					   (unsigned char)s[q] >= 0x80))
				q++;
			t.len = q - p;
		} else if (isdigit(c)) {
			t.kind = SG_TOK_NUMBER;
			size_t q = p;
			while (q < end && (isalnum((unsigned char)s[q]) || s[q] == '.'))
				q++;
			t.len = q - p;
		} else if (c == '\'' || c == '"' || c == '`' || c == '[') {
			char close = c == '[' ? ']' : (char)c;
			t.kind = c == '\'' ? SG_TOK_STRING : SG_TOK_QUOTED;
			size_t q = p + 1;
			while (q < end) {
				if (s[q] == '\\' && c == '\'' && hash_comments && q + 1 < end) {
					q += 2;   /* MySQL's backslash escapes */
					continue;
				}
				if (s[q] == close) {
					if (q + 1 < end && s[q + 1] == close && c != '[') {
						q += 2;   /* a doubled quote */
						continue;
					}
					break;
				}
				q++;
			}
			t.len = (q < end ? q + 1 : end) - p;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			*out = sg_realloc(*out, cap * sizeof(**out));
		}
		(*out)[n++] = t;
		p += t.len;
	}
	return n;
}

bool sg_lint_is(const char *script, const struct sg_lint_token *t, const char *word)
{
	return t->kind == SG_TOK_WORD && strlen(word) == t->len && strncasecmp(script + t->start, word, t->len) == 0;
}

const char *sg_lint_name(const char *script, const struct sg_lint_token *t, char *buf, size_t size)
{
	size_t start = t->start, len = t->len;
	if (t->kind == SG_TOK_QUOTED && len >= 2) {
		start++;
		len -= 2;
	}
	if (len >= size)
		len = size - 1;
	memcpy(buf, script + start, len);
	buf[len] = '\0';
	return buf;
}
