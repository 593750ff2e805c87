/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: cutting the
 * input into fields, checking a property and saying which one broke,
 * capturing what the code under test writes to stderr, and strict
 * oracles (UTF-8, JSON) written independently of the code they judge.
 *
 * A target asserts properties with FUZZ_CHECK; a broken property
 * aborts, so libFuzzer saves the input as crash-<sha1> like any crash.
 */
#ifndef SG_FUZZ_H
#define SG_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What libFuzzer calls (a target defines the first, and the second if it
 * needs set-up once per process). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- input ---------------------------------------------------------------- */

/* The input cut at NUL bytes into C strings: the code under test only
 * ever sees C strings, so a NUL is the one byte free to separate fields.
 * Fields past max are joined into the last one. */
struct fuzz_fields {
	char *buf;
	char **field;
	size_t n;
};

void fuzz_fields_split(struct fuzz_fields *f, const uint8_t *data, size_t size, size_t max);
/* Field i, or "" when the input has fewer fields. */
const char *fuzz_field(const struct fuzz_fields *f, size_t i);
void fuzz_fields_free(struct fuzz_fields *f);

/* ---- properties ----------------------------------------------------------- */

#define FUZZ_CHECK(cond, ...)                                          \
	do {                                                           \
		if (!(cond))                                           \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

/* Print "file:line: property broken: cond: message" and abort(). */
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Print label and the bytes s[0..n) with non-printable bytes escaped, for
 * the context of a failure; to the real stderr even while capturing. */
void fuzz_dump(const char *label, const char *s, size_t n);

/* memmem for C strings: does hay[0..n) contain needle? */
bool fuzz_contains(const char *hay, size_t n, const char *needle);

/*
 * Where RFC 3986 syntax puts the password of the URL after the first
 * "://" in text: the authority runs to the first '/' or '?', the user
 * info to its last '@', the password from the user info's first ':'.
 * False when there is none; else *at and *len give its place in text.
 */
bool fuzz_url_password_span(const char *text, size_t *at, size_t *len);

/*
 * text with what RFC 3986 syntax makes a password replaced by "***": in
 * the URL after the first "://", the user info's password (from its first
 * ':' to the last '@' before the first '/' or '?'), and the value of
 * every query parameter whose name holds "password". Malloc'd. An oracle
 * for "is this string shown anyway, outside a password position?".
 */
char *fuzz_mask_url_passwords(const char *text);

/* ---- capturing stderr ----------------------------------------------------- */

/*
 * Everything written to fd 2 between begin and end is collected in memory
 * (sg_log writes there with one write(2)). Sanitizer reports always go to
 * the real stderr, so a crash inside the window is still reported.
 */
void fuzz_stderr_begin(void);
/* Malloc'd, NUL-terminated; *len gets the byte count (may be NULL). */
char *fuzz_stderr_end(size_t *len);

/* A file in memory that code under test can open by path. */
const char *fuzz_memfile_path(void);
/* Its contents (malloc'd, NUL-terminated); empties it. */
char *fuzz_memfile_take(size_t *len);

/* ---- oracles -------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF). On failure *bad (may be NULL) gets the offending offset. */
bool fuzz_utf8_valid(const char *s, size_t n, size_t *bad);
/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if none. */
size_t fuzz_utf8_seq(const char *s, size_t n);

/* One member of a JSON object; string values are decoded to UTF-8. */
struct fuzz_json_member {
	char *key;
	char *value;       /* decoded string, or the number/literal as written */
	size_t value_len;
	bool is_string;
};

struct fuzz_json_object {
	struct fuzz_json_member *member;
	size_t n;
};

/*
 * Check that text[0..n) is exactly one JSON value (RFC 8259, whitespace
 * around it allowed), in valid UTF-8, with no unpaired surrogate in a
 * \u escape. When the value is an object and obj is not NULL, its
 * members are decoded into obj (nested values kept as NULL strings).
 * Returns NULL when valid, else a description of the first problem.
 */
const char *fuzz_json_check(const char *text, size_t n, struct fuzz_json_object *obj);
/* The decoded member named key, NULL if absent. */
const struct fuzz_json_member *fuzz_json_get(const struct fuzz_json_object *obj, const char *key);
void fuzz_json_free(struct fuzz_json_object *obj);

#endif
