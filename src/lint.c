/*
 * lint.c - `schemagate lint` (SPEC section 3): every problem of the
 * directory for every dialect, not only the first, as text or JSON. It
 * reads the directory with the loader's own code (migration_internal.h),
 * so lint and a load never disagree.
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
#include <uv.h>

#include "migration_internal.h"

#include "schemagate/lint.h"

static const char *const level_names[] = {"error", "warning", "note"};

/* ---- lint ---------------------------------------------------------- */

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
	size_t row[32];
	if (na >= 32 || nb >= 32)
		return 99;
	for (size_t j = 0; j <= nb; j++)
		row[j] = j;
	for (size_t i = 1; i <= na; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= nb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[nb];
}

/* "0003_c.postgers.up.sql" runs on every engine: the name ends in a word
 * that is almost a dialect tag. */
static void warn_tag_like_names(const struct directory *d, struct report *rep)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct entry *e = &d->items[i];
		const char *dot = strrchr(e->name, '.');
		if (!dot || e->tag != SG_DIALECT_NONE || e->other_engine)
			continue;
		const char *w = dot + 1;
		size_t n = strlen(w);
		for (size_t k = 0; k < sg_ndialect_tags && n >= 2; k++) {
			size_t tn = strlen(sg_dialect_tags[k].tag);
			if (edit_distance(w, n, sg_dialect_tags[k].tag, tn) <= (tn <= 3 ? 1u : 2u)) {
				sg_report_add(rep, LV_WARNING, e->file, 0, SG_DIALECT_NONE,
					   "'%s' is not a dialect tag (did you mean '%s'?): it is part of the name, "
					   "and the file runs on every engine", w, sg_dialect_tags[k].tag);
				break;
			}
		}
	}
}

/* What lint says about one dialect's selection. */
static void lint_selection(const struct selection *sel, enum sg_dialect dialect, struct report *rep)
{
	for (size_t i = 0; i < sel->count; i++) {
		const struct sg_migration *m = &sel->items[i];
		if (!m->down_file)
			sg_report_add(rep, LV_WARNING, m->up_file, 0, dialect,
				   "no down script; `down` and `rollback` cannot revert version %s", m->version);
	}
}

static bool is_readme(const char *file)
{
	return strncasecmp(file, "README", 6) == 0;
}

/* Per version: which dialects have it (lint's notes). */
static void note_partial_versions(const struct directory *d, const unsigned *present, struct report *rep)
{
	size_t b = 0, e = 0, gi = 0;
	while (sg_next_group(d, &b, &e)) {
		unsigned mask = present[gi++];
		const struct entry *first = &d->items[b];
		for (size_t i = b; i < e; i++)
			if (d->items[i].kind != FILE_DOWN) {
				first = &d->items[i];   /* name an up file */
				break;
			}
		if (mask == 0) {
			sg_report_add(rep, LV_NOTE, first->file, 0, SG_DIALECT_NONE,
				   "version %s has no up file for any engine schemagate runs", first->version);
			continue;
		}
		unsigned engines = ALL_DIALECT_BITS & ~DIALECT_BIT(SG_DIALECT_MARIADB);
		if ((mask & engines) == engines)
			continue;
		/* mysql files serve MariaDB too: name mariadb only on its own */
		bool mysql = mask & DIALECT_BIT(SG_DIALECT_MYSQL);
		struct sg_buf names = {0};
		for (size_t k = 0; k < NDIALECTS; k++)
			if ((mask & DIALECT_BIT(sg_all_dialects[k])) && !(mysql && sg_all_dialects[k] == SG_DIALECT_MARIADB))
				sg_buf_printf(&names, "%s%s", names.len ? ", " : "", sg_dialect_name(sg_all_dialects[k]));
		sg_report_add(rep, LV_NOTE, first->file, 0, SG_DIALECT_NONE, "version %s exists only for %s",
			   first->version, names.data);
		sg_buf_free(&names);
	}
}

/* Output order: by level, then file and line (the directory's own order is arbitrary). */
static int finding_cmp(const void *pa, const void *pb)
{
	const struct finding *a = pa, *b = pb;
	if (a->level != b->level)
		return (int)a->level - (int)b->level;
	int c = strcmp(a->file ? a->file : "", b->file ? b->file : "");
	if (c)
		return c;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->column != b->column)
		return a->column < b->column ? -1 : 1;
	return strcmp(a->text, b->text);
}

