/*
 * fuzz_config.c - durations and the command line (src/config.c).
 *
 * Input: fields separated by NUL bytes.
 *   0   a duration ("30s"), checked against a reference parser;
 *   1.. command-line words (argv[1..]); a field that starts with the byte
 *       0x01 sets an environment variable instead: the next byte picks
 *       the name (every variable config.c reads, and POSIXLY_CORRECT),
 *       the rest is the value.
 *
 * Files: config.c reads the URL file and the password file; here fopen
 * is wrapped (-Wl,--wrap=fopen) so that reading any path gives one of a
 * few files held in memory, or ENOENT: the fuzzer never reads /dev/zero,
 * a FIFO or the machine's files. (Writes go through: they are
 * libFuzzer's own corpus and crash files.)
 *
 * Properties:
 *   - sg_parse_duration accepts exactly what the reference accepts
 *     (digits, then ms, s, m, h or nothing; at most INT64_MAX/2 ms) with
 *     the same value, and "<value>ms" reads back as the same value;
 *   - sg_config_parse returns 0 or -1, never crashes or leaks; on -1 the
 *     exit code is 2, the message is one line, the config holds nothing
 *     but the logging settings main reports the refusal with, and
 *     the line main() logs shows no password from the input (the URL
 *     file's, the password file's, any URL's given as a word or a
 *     variable);
 *   - on 0, every setting passes a re-check: each duration is its default
 *     or what the reference parser makes of a word or a variable given;
 *     the poll interval is positive and the lease at least 1 s; the table
 *     name is [schema.]identifier; versions are digits; a command that
 *     needs a database has a URL that parses, and its password is
 *     registered (a log line holding the URL does not show it); the
 *     password file's content arrives trimmed; PROGRAM ARGS are exactly
 *     the words after the first "--", for up, wait and verify only.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "config_env.h"
#include "fuzz.h"
#include "outputs.h"
#include "schemagate/config.h"
#include "schemagate/log.h"
#include "schemagate/url.h"

#define MAX_WORDS 40
#define MAX_DURATION_MS ((uint64_t)INT64_MAX / 2)
#define MIN_SECRET_LEN 3

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

/* ---- files in memory ------------------------------------------------------ */

struct memfile {
	const char *name;
	const char *content;
	const char *secret;      /* the password it holds, if any */
	const char *trimmed;     /* content without trailing whitespace */
};

static const struct memfile files[] = {
	{ "url", "postgres://fz:url-secret-1@127.0.0.1:5432/app\n", "url-secret-1",
	  "postgres://fz:url-secret-1@127.0.0.1:5432/app" },
	{ "url-query", "postgres://fz@127.0.0.1/app?password=query-secret-2 \n", "query-secret-2",
	  "postgres://fz@127.0.0.1/app?password=query-secret-2" },
	{ "url-bad", "mysql://fz:bad-secret-3@[::1:3306/app\n", "bad-secret-3",
	  "mysql://fz:bad-secret-3@[::1:3306/app" },
	{ "url-sqlite", "sqlite:app.db\r\n", NULL, "sqlite:app.db" },
	{ "pw", "pw-secret-4\n", "pw-secret-4", "pw-secret-4" },
	{ "pw-spaces", "  pw secret 5 \t\n", "pw secret 5", "  pw secret 5" },
	{ "blank", " \n\t\n", NULL, "" },
	{ "empty", "", NULL, "" },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

FILE *__wrap_fopen(const char *path, const char *mode)
{
	/* The wrap covers every object of the link, libFuzzer's too, which
	 * writes its corpus and crash files with fopen(path, "wb"). config.c
	 * only reads. */
	if (strpbrk(mode, "wa+"))
		return __real_fopen(path, mode);
	for (size_t i = 0; i < NFILES; i++) {
		if (strcmp(path, files[i].name) != 0)
			continue;
		if (!files[i].content[0])
			return __real_fopen("/dev/null", mode);
		return fmemopen((void *)files[i].content, strlen(files[i].content), "r");
	}
	errno = ENOENT;
	return NULL;
}

/* ---- the environment ------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_outputs_init();
	/* --help and --version print to stdout */
	int null = open("/dev/null", O_WRONLY);
	if (null < 0 || dup2(null, 1) < 0)
		abort();
	close(null);
	return 0;
}

