/*
 * outputs.h - every way a piece of text can reach a person or a log
 * collector: sg_redact, a text log line, a JSON log line (as written and
 * decoded), the termination log. The targets that check "no secret is
 * ever printed" collect them all and search them.
 */
#ifndef SG_FUZZ_OUTPUTS_H
#define SG_FUZZ_OUTPUTS_H

#include <stdbool.h>
#include <stddef.h>

enum { FUZZ_MAX_OUTPUTS = 32 };

struct fuzz_outputs {
	size_t n;
	char *text[FUZZ_MAX_OUTPUTS];
	size_t len[FUZZ_MAX_OUTPUTS];
	const char *what[FUZZ_MAX_OUTPUTS];
	bool is_json[FUZZ_MAX_OUTPUTS];   /* a decoded JSON value */
};

/*
 * Collect what schemagate prints when text (and, when not NULL, a
 * redacted URL) appears in a message, an error field and a holder field.
 * The timestamps of log lines are blanked so that the outputs depend on
 * the input only (POD_NAME fixes the instance; see fuzz_outputs_init).
 */
void fuzz_outputs_collect(struct fuzz_outputs *o, const char *text, const char *redacted_url);
/* Abort (FUZZ_CHECK) when any output contains secret; label names it. */
void fuzz_outputs_assert_hidden(const struct fuzz_outputs *o, const char *secret, const char *label,
				const char *input);
/* Does any output contain s? (To skip secrets the fixed text shows anyway.) */
bool fuzz_outputs_contain(const struct fuzz_outputs *o, const char *s);
void fuzz_outputs_free(struct fuzz_outputs *o);

/* Set POD_NAME to a fixed instance name; call once from LLVMFuzzerInitialize. */
void fuzz_outputs_init(void);

#endif