/* Is a version in the lint's scope (--since, --pending)? A repeatable
 * migration (its key "R__NAME") changes at any time: --since keeps it. */
static bool lint_in_scope(const struct sg_lint_request *req, const char *version)
{
	bool repeatable = sg_is_repeatable_key(version);
	if (req->since && !repeatable && sg_version_cmp(version, req->since) <= 0)
		return false;
	if (!req->only_versions)
		return true;
	for (size_t i = 0; i < req->nversions; i++)
		if (repeatable ? strcmp(version, req->versions[i]) == 0 : sg_version_cmp(version, req->versions[i]) == 0)
			return true;
	return false;
}

static enum level lint_level(enum sg_lint_severity s)
{
	return s == SG_LINT_ERROR ? LV_ERROR : s == SG_LINT_WARNING ? LV_WARNING : LV_NOTE;
}

/* The rules, on the up script of every migration of sel in scope (down
 * scripts run only on the way back, where dropping is the point), into
 * rep. */
static void lint_rules(const struct sg_lint_request *req, enum sg_dialect dialect, const struct selection *sel,
		       struct report *rep)
{
	for (size_t i = 0; i < sel->count; i++) {
		const struct sg_migration *m = &sel->items[i];
		if (!lint_in_scope(req, m->version))
			continue;
		struct sg_lint_result res = {0};
		sg_lint_script(m->up_sql, dialect, m->up_no_tx, m->up_line, &m->up_statements, &res);
		for (size_t k = 0; k < res.count; k++) {
			struct sg_lint_hit *h = &res.items[k];
			struct finding *f = sg_report_keep(rep, lint_level(h->rule->severity), m->up_file, h->line, h->column,
							dialect, h->message);
			h->message = NULL;   /* moved into the report */
			if (!f)
				continue;
			f->rule = h->rule;
			char *sql = sg_strndup(m->up_sql + h->stmt_start, h->stmt_end - h->stmt_start);
			char head[160];
			sg_statement_head(sql, head, sizeof(head));
			f->statement = sg_strdup(head);
			free(sql);
		}
		sg_lint_result_free(&res);
	}
}

/*
 * The directory's versions in shards, one thread each: a shard loads its
 * versions for every dialect (reading each file once), runs the rules on
 * them and notes which dialects have each version, into a report of its
 * own. Shards touch disjoint entries of the directory and of present[],
 * and libpg_query keeps its memory per thread; the main thread runs
 * shard 0 and merges the reports. The output is the report's sort, so it
 * does not depend on the threads.
 */
struct shard {
	const struct sg_lint_request *req;
	const struct directory *d;
	const bool *bad;
	const enum sg_dialect *dialects;
	size_t ndialects;
	size_t from, to;                  /* d->items[from, to), whole versions */
	size_t first_group;               /* the index of the version at from */
	unsigned *present;                /* per version: the dialects that have it */
	struct report rep;
	uv_thread_t thread;
	bool threaded;
};

static void run_shard(void *arg)
{
	struct shard *sh = arg;
	const struct directory *d = sh->d;
	for (size_t k = 0; k < sh->ndialects; k++) {
		enum sg_dialect dialect = sh->dialects[k];
		struct selection sel;
		sg_load_dialect_range(d, sh->bad, dialect, false, sh->from, sh->to, &sel, &sh->rep);
		lint_selection(&sel, dialect, &sh->rep);
		lint_rules(sh->req, dialect, &sel, &sh->rep);
		/* both sorted by version: walk them together */
		size_t b = sh->from, e = sh->from, gi = sh->first_group, j = 0;
		while (sg_next_group(d, &b, &e) && b < sh->to && j < sel.count) {
			if (sg_version_cmp(d->items[b].version, sel.items[j].version) == 0) {
				sh->present[gi] |= DIALECT_BIT(dialect);
				j++;
			}
			gi++;
		}
		sg_selection_free(&sel);
	}
}

/* Below this many versions per shard a thread costs more than it saves. */
#define VERSIONS_PER_SHARD 64
#define MAX_SHARDS 8

/* Load and lint every version for each dialect into rep; present[]: per
 * version, the dialects that have it. */