/* ---- durations ------------------------------------------------------------ */

/* The reference: digits, then "", "ms", "s", "m" or "h". */
static bool ref_duration(const char *s, uint64_t *ms)
{
	size_t digits = strspn(s, "0123456789");
	if (digits == 0)
		return false;
	const char *unit = s + digits;
	uint64_t mult;
	if (strcmp(unit, "ms") == 0)
		mult = 1;
	else if (strcmp(unit, "") == 0 || strcmp(unit, "s") == 0)
		mult = 1000;
	else if (strcmp(unit, "m") == 0)
		mult = 60000;
	else if (strcmp(unit, "h") == 0)
		mult = 3600000;
	else
		return false;
	unsigned __int128 n = 0;
	for (size_t i = 0; i < digits; i++) {
		n = n * 10 + (unsigned)(s[i] - '0');
		if (n > MAX_DURATION_MS)
			return false;
	}
	n *= mult;
	if (n > MAX_DURATION_MS)
		return false;
	*ms = (uint64_t)n;
	return true;
}

static void check_duration(const char *s)
{
	uint64_t want = 0, got = 12345;
	bool ok = ref_duration(s, &want);
	int rc = sg_parse_duration(s, &got);
	if ((rc == 0) != ok)
		fuzz_dump("duration", s, strlen(s));
	FUZZ_CHECK((rc == 0) == ok, "sg_parse_duration %s what the reference %s", rc == 0 ? "accepts" : "refuses",
		   ok ? "accepts" : "refuses");
	if (!ok) {
		FUZZ_CHECK(got == 12345, "a refused duration changed the output");
		return;
	}
	FUZZ_CHECK(got == want, "'%s' is %llu ms, not %llu", s, (unsigned long long)got, (unsigned long long)want);
	char again[32];
	snprintf(again, sizeof(again), "%llums", (unsigned long long)got);
	uint64_t back = 0;
	FUZZ_CHECK(sg_parse_duration(again, &back) == 0 && back == got, "%s does not read back", again);
}

/* ---- the command line ----------------------------------------------------- */

struct input {
	char *argv[MAX_WORDS + 2];
	int argc;
	const char *env_value[CONFIG_ENV_COUNT];
	/* every string the fuzzer gave: words, the part after '=', values */
	const char *given[3 * MAX_WORDS];
	size_t ngiven;
};

static void build_input(struct input *in, const struct fuzz_fields *f)
{
	memset(in, 0, sizeof(*in));
	in->argv[in->argc++] = "schemagate";
	for (size_t i = 1; i < f->n && in->argc <= MAX_WORDS; i++) {
		const char *w = f->field[i];
		if (w[0] == '\1' && w[1]) {
			size_t k = (unsigned char)w[1] % CONFIG_ENV_COUNT;
			in->env_value[k] = w + 2;
			in->given[in->ngiven++] = w + 2;
			continue;
		}
		in->argv[in->argc++] = (char *)w;
		in->given[in->ngiven++] = w;
		const char *eq = strchr(w, '=');
		if (eq)
			in->given[in->ngiven++] = eq + 1;
	}
	in->argv[in->argc] = NULL;
	for (size_t k = 0; k < CONFIG_ENV_COUNT; k++) {
		if (in->env_value[k])
			setenv(config_env_names[k], in->env_value[k], 1);
		else
			unsetenv(config_env_names[k]);
	}
}

/* Passwords the input holds: the files' and any URL's given. Malloc'd. */
static size_t input_secrets(const struct input *in, char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < NFILES && n < max; i++)
		if (files[i].secret)
			out[n++] = strdup(files[i].secret);
	for (size_t i = 0; i < in->ngiven && n < max; i++) {
		struct sg_url url;
		if (sg_url_parse(in->given[i], &url, NULL) != 0)
			continue;
		if (url.password && strlen(url.password) >= MIN_SECRET_LEN)
			out[n++] = strdup(url.password);
		sg_url_free(&url);
	}
	return n;
}

