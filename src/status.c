/*
 * status.c - what the run tells the operator about the schema: the
 * `status` table (text or JSON on stdout) and the "ready" log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/log.h"
#include "schemagate/run.h"

static void json_item(struct sg_buf *b, const struct sg_plan_item *it, bool comma);

static void print_status_json(const struct sg_run *r)
{
	const struct sg_history *h = &r->hist;
	const struct sg_plan *p = &r->plan;
	struct sg_buf b = {0};
	sg_buf_puts(&b, "{\"database\":");
	sg_buf_json_string(&b, r->url.redacted);
	sg_buf_puts(&b, ",\"table\":");
	sg_buf_json_string(&b, r->cfg->table);
	sg_buf_printf(&b, ",\"history_exists\":%s,\"target\":", h->exists ? "true" : "false");
	sg_buf_json_string(&b, p->target);
	sg_buf_printf(&b, ",\"at_target\":%s,\"counts\":{\"applied\":%zu,\"pending\":%zu,\"failed\":%zu,"
			  "\"partial\":%zu,\"changed\":%zu,\"unknown\":%zu,\"missing\":%zu},\"migrations\":[",
		      p->npending == 0 && p->nfailed == 0 && p->npartial == 0 && p->nchanged == 0 && p->nmissing == 0
			      ? "true" : "false",
		      p->napplied, p->npending, p->nfailed, p->npartial, p->nchanged, p->nunknown, p->nmissing);
	for (size_t i = 0; i < p->count; i++)
		json_item(&b, &p->items[i], i > 0);
	sg_buf_puts(&b, "],\"repeatables\":[");
	for (size_t i = 0; i < p->nreps; i++)
		json_item(&b, &p->reps[i], i > 0);
	sg_buf_puts(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	sg_buf_free(&b);
}

/* One migration of the JSON status (versioned or repeatable). */
static void json_item(struct sg_buf *b, const struct sg_plan_item *it, bool comma)
{
	sg_buf_puts(b, comma ? ",{\"version\":" : "{\"version\":");
	sg_buf_json_string(b, it->version);
	sg_buf_puts(b, ",\"name\":");
	sg_buf_json_string(b, it->m ? it->m->name : it->row->name);
	sg_buf_puts(b, ",\"state\":");
	sg_buf_json_string(b, sg_mstate_name(it->state));
	sg_buf_puts(b, ",\"file\":");
	sg_buf_json_string(b, it->m ? it->m->up_file : NULL);
	sg_buf_puts(b, ",\"status\":");
	sg_buf_json_string(b, it->row ? it->row->status : NULL);
	sg_buf_puts(b, ",\"applied_at\":");
	sg_buf_json_string(b, it->row ? it->row->applied_at : NULL);
	sg_buf_puts(b, ",\"applied_by\":");
	sg_buf_json_string(b, it->row ? it->row->applied_by : NULL);
	sg_buf_puts(b, ",\"checksum_recorded\":");
	sg_buf_json_string(b, it->row ? it->row->checksum : NULL);
	sg_buf_puts(b, ",\"checksum_file\":");
	sg_buf_json_string(b, it->m ? it->m->checksum : NULL);
	if (it->row)
		sg_buf_printf(b, ",\"statements_done\":%ld,\"duration_ms\":%ld", it->row->statements_done,
			      it->row->duration_ms);
	sg_buf_puts(b, ",\"error\":");
	sg_buf_json_string(b, it->row ? it->row->error : NULL);
	sg_buf_printf(b, ",\"out_of_order\":%s}", it->out_of_order ? "true" : "false");
}

/* Text says "baselined" for a row recorded without running (baseline,
 * adoption); JSON keeps the plan state "applied" and carries the row's own
 * "status": "baselined" next to it. */
static const char *state_label(const struct sg_plan_item *it)
{
	if (it->state == SG_M_APPLIED && it->row && strcmp(it->row->status, "baselined") == 0)
		return "baselined";
	return sg_mstate_name(it->state);
}