static void load_and_lint(const struct sg_lint_request *req, const struct directory *d, const bool *bad,
			  const enum sg_dialect *dialects, size_t ndialects, unsigned *present, struct report *rep)
{
	size_t ngroups = 0, b = 0, e = 0;
	while (sg_next_group(d, &b, &e))
		ngroups++;
	size_t nshards = uv_available_parallelism();
	if (nshards > MAX_SHARDS)
		nshards = MAX_SHARDS;
	if (nshards > ngroups / VERSIONS_PER_SHARD)
		nshards = ngroups / VERSIONS_PER_SHARD;
	if (nshards < 1)
		nshards = 1;
	struct shard shards[MAX_SHARDS];
	memset(shards, 0, sizeof(shards));
	/* shard s starts at version s * ngroups / nshards */
	size_t gi = 0, s = 0;
	b = e = 0;
	while (sg_next_group(d, &b, &e)) {
		if (s < nshards && gi == s * ngroups / nshards) {
			shards[s].from = b;
			shards[s].first_group = gi;
			if (s > 0)
				shards[s - 1].to = b;
			s++;
		}
		gi++;
	}
	for (s = 0; s < nshards; s++) {
		struct shard *sh = &shards[s];
		sh->req = req;
		sh->d = d;
		sh->bad = bad;
		sh->dialects = dialects;
		sh->ndialects = ndialects;
		sh->present = present;
		if (s == nshards - 1)
			sh->to = d->count;
		/* a shard whose thread does not start runs on the main thread */
		sh->threaded = s > 0 && uv_thread_create(&sh->thread, run_shard, sh) == 0;
	}
	for (s = 0; s < nshards; s++) {
		struct shard *sh = &shards[s];
		if (sh->threaded)
			uv_thread_join(&sh->thread);
		else
			run_shard(sh);
	}
	for (s = 0; s < nshards; s++)
		sg_report_merge(rep, &shards[s].rep);
}

/* The closing line of the text and github formats, then out goes to
 * stdout in one write (and is freed). */
static void print_summary(struct sg_buf *out, const char *dir, const struct report *rep, size_t nmigrations)
{
	size_t ne = rep->counts[LV_ERROR], nw = rep->counts[LV_WARNING], nn = rep->counts[LV_NOTE];
	sg_buf_printf(out, "%s: %zu migration%s, %zu error%s, %zu warning%s, %zu note%s\n", dir, nmigrations,
		      nmigrations == 1 ? "" : "s", ne, ne == 1 ? "" : "s", nw, nw == 1 ? "" : "s", nn,
		      nn == 1 ? "" : "s");
	fwrite(out->data, 1, out->len, stdout);
	sg_buf_free(out);
}

static void lint_print_text(const char *dir, const struct report *rep, size_t nmigrations)
{
	struct sg_buf out = {0};
	for (size_t i = 0; i < rep->count; i++) {
		sg_buf_puts(&out, level_names[rep->items[i].level]);
		sg_buf_puts(&out, ": ");
		sg_finding_format(&rep->items[i], rep->all, &out);
		sg_buf_puts(&out, "\n");
		if (rep->items[i].statement) {
			sg_buf_puts(&out, "    ");
			sg_buf_puts(&out, rep->items[i].statement);
			sg_buf_puts(&out, "\n");
		}
	}
	print_summary(&out, dir, rep, nmigrations);
}

static void lint_print_json(const char *dir, const struct report *rep, size_t nmigrations, bool strict)
{
	struct sg_buf out = {0};
	size_t ne = rep->counts[LV_ERROR], nw = rep->counts[LV_WARNING];
	sg_buf_puts(&out, "{\"dir\":");
	sg_buf_json_string(&out, dir);
	sg_buf_printf(&out, ",\"ok\":%s,\"strict\":%s,\"migrations\":%zu,\"counts\":{\"error\":%zu,\"warning\":%zu,"
			    "\"note\":%zu},\"findings\":[",
		      ne == 0 && !(strict && nw) ? "true" : "false", strict ? "true" : "false", nmigrations, ne, nw,
		      rep->counts[LV_NOTE]);
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		sg_buf_printf(&out, "%s{\"level\":\"%s\",\"file\":", i ? "," : "", level_names[f->level]);
		sg_buf_json_string(&out, f->file);
		sg_buf_printf(&out, ",\"line\":%d,\"column\":%d,\"rule\":", f->line, f->column);
		if (f->rule)
			sg_buf_json_string(&out, f->rule->id);
		else
			sg_buf_puts(&out, "null");
		sg_buf_puts(&out, ",\"dialects\":[");
		bool first = true;
		for (size_t k = 0; k < NDIALECTS; k++)
			if (f->dialects & DIALECT_BIT(sg_all_dialects[k])) {
				sg_buf_printf(&out, "%s\"%s\"", first ? "" : ",", sg_dialect_name(sg_all_dialects[k]));
				first = false;
			}
		sg_buf_puts(&out, "],\"message\":");
		sg_buf_json_string(&out, f->text);
		if (f->statement) {
			sg_buf_puts(&out, ",\"statement\":");
			sg_buf_json_string(&out, f->statement);
		}
		sg_buf_puts(&out, "}");
	}
	sg_buf_puts(&out, "]}\n");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

