/*
 * fuzz_lint.c - the lint analysers (src/lint_*.c) on any bytes.
 *
 * Input: byte 0 picks the dialect (bits 0-1: PostgreSQL, MySQL, SQLite,
 * PostgreSQL again), whether the script runs outside a transaction (bit
 * 2) and the first line number (bits 3-7, plus 1); the rest, up to its
 * first NUL, is the script.
 *
 * Properties: no crash or sanitizer report; every finding is of a rule
 * that applies to the engine, points inside the script (offset at most
 * its length, line between the first and the last line, column at least
 * 1 and at most the line's length plus one), lies in the statement it
 * names, and its message is one line of printable text; the findings
 * come in script order.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "schemagate/lint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const enum sg_dialect dialects[] = {SG_DIALECT_POSTGRES, SG_DIALECT_MYSQL, SG_DIALECT_SQLITE,
						   SG_DIALECT_POSTGRES};
	static const unsigned bits[] = {SG_LINT_POSTGRES, SG_LINT_MYSQL, SG_LINT_SQLITE, SG_LINT_POSTGRES};
	enum sg_dialect dialect = dialects[data[0] & 3];
	unsigned engine = bits[data[0] & 3];
	bool no_tx = data[0] & 4;
	int first_line = 1 + (data[0] >> 3);
	char *script = strndup((const char *)data + 1, size - 1);
	size_t n = strlen(script);

	struct sg_lint_result r = {0};
	sg_lint_script(script, dialect, no_tx, first_line, NULL, &r);
	int last_line = first_line;
	for (size_t i = 0; i < n; i++)
		last_line += script[i] == '\n';
	for (size_t i = 0; i < r.count; i++) {
		const struct sg_lint_hit *h = &r.items[i];
		FUZZ_CHECK(h->rule->engines & engine, "%s reported on an engine it does not apply to", h->rule->id);
		FUZZ_CHECK(h->offset <= n, "%s: offset %zu past the script (%zu bytes)", h->rule->id, h->offset, n);
		FUZZ_CHECK(h->stmt_start <= h->stmt_end && h->stmt_end <= n, "%s: statement [%zu,%zu) outside the script",
			   h->rule->id, h->stmt_start, h->stmt_end);
		FUZZ_CHECK(strcmp(h->rule->id, "unused-ignore") == 0 ||
				   (h->offset >= h->stmt_start && h->offset <= h->stmt_end),
			   "%s: offset %zu outside its statement [%zu,%zu)", h->rule->id, h->offset, h->stmt_start,
			   h->stmt_end);
		FUZZ_CHECK(h->line >= first_line && h->line <= last_line, "%s: line %d outside %d..%d", h->rule->id,
			   h->line, first_line, last_line);
		/* the line holding the offset, and the column within it */
		size_t line_start = h->offset;
		while (line_start > 0 && script[line_start - 1] != '\n')
			line_start--;
		size_t line_end = h->offset;
		while (line_end < n && script[line_end] != '\n')
			line_end++;
		FUZZ_CHECK(h->column >= 1 && (size_t)h->column <= line_end - line_start + 1,
			   "%s: column %d outside its line of %zu bytes", h->rule->id, h->column, line_end - line_start);
		for (const char *p = h->message; *p; p++)
			FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "%s: a control byte 0x%02x in the message",
				   h->rule->id, (unsigned char)*p);
		FUZZ_CHECK(i == 0 || r.items[i - 1].offset <= h->offset, "findings out of script order");
	}
	sg_lint_result_free(&r);
	free(script);
	return 0;
}