static void print_status_text(const struct sg_run *r)
{
	const struct sg_history *h = &r->hist;
	const struct sg_plan *p = &r->plan;
	printf("%-16s %-14s %-32s %-26s %s\n", "VERSION", "STATE", "NAME", "APPLIED AT", "APPLIED BY");
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_plan_item *it = &p->items[i];
		const char *name = it->m ? it->m->name : it->row->name;
		printf("%-16s %-14s %-32s %-26s %s\n", it->version, state_label(it), name,
		       it->row && it->row->applied_at ? it->row->applied_at : "-",
		       it->row && it->row->applied_by ? it->row->applied_by : "-");
		if ((it->state == SG_M_FAILED || it->state == SG_M_PARTIAL) && it->row)
			printf("%16s %s after %ld statement(s)%s%s\n", "", it->row->status, it->row->statements_done,
			       it->row->error ? ": " : "", it->row->error ? it->row->error : "");
		if (it->out_of_order)
			printf("%16s out of order: older than the newest applied version %s (--allow-out-of-order "
			       "applies it)\n", "", p->newest_applied);
		if (it->state == SG_M_CHANGED && it->renamed)
			printf("%16s recorded as %s_%s, the directory's file is %s (another migration, or renamed)\n", "",
			       it->row->version, it->row->name, it->m->up_file);
		else if (it->state == SG_M_CHANGED && it->row && it->m)
			printf("%16s checksum recorded %s, file has %s\n", "", it->row->checksum, it->m->checksum);
	}
	size_t nreps_pending = 0;
	for (size_t i = 0; i < p->nreps; i++) {
		const struct sg_plan_item *it = &p->reps[i];
		printf("%-16s %-14s %-32s %-26s %s\n", it->version, sg_mstate_name(it->state), it->m ? it->m->name : it->row->name,
		       it->row && it->row->applied_at ? it->row->applied_at : "-",
		       it->row && it->row->applied_by ? it->row->applied_by : "-");
		if (it->state == SG_M_REAPPLY)
			printf("%16s changed: checksum recorded %s, file has %s; the next up re-applies it\n", "",
			       it->row->checksum, it->m->checksum);
		else if (it->state == SG_M_UNKNOWN)
			printf("%16s no file in this directory: left as it is\n", "");
		nreps_pending += it->state == SG_M_PENDING || it->state == SG_M_REAPPLY;
	}
	printf("%s: target %s; %zu applied, %zu pending, %zu partial, %zu failed, %zu changed, %zu unknown, "
	       "%zu missing", r->cfg->table, p->target ? p->target : "-", p->napplied, p->npending, p->npartial,
	       p->nfailed, p->nchanged, p->nunknown, p->nmissing);
	if (p->nreps)
		printf("; %zu repeatable (%zu to apply)", p->nreps, nreps_pending);
	printf("%s\n", h->exists ? "" : " (history table does not exist yet)");
}

void sg_status_print(const struct sg_run *r)
{
	if (r->cfg->json)
		print_status_json(r);
	else
		print_status_text(r);
	fflush(stdout);
}

/*
 * status --check: verify's verdict on what was just printed. Unlike up,
 * which resumes a partial row, status cannot tell whether its writer is
 * still at work, so a partial row is an integrity finding here too.
 */
int sg_status_check(const struct sg_run *r, struct sg_error *err)
{
	const struct sg_plan *p = &r->plan;
	if (sg_plan_check(p, r->cfg->strict, r->cfg->allow_out_of_order, err) != 0)
		return -1;
	for (size_t i = 0; i < p->count; i++)
		if (p->items[i].state == SG_M_PARTIAL)
			return sg_fail(err, SG_OUTCOME_INTEGRITY, "migration %s is partial after %ld statement(s): being "
				       "applied, or interrupted (the next up resumes it)", p->items[i].version,
				       p->items[i].row->statements_done);
	if (p->npending > 0)
		return sg_fail(err, SG_OUTCOME_PENDING, "%zu migration(s) pending (target %s)", p->npending,
			       p->target ? p->target : "0");
	return 0;
}

/* The newest applied (or baselined) version, "0" when none. */
static const char *newest_applied(const struct sg_plan *p)
{
	for (size_t i = p->count; i-- > 0;)
		if (p->items[i].state == SG_M_APPLIED || p->items[i].state == SG_M_CHANGED ||
		    p->items[i].state == SG_M_UNKNOWN || p->items[i].state == SG_M_MISSING)
			return p->items[i].version;
	return "0";
}