/* Was this duration given (as a word, after '=', or in a variable)? */
static bool duration_given(const struct input *in, uint64_t ms, uint64_t deflt)
{
	if (ms == deflt)
		return true;
	for (size_t i = 0; i < in->ngiven; i++) {
		uint64_t v;
		if (ref_duration(in->given[i], &v) && v == ms)
			return true;
	}
	return false;
}

static bool is_identifier(const char *s, size_t n)
{
	if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

static bool is_table(const char *s)
{
	const char *dot = strchr(s, '.');
	if (!dot)
		return is_identifier(s, strlen(s));
	return is_identifier(s, (size_t)(dot - s)) && is_identifier(dot + 1, strlen(dot + 1));
}

static bool is_version(const char *s)
{
	return s && *s && strspn(s, "0123456789") == strlen(s);
}

static bool is_given_word(const struct input *in, const char *s, int before)
{
	for (int i = 1; i < before; i++)
		if (strcmp(in->argv[i], s) == 0)
			return true;
	return false;
}

static int first_dash(const struct input *in)
{
	for (int i = 1; i < in->argc; i++)
		if (strcmp(in->argv[i], "--") == 0)
			return i;
	return in->argc;
}

/* The password of the resolved URL is registered: a line holding the
 * URL, in any form, does not show it. */
static void check_url_secret_registered(const char *database_url)
{
	struct sg_url url;
	struct sg_error err = {0};
	FUZZ_CHECK(sg_url_parse(database_url, &url, &err) == 0, "the accepted URL does not parse: %s", err.msg);
	const char *pw = url.password;
	if (pw && strlen(pw) >= MIN_SECRET_LEN && !strchr(pw, '*')) {
		struct fuzz_outputs skeleton, o;
		fuzz_outputs_collect(&skeleton, "", NULL);
		fuzz_outputs_collect(&o, database_url, NULL);
		if (!fuzz_outputs_contain(&skeleton, pw) && !strstr(url.redacted, pw))
			fuzz_outputs_assert_hidden(&o, pw, "password of the database URL", database_url);
		fuzz_outputs_free(&o);
		fuzz_outputs_free(&skeleton);
	}
	sg_url_free(&url);
}

static void check_accepted(const struct input *in, const struct sg_config *cfg)
{
	FUZZ_CHECK(cfg->command != SG_CMD_NONE && cfg->command_name, "no command");
	if (cfg->command == SG_CMD_HELP || cfg->command == SG_CMD_VERSION)
		return;
	int dash = first_dash(in);
	FUZZ_CHECK(is_given_word(in, cfg->command_name, dash), "command '%s' was not given", cfg->command_name);

	const struct {
		uint64_t ms, deflt;
		const char *name;
	} durations[] = {
		{ cfg->connect_timeout_ms, 60000, "connect timeout" },
		{ cfg->lock_timeout_ms, 300000, "lock timeout" },
		{ cfg->poll_interval_ms, 1000, "poll interval" },
		{ cfg->timeout_ms, 0, "timeout" },
		{ cfg->lock_lease_ms, 30000, "lock lease" },
		{ cfg->ddl_lock_timeout_ms, 0, "DDL lock timeout" },
	};
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		FUZZ_CHECK(durations[i].ms <= MAX_DURATION_MS, "%s overflows", durations[i].name);
		FUZZ_CHECK(duration_given(in, durations[i].ms, durations[i].deflt), "%s %llu ms was never given",
			   durations[i].name, (unsigned long long)durations[i].ms);
	}
	FUZZ_CHECK(cfg->poll_interval_ms > 0, "zero poll interval");
	FUZZ_CHECK(cfg->lock_lease_ms >= 1000, "lease %llu ms", (unsigned long long)cfg->lock_lease_ms);

	FUZZ_CHECK(cfg->table && is_table(cfg->table), "table '%s'", cfg->table ? cfg->table : "(null)");
	FUZZ_CHECK(cfg->dir && cfg->dir[0], "no directory");
	FUZZ_CHECK(!cfg->target || is_version(cfg->target), "target '%s'", cfg->target);
	FUZZ_CHECK(cfg->lock_mode <= SG_LOCK_NONE && cfg->log_format <= SG_LOG_JSON && cfg->log_level <= SG_LOG_ERROR,
		   "enum out of range");

	bool needs_url = cfg->command != SG_CMD_NEW && cfg->command != SG_CMD_LINT;
	if (needs_url) {
		FUZZ_CHECK(cfg->database_url && cfg->database_url[0], "'%s' without a database URL", cfg->command_name);
		check_url_secret_registered(cfg->database_url);
	} else {
		FUZZ_CHECK(!cfg->database_url && !cfg->password, "'%s' resolved a database", cfg->command_name);
	}
	if (cfg->password) {
		bool known = false;
		for (size_t i = 0; i < NFILES; i++)
			known |= files[i].trimmed[0] && strcmp(cfg->password, files[i].trimmed) == 0;
		FUZZ_CHECK(known, "password '%s' is no file's trimmed content", cfg->password);
	}

	bool takes_program = cfg->command == SG_CMD_UP || cfg->command == SG_CMD_WAIT || cfg->command == SG_CMD_VERIFY;
	if (cfg->program_argv) {
		FUZZ_CHECK(takes_program && dash < in->argc, "PROGRAM for '%s'", cfg->command_name);
		int i = 0;
		for (; cfg->program_argv[i]; i++)
			FUZZ_CHECK(dash + 1 + i < in->argc && strcmp(cfg->program_argv[i], in->argv[dash + 1 + i]) == 0,
				   "PROGRAM word %d", i);
		FUZZ_CHECK(i > 0 && dash + 1 + i == in->argc, "PROGRAM has %d words", i);
	} else {
		FUZZ_CHECK(dash == in->argc, "'--' given but no PROGRAM kept");
	}

	switch (cfg->command) {
	case SG_CMD_DOWN:
		FUZZ_CHECK(cfg->down_to ? cfg->down_steps == 0 && is_version(cfg->down_to) : cfg->down_steps >= 1,
			   "down: steps %d, to %s", cfg->down_steps, cfg->down_to ? cfg->down_to : "-");
		break;
	case SG_CMD_REPAIR:
		FUZZ_CHECK(cfg->repair_action != SG_REPAIR_NONE, "repair without an action");
		FUZZ_CHECK(cfg->repair_action == SG_REPAIR_ACCEPT_CHECKSUMS ? !cfg->repair_version
									     : is_version(cfg->repair_version),
			   "repair version");
		break;
	case SG_CMD_BASELINE:
		FUZZ_CHECK(is_version(cfg->baseline_version), "baseline version");
		break;
	case SG_CMD_NEW:
		FUZZ_CHECK(cfg->new_name && cfg->new_name[0] &&
				   strspn(cfg->new_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
					   strlen(cfg->new_name),
			   "new name '%s'", cfg->new_name ? cfg->new_name : "(null)");
		break;
	default:
		FUZZ_CHECK(cfg->down_steps == 1 && !cfg->down_to && cfg->repair_action == SG_REPAIR_NONE && !cfg->new_name,
			   "options of another command");
		FUZZ_CHECK(!cfg->baseline_version || (cfg->command == SG_CMD_UP && is_version(cfg->baseline_version)),
			   "baseline version for '%s'", cfg->command_name);
		break;
	}
}

/* The message for the same input with the passwords of every URL given
 * masked (fuzz_mask_url_passwords): its wording ("see schemagate --help")
 * is what the message shows anyway. Malloc'd. */
static char *message_without_passwords(const struct input *in)
{
	char *argv[MAX_WORDS + 2] = { 0 };
	argv[0] = in->argv[0];
	for (int i = 1; i < in->argc; i++)
		argv[i] = fuzz_mask_url_passwords(in->argv[i]);
	for (size_t k = 0; k < CONFIG_ENV_COUNT; k++) {
		if (!in->env_value[k])
			continue;
		char *masked = fuzz_mask_url_passwords(in->env_value[k]);
		setenv(config_env_names[k], masked, 1);
		free(masked);
	}
	struct sg_config cfg;
	struct sg_error err = {0};
	sg_config_parse(&cfg, in->argc, argv, &err);
	sg_config_free(&cfg);   /* a refusal keeps the logging settings (a termination log path) */
	for (size_t k = 0; k < CONFIG_ENV_COUNT; k++)
		if (in->env_value[k])
			setenv(config_env_names[k], in->env_value[k], 1);
	for (int i = 1; i < in->argc; i++)
		free(argv[i]);
	return strdup(err.msg);
}

/* text with the passwords of every URL in it masked (fuzz_mask_url_passwords),
 * each URL running to the scheme of the next: where a word holds several
 * ("postgres://u:x@h,postgres://v:y@h"), a password of the second is no
 * part of the first one's query. Malloc'd. */
static char *mask_every_url(const char *text)
{
	size_t cap = 4 * strlen(text) + 16, o = 0;
	char *out = malloc(cap);
	const char *p = text;
	while (*p) {
		const char *sep = strstr(p, "://");
		const char *next = sep ? strstr(sep + 3, "://") : NULL;
		while (next && next > sep + 3 &&
		       ((next[-1] >= 'a' && next[-1] <= 'z') || (next[-1] >= 'A' && next[-1] <= 'Z') ||
			(next[-1] >= '0' && next[-1] <= '9') || strchr("+-.", next[-1])))
			next--;
		size_t len = next ? (size_t)(next - p) : strlen(p);
		char *piece = strndup(p, len);
		char *masked = fuzz_mask_url_passwords(piece);
		size_t m = strlen(masked);
		memcpy(out + o, masked, m);
		o += m;
		free(masked);
		free(piece);
		p += len;
	}
	out[o] = '\0';
	return out;
}

/* What main() prints for a refused command line shows no password. */
static void check_refused(const struct input *in, const struct sg_config *cfg, const struct sg_error *err)
{
	/* main reports the refusal in the log format and at the level asked
	 * for, and to the termination log: those are kept, nothing else */
	static const struct sg_config zero;
	struct sg_config rest = *cfg;
	rest.log_format = 0;
	rest.log_level = 0;
	rest.termination_log = NULL;
	FUZZ_CHECK(memcmp(&rest, &zero, sizeof(zero)) == 0, "a refused command line left settings behind");
	FUZZ_CHECK(err->outcome == SG_OUTCOME_USAGE, "outcome %d", (int)err->outcome);
	FUZZ_CHECK(err->msg[0] && !strpbrk(err->msg, "\r\n"), "not one line: %s", err->msg);

	char *secrets[2 * MAX_WORDS + NFILES];
	size_t n = input_secrets(in, secrets, sizeof(secrets) / sizeof(secrets[0]));
	struct fuzz_outputs skeleton, o;
	fuzz_outputs_collect(&skeleton, "", NULL);
	fuzz_outputs_collect(&o, err->msg, NULL);
	char *wording = n ? message_without_passwords(in) : NULL;
	for (size_t i = 0; i < n; i++) {
		/* a password that a word of the command line holds outside a
		 * password position is shown as part of that word */
		bool public = fuzz_outputs_contain(&skeleton, secrets[i]) || strchr(secrets[i], '*') ||
			      strstr(wording, secrets[i]);
		for (size_t w = 0; w < in->ngiven && !public; w++) {
			char *masked = mask_every_url(in->given[w]);
			public = strstr(masked, secrets[i]) != NULL;
			free(masked);
		}
		if (!public)
			fuzz_outputs_assert_hidden(&o, secrets[i], "password", err->msg);
		free(secrets[i]);
	}
	free(wording);
	fuzz_outputs_free(&o);
	fuzz_outputs_free(&skeleton);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	fuzz_fields_split(&f, data, size, MAX_WORDS + 1);
	check_duration(fuzz_field(&f, 0));

	struct input in;
	build_input(&in, &f);
	for (size_t i = 0; i < in.ngiven; i++)
		check_duration(in.given[i]);

	sg_log_forget_secrets();
	struct sg_config cfg;
	struct sg_error err = {0};
	int rc = sg_config_parse(&cfg, in.argc, in.argv, &err);
	FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
	if (rc == 0) {
		check_accepted(&in, &cfg);
		sg_config_free(&cfg);
		static const struct sg_config zero;
		FUZZ_CHECK(memcmp(&cfg, &zero, sizeof(zero)) == 0, "sg_config_free left settings behind");
	} else {
		check_refused(&in, &cfg, &err);
		sg_config_free(&cfg);
	}
	sg_log_forget_secrets();
	fuzz_fields_free(&f);
	return 0;
}