/* dir/file as a path relative to where lint ran (or absolute). */
static char *lint_path(const char *dir, const char *file)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '.')
		return sg_strdup(file);
	return sg_asprintf("%.*s/%s", (int)n, dir, file);
}

/* A path as an RFC 3986 URI reference: every byte but the unreserved
 * characters and '/' percent-encoded (a ':' in a relative path's first
 * segment would read as a scheme); an absolute path becomes file://. */
static void uri_escape(struct sg_buf *b, const char *path)
{
	if (path[0] == '/')
		sg_buf_puts(b, "file://");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == '/')
			sg_buf_append(b, (const char *)p, 1);
		else
			sg_buf_printf(b, "%%%02X", *p);
	}
}

/* SARIF 2.1.0: one run, the rules that fired as reportingDescriptors,
 * a result per finding. The directory's own problems use the rule id
 * "schemagate-directory". Paths are relative to SRCROOT, the working
 * directory lint ran in (GitHub code scanning resolves them against the
 * checkout). */
static void lint_print_sarif(const char *dir, const struct report *rep)
{
	static const char *const sarif_levels[] = {"error", "warning", "note"};
	struct sg_buf out = {0};
	sg_buf_puts(&out, "{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\","
			  "\"runs\":[{\"tool\":{\"driver\":{\"name\":\"schemagate\",\"version\":\"" SG_VERSION "\",\"informationUri\":"
			  "\"https://github.com/schemagate/schemagate\",\"rules\":[");
	/* every rule in the table, so ruleIndex is the table's index */
	for (size_t i = 0; i < sg_lint_nrules; i++) {
		const struct sg_lint_rule *r = &sg_lint_rules[i];
		sg_buf_printf(&out, "%s{\"id\":", i ? "," : "");
		sg_buf_json_string(&out, r->id);
		sg_buf_puts(&out, ",\"shortDescription\":{\"text\":");
		sg_buf_json_string(&out, r->summary);
		sg_buf_puts(&out, "},\"fullDescription\":{\"text\":");
		sg_buf_json_string(&out, r->explanation);
		sg_buf_puts(&out, "},\"help\":{\"text\":");
		sg_buf_json_string(&out, r->explanation);
		sg_buf_printf(&out, "},\"defaultConfiguration\":{\"level\":\"%s\"}}", sarif_levels[r->severity]);
	}
	sg_buf_printf(&out, ",{\"id\":\"schemagate-directory\",\"shortDescription\":{\"text\":\"a problem of "
			    "the migration directory\"},\"fullDescription\":{\"text\":\"File names, versions, "
			    "dialect tags, sections and transaction control that schemagate refuses or warns about "
			    "before any connection.\"},\"defaultConfiguration\":{\"level\":\"error\"}}");
	sg_buf_puts(&out, "]}},\"originalUriBaseIds\":{\"SRCROOT\":{\"description\":{\"text\":"
			  "\"the directory schemagate lint ran in\"}}},\"columnKind\":\"unicodeCodePoints\","
			  "\"results\":[");
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		size_t index = f->rule ? (size_t)(f->rule - sg_lint_rules) : sg_lint_nrules;
		sg_buf_printf(&out, "%s{\"ruleId\":", i ? "," : "");
		sg_buf_json_string(&out, f->rule ? f->rule->id : "schemagate-directory");
		sg_buf_printf(&out, ",\"ruleIndex\":%zu,\"level\":\"%s\",\"message\":{\"text\":", index,
			      sarif_levels[f->level]);
		struct sg_buf text = {0};
		sg_finding_format(&(struct finding){.text = f->text, .dialects = f->dialects}, rep->all, &text);
		sg_buf_json_string(&out, text.data ? text.data : f->text);
		sg_buf_free(&text);
		sg_buf_puts(&out, "}");
		if (f->file) {
			char *path = lint_path(dir, f->file);
			sg_buf_puts(&out, ",\"locations\":[{\"physicalLocation\":{\"artifactLocation\":{\"uri\":");
			struct sg_buf uri = {0};
			uri_escape(&uri, path);
			sg_buf_json_string(&out, uri.data);
			sg_buf_free(&uri);
			if (path[0] != '/')
				sg_buf_puts(&out, ",\"uriBaseId\":\"SRCROOT\"");
			sg_buf_puts(&out, "}");
			if (f->line > 0) {
				sg_buf_printf(&out, ",\"region\":{\"startLine\":%d", f->line);
				if (f->column > 0)
					sg_buf_printf(&out, ",\"startColumn\":%d", f->column);
				if (f->statement) {
					sg_buf_puts(&out, ",\"snippet\":{\"text\":");
					sg_buf_json_string(&out, f->statement);
					sg_buf_puts(&out, "}");
				}
				sg_buf_puts(&out, "}");
			}
			sg_buf_puts(&out, "}}]");
			free(path);
		}
		sg_buf_puts(&out, "}");
	}
	sg_buf_puts(&out, "]}]}\n");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

