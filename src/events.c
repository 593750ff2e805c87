/*
 * events.c - the `events` command: the audit table (schemagate_events) of
 * one history table, in text or JSON on stdout. Reads only, so the app's
 * SELECT-only credentials can show who applied, reverted, repaired or
 * failed what, and when.
 */
#include <stdio.h>

#include "schemagate/log.h"
#include "schemagate/run.h"

static void print_events_json(const struct sg_run *r, const struct sg_event_list *l)
{
	struct sg_buf b = {0};
	sg_buf_puts(&b, "{\"database\":");
	sg_buf_json_string(&b, r->url.redacted);
	sg_buf_puts(&b, ",\"table\":");
	sg_buf_json_string(&b, r->cfg->table);
	sg_buf_printf(&b, ",\"events_table_exists\":%s,\"events\":[", l->exists ? "true" : "false");
	for (size_t i = 0; i < l->count; i++) {
		const struct sg_event_row *e = &l->rows[i];
		const char *keys[] = {"at", "event", "version", "outcome", "instance", "detail"};
		const char *values[] = {e->at, e->event, e->version, e->outcome, e->instance, e->detail};
		for (size_t k = 0; k < 6; k++) {
			sg_buf_printf(&b, "%s\"%s\":", k ? "," : i ? ",{" : "{", keys[k]);
			sg_buf_json_string(&b, values[k]);
		}
		sg_buf_puts(&b, "}");
	}
	sg_buf_puts(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	sg_buf_free(&b);
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

static void print_events_text(const struct sg_event_list *l)
{
	printf("%-24s %-9s %-16s %-16s %s\n", "AT", "EVENT", "VERSION", "OUTCOME", "INSTANCE");
	for (size_t i = 0; i < l->count; i++) {
		const struct sg_event_row *e = &l->rows[i];
		printf("%-24s %-9s %-16s %-16s %s\n", or_dash(e->at), or_dash(e->event), or_dash(e->version),
		       or_dash(e->outcome), or_dash(e->instance));
		if (e->detail && *e->detail)
			printf("%24s %s\n", "", e->detail);
	}
}

enum sg_state sg_events_check(struct sg_run *r, const char **reason, struct sg_error *err)
{
	struct sg_event_list l;
	if (sg_events_read(r->conn, r->cfg->table, r->cfg->events_since, r->cfg->events_version, &l, err) != 0) {
		*reason = "could not read the audit table";
		return SG_ST_FAILED;
	}
	if (!l.exists)
		sg_info("no_events", "there is no audit table next to %s yet: nothing was recorded", r->cfg->table);
	if (r->cfg->json)
		print_events_json(r, &l);
	else
		print_events_text(&l);
	fflush(stdout);
	sg_event_list_free(&l);
	*reason = "events read";
	return SG_ST_READY;
}