void sg_status_log_ready(const struct sg_run *r, const char *suffix)
{
	const struct sg_plan *p = &r->plan;
	if (p->nunknown > 0)
		sg_warn("database_ahead", "the database has %zu applied version(s) this directory does not know "
			"(newest %s): a newer release migrated it; accepted because every known migration is "
			"applied (use --strict to refuse)", p->nunknown, newest_applied(p));
	sg_info("ready", "database is at version %s (%zu applied)%s", newest_applied(p), p->napplied, suffix);
}

/* ---- --dry-run --------------------------------------------------------------- */

static const char *mode_text(const struct sg_preview_item *it, char *buf, size_t n)
{
	if (it->transaction < 0)
		return "runs nothing";
	if (it->transaction)
		return "one transaction";
	snprintf(buf, n, "statement by statement (%zu)", it->statements);
	return buf;
}

static void print_preview_json(const struct sg_run *r, const struct sg_preview *p)
{
	struct sg_buf b = {0};
	sg_buf_puts(&b, "{\"dry_run\":true,\"command\":");
	sg_buf_json_string(&b, r->cfg->command_name);
	sg_buf_puts(&b, ",\"database\":");
	sg_buf_json_string(&b, r->url.redacted);
	sg_buf_puts(&b, ",\"table\":");
	sg_buf_json_string(&b, r->cfg->table);
	sg_buf_printf(&b, ",\"history_exists\":%s,\"notes\":[", r->hist.exists ? "true" : "false");
	for (size_t i = 0; i < p->nnotes; i++) {
		if (i)
			sg_buf_puts(&b, ",");
		sg_buf_json_string(&b, p->notes[i]);
	}
	sg_buf_puts(&b, "],\"actions\":[");
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_preview_item *it = &p->items[i];
		sg_buf_puts(&b, i ? ",{\"version\":" : "{\"version\":");
		sg_buf_json_string(&b, it->version);
		sg_buf_puts(&b, ",\"name\":");
		sg_buf_json_string(&b, it->name);
		sg_buf_puts(&b, ",\"action\":");
		sg_buf_json_string(&b, it->action);
		sg_buf_puts(&b, ",\"file\":");
		sg_buf_json_string(&b, it->file);
		sg_buf_printf(&b, ",\"transaction\":%s", it->transaction < 0 ? "null" : it->transaction ? "true" : "false");
		if (it->transaction == 0)
			sg_buf_printf(&b, ",\"statements\":%zu", it->statements);
		if (r->cfg->show_sql) {
			sg_buf_puts(&b, ",\"sql\":");
			sg_buf_json_string(&b, it->sql);
		}
		sg_buf_puts(&b, "}");
	}
	sg_buf_printf(&b, "],\"changes\":%zu}\n", p->count);
	fwrite(b.data, 1, b.len, stdout);
	sg_buf_free(&b);
}

static void print_preview_text(const struct sg_run *r, const struct sg_preview *p)
{
	printf("dry run of %s on %s (history table %s%s); nothing is changed\n", r->cfg->command_name, r->url.redacted,
	       r->cfg->table, r->hist.exists ? "" : ": does not exist yet");
	for (size_t i = 0; i < p->nnotes; i++)
		printf("  %s\n", p->notes[i]);
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_preview_item *it = &p->items[i];
		char buf[48];
		printf("%-16s %-28s %s; %s%s%s\n", it->version, it->name, it->action, mode_text(it, buf, sizeof(buf)),
		       it->file ? "; " : "", it->file ? it->file : "");
		if (r->cfg->show_sql && it->sql) {
			printf("-- ---- %s %s: the SQL that would run\n%s", it->version, it->action, it->sql);
			size_t n = strlen(it->sql);
			if (n == 0 || it->sql[n - 1] != '\n')
				putchar('\n');
		}
	}
	printf("%zu change(s) would be made\n", p->count);
}

void sg_preview_print(const struct sg_run *r, const struct sg_preview *p)
{
	if (r->cfg->json)
		print_preview_json(r, p);
	else
		print_preview_text(r, p);
	fflush(stdout);
}
