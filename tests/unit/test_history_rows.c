/*
 * test_history_rows.c - the history row's state machine (history.h) is
 * closed and the README's table is the code's: every cell of the README
 * table is a transition of the code with the same next state and the same
 * refusal, and every transition of the code is in the README.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/history.h"
#include "sgtest.h"

/* "`applied`" -> state, "absent" -> ABSENT; -1 when unknown. */
static int state_named(const char *word)
{
	for (int s = 0; s < SG_ROW_STATE_COUNT; s++)
		if (strcmp(word, sg_row_state_name((enum sg_row_state)s)) == 0)
			return s;
	return -1;
}

static int event_named(const char *word)
{
	for (int e = 0; e < SG_EV_COUNT; e++)
		if (strcmp(word, sg_row_event_name((enum sg_row_event)e)) == 0)
			return e;
	return -1;
}

/* Strip backquotes and spaces around a list item, in place. */
static char *clean(char *w)
{
	while (*w == ' ' || *w == '`')
		w++;
	char *end = w + strlen(w);
	while (end > w && (end[-1] == ' ' || end[-1] == '`'))
		*--end = '\0';
	return w;
}

struct cell {
	int from, event, to;
	bool refuse;
};

/* The README's table "### The history row", one cell per state x event. */
static size_t readme_cells(struct cell *cells, size_t cap)
{
	char *path = sgt_path(SG_SOURCE_DIR, "README.md");
	char *text = sgt_slurp(path);
	cr_assert(text, "cannot read %s", path);
	char *at = strstr(text, "### The history row");
	cr_assert(at, "README has no section \"The history row\"");
	at = strstr(at, "|---|");
	cr_assert(at);
	at = strchr(at, '\n') + 1;
	size_t n = 0;
	while (*at == '|') {
		char *eol = strchr(at, '\n');
		*eol = '\0';
		char *col[4] = {0};
		char *p = at + 1;
		for (int i = 0; i < 4; i++) {
			char *bar = strchr(p, '|');
			cr_assert(bar, "README row without 4 columns: %s", at);
			*bar = '\0';
			col[i] = p;
			p = bar + 1;
		}
		bool refuse = strstr(col[3], "*refuse*") != NULL;
		char *to_word = clean(col[2]);
		char *s1, *s2;
		for (char *f = strtok_r(col[0], ",", &s1); f; f = strtok_r(NULL, ",", &s1)) {
			int from = state_named(clean(f));
			cr_assert_geq(from, 0, "README names an unknown state \"%s\"", clean(f));
			char events[200];
			snprintf(events, sizeof(events), "%s", col[1]);
			for (char *e = strtok_r(events, ",", &s2); e; e = strtok_r(NULL, ",", &s2)) {
				int ev = event_named(clean(e));
				cr_assert_geq(ev, 0, "README names an unknown event \"%s\"", clean(e));
				int to = strcmp(to_word, "(same)") == 0 ? from : state_named(to_word);
				cr_assert_geq(to, 0, "README names an unknown state \"%s\"", to_word);
				cr_assert_lt(n, cap);
				cells[n++] = (struct cell){from, ev, to, refuse};
			}
		}
		at = eol + 1;
	}
	free(text);
	free(path);
	return n;
}

Test(history_rows, the_readme_table_is_the_code_table)
{
	struct cell cells[200];
	size_t n = readme_cells(cells, 200), count = 0;
	const struct sg_row_transition *t = sg_row_transitions(&count);
	for (size_t i = 0; i < n; i++) {
		const struct sg_row_transition *c = sg_row_transition_find((enum sg_row_state)cells[i].from,
									   (enum sg_row_event)cells[i].event);
		const char *from = sg_row_state_name((enum sg_row_state)cells[i].from);
		const char *ev = sg_row_event_name((enum sg_row_event)cells[i].event);
		cr_expect(c, "README: %s x %s is not a transition of the code", from, ev);
		if (!c)
			continue;
		cr_expect_eq((int)c->to, cells[i].to, "%s x %s: README says %s, the code %s", from, ev,
			     sg_row_state_name((enum sg_row_state)cells[i].to), sg_row_state_name(c->to));
		cr_expect_eq(c->refusal != NULL, cells[i].refuse, "%s x %s: README and code disagree on refusing", from, ev);
	}
	for (size_t k = 0; k < count; k++) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = cells[i].from == (int)t[k].from && cells[i].event == (int)t[k].event;
		cr_expect(found, "the code's %s x %s is not in the README", sg_row_state_name(t[k].from),
			  sg_row_event_name(t[k].event));
	}
}

/* Closed: no pair twice, a write exactly where nobody must act, and every
 * state a row can be in has an answer for the events a run meets there. */
Test(history_rows, the_machine_is_closed_and_deterministic)
{
	size_t count = 0;
	const struct sg_row_transition *t = sg_row_transitions(&count);
	for (size_t i = 0; i < count; i++) {
		for (size_t j = i + 1; j < count; j++)
			cr_expect(t[i].from != t[j].from || t[i].event != t[j].event, "%s x %s twice",
				  sg_row_state_name(t[i].from), sg_row_event_name(t[i].event));
		if (t[i].refusal)
			cr_expect(t[i].write == SG_WRITE_NONE && t[i].to == t[i].from, "a refusal that changes the row");
	}
	static const enum sg_row_event met[] = {SG_EV_RESUME, SG_EV_FILE_CHANGED, SG_EV_REVERT_START,
						SG_EV_REPAIR_APPLIED, SG_EV_REPAIR_REVERTED, SG_EV_REPAIR_RESUME,
						SG_EV_ACCEPT_CHECKSUM};
	for (int s = SG_ROW_PARTIAL; s < SG_ROW_STATE_COUNT; s++)
		for (size_t e = 0; e < sizeof(met) / sizeof(met[0]); e++)
			cr_expect(sg_row_transition_find((enum sg_row_state)s, met[e]), "%s x %s has no answer",
				  sg_row_state_name((enum sg_row_state)s), sg_row_event_name(met[e]));
	/* applied is only ever reached when every statement ran, or by a human */
	for (size_t i = 0; i < count; i++)
		if (t[i].to == SG_ROW_APPLIED && t[i].from != SG_ROW_APPLIED)
			cr_expect(t[i].event == SG_EV_COMMITTED || t[i].event == SG_EV_LAST_STATEMENT_DONE ||
				  t[i].event == SG_EV_REPAIR_APPLIED, "%s x %s makes a row applied",
				  sg_row_state_name(t[i].from), sg_row_event_name(t[i].event));
}