/* A GitHub Actions workflow command's data or property, escaped as the
 * runner unescapes it (%, CR, LF; in properties also ':' and ','). */
static void github_escape(struct sg_buf *b, const char *s, bool property)
{
	for (; *s; s++) {
		switch (*s) {
		case '%': sg_buf_puts(b, "%25"); break;
		case '\r': sg_buf_puts(b, "%0D"); break;
		case '\n': sg_buf_puts(b, "%0A"); break;
		case ':': sg_buf_puts(b, property ? "%3A" : ":"); break;
		case ',': sg_buf_puts(b, property ? "%2C" : ","); break;
		default: sg_buf_append(b, s, 1);
		}
	}
}

/* ::error file=F,line=L,col=C,title=RULE::message - annotations on the
 * pull request's diff. */
static void lint_print_github(const char *dir, const struct report *rep, size_t nmigrations)
{
	static const char *const commands[] = {"error", "warning", "notice"};
	struct sg_buf out = {0};
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		sg_buf_printf(&out, "::%s ", commands[f->level]);
		bool any = false;
		if (f->file) {
			char *path = lint_path(dir, f->file);
			sg_buf_puts(&out, "file=");
			github_escape(&out, path, true);
			free(path);
			any = true;
			if (f->line > 0)
				sg_buf_printf(&out, ",line=%d", f->line);
			if (f->column > 0)
				sg_buf_printf(&out, ",col=%d", f->column);
		}
		sg_buf_printf(&out, "%stitle=", any ? "," : "");
		github_escape(&out, f->rule ? f->rule->id : "schemagate lint", true);
		sg_buf_puts(&out, "::");
		struct sg_buf text = {0};
		sg_finding_format(&(struct finding){.text = f->text, .dialects = f->dialects}, rep->all, &text);
		github_escape(&out, text.data, false);
		sg_buf_free(&text);
		sg_buf_puts(&out, "\n");
	}
	print_summary(&out, dir, rep, nmigrations);
}

int sg_lint(const struct sg_lint_request *req, struct sg_error *err)
{
	const char *dir = req->dir, *dialect_tag = req->dialect;
	bool strict = req->strict;
	enum sg_dialect only = SG_DIALECT_NONE;
	if (dialect_tag) {
		bool known;
		only = sg_dialect_tag(dialect_tag, &known);
		if (only == SG_DIALECT_NONE)
			return sg_fail(err, SG_OUTCOME_USAGE, "lint --dialect: %s dialect '%s' (%s)",
				       known ? "schemagate does not run migrations for the" : "unknown", dialect_tag,
				       sg_known_tags_help);
	}
	struct report rep = {0};
	struct directory d;
	size_t nmigrations = 0;
	if (sg_directory_scan(dir, &d, &rep) == 0) {
		d.keep_statements = true;   /* the rules read them: split once */
		d.share_splits = true;      /* and once for every dialect where they agree */
		for (size_t i = 0; i < d.nignored; i++)
			sg_report_add(&rep, is_readme(d.ignored[i]) ? LV_NOTE : LV_WARNING, d.ignored[i], 0, SG_DIALECT_NONE,
				   "not a migration file; ignored (migrations are VERSION_NAME.up.sql, .down.sql or .sql; "
				   "repeatable ones R__NAME.sql)");
		warn_tag_like_names(&d, &rep);
		bool *bad = sg_check_groups(&d, &rep);
		if (d.count == 0 && d.nreps == 0 && rep.counts[LV_ERROR] == 0)
			sg_no_migrations(&d, &rep);
		unsigned *present = sg_calloc(d.count + 1, sizeof(unsigned));
		enum sg_dialect dialects[NDIALECTS];
		size_t ndialects = 0;
		for (size_t k = 0; k < NDIALECTS; k++) {
			enum sg_dialect dialect = sg_all_dialects[k];
			if (dialect == SG_DIALECT_MARIADB && !d.has_tag[SG_DIALECT_MARIADB])
				continue;   /* the same files as for MySQL */
			if (only != SG_DIALECT_NONE && dialect != only &&
			    !(only == SG_DIALECT_MYSQL && dialect == SG_DIALECT_MARIADB))
				continue;
			rep.all |= DIALECT_BIT(dialect);
			dialects[ndialects++] = dialect;
		}
		load_and_lint(req, &d, bad, dialects, ndialects, present, &rep);
		/* repeatable migrations: the same rules on their text */
		for (size_t k = 0; k < ndialects; k++) {
			struct selection sel;
			sg_load_repeatables(&d, dialects[k], &sel, &rep);
			lint_rules(req, dialects[k], &sel, &rep);
			sg_selection_free(&sel);
		}
		if (rep.counts[LV_ERROR] == 0 && only == SG_DIALECT_NONE)
			note_partial_versions(&d, present, &rep);
		size_t b = 0, e = 0, gi = 0;
		while (sg_next_group(&d, &b, &e))
			nmigrations += present[gi++] != 0;
		for (size_t i = 0; i < d.nreps; i++)
			nmigrations += i == 0 || strcmp(d.reps[i].version, d.reps[i - 1].version) != 0;
		for (size_t i = 0; i < d.count; i++)
			if (d.items[i].bom)
				sg_report_add(&rep, LV_WARNING, d.items[i].file, 0, SG_DIALECT_NONE,
					   "starts with a UTF-8 byte-order mark: schemagate strips it (it is not part of "
					   "the checksum); other tools may not");
		sg_check_unread(&d, &rep);
		free(present);
		free(bad);
		sg_directory_free(&d);
	}
	/* sorted for printing: the hash slots index the old order and go */
	if (rep.count > 1)
		qsort(rep.items, rep.count, sizeof(*rep.items), finding_cmp);
	switch (req->format) {
	case SG_LINT_FORMAT_JSON: lint_print_json(dir, &rep, nmigrations, strict); break;
	case SG_LINT_FORMAT_SARIF: lint_print_sarif(dir, &rep); break;
	case SG_LINT_FORMAT_GITHUB: lint_print_github(dir, &rep, nmigrations); break;
	default: lint_print_text(dir, &rep, nmigrations); break;
	}
	fflush(stdout);
	/* the directory's own errors make it unrunnable (exit 2, SPEC 3); a
	 * rule's error, or any warning under --strict, is exit 4 */
	size_t ndir = 0, nrule = 0;
	for (size_t i = 0; i < rep.count; i++)
		if (rep.items[i].level == LV_ERROR)
			*(rep.items[i].rule ? &nrule : &ndir) += 1;
	size_t nw = rep.counts[LV_WARNING];
	sg_report_free(&rep);
	if (ndir)
		return sg_fail(err, SG_OUTCOME_USAGE, "lint found %zu error%s in %s", ndir + nrule,
			       ndir + nrule == 1 ? "" : "s", dir);
	if (nrule)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "lint found %zu error%s in %s", nrule, nrule == 1 ? "" : "s",
			       dir);
	if (strict && nw)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "lint --strict: %zu warning%s in %s", nw, nw == 1 ? "" : "s",
			       dir);
	return 0;
}

