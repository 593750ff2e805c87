/*
 * migration_new.c - `schemagate new NAME`: the next version's files,
 * named and numbered like the directory's, after the directory validates.
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

#include "migration_internal.h"
#include <time.h>

/* ---- new ----------------------------------------------------------- */

static bool valid_migration_name(const char *name)
{
	if (!name || !*name)
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* YYYYMMDDHHMMSS with plausible fields. */
static bool looks_like_timestamp(const char *v)
{
	if (strlen(v) != 14 || !sg_version_valid(v))
		return false;
	int year, mon, day, hour, min, sec;
	if (sscanf(v, "%4d%2d%2d%2d%2d%2d", &year, &mon, &day, &hour, &min, &sec) != 6)
		return false;
	return year >= 1970 && year <= 2999 && mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour < 24 &&
	       min < 60 && sec < 61;
}

static void utc_timestamp(char out[15])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

/* Decimal v + 1, at least `width` digits (zero padded). Malloc'd. */
static char *version_next(const char *v, size_t width)
{
	size_t n = strlen(v);
	char *buf = sg_malloc(n + 2);
	memcpy(buf + 1, v, n + 1);
	buf[0] = '0';
	size_t i = n + 1;
	while (i-- > 0) {
		if (buf[i] == '9') {
			buf[i] = '0';
			continue;
		}
		buf[i]++;
		break;
	}
	char *digits = buf;
	while (digits[0] == '0' && digits[1])
		digits++;
	size_t len = strlen(digits), pad = len < width ? width - len : 0;
	char *out = sg_malloc(pad + len + 1);
	memset(out, '0', pad);
	memcpy(out + pad, digits, len + 1);
	free(buf);
	return out;
}

static int mkdir_p(const char *dir, struct sg_error *err)
{
	char *path = sg_strdup(dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			sg_fail(err, SG_OUTCOME_USAGE, "creating %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		*p = '/';
	}
	int rc = 0;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		rc = sg_fail(err, SG_OUTCOME_USAGE, "creating %s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int create_file(const char *path, const char *content, struct sg_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return sg_fail(err, SG_OUTCOME_USAGE, "creating %s: %s", path, strerror(errno));
	size_t len = strlen(content);
	if (len && write(fd, content, len) != (ssize_t)len) {
		int saved = errno;
		close(fd);
		unlink(path);
		return sg_fail(err, SG_OUTCOME_USAGE, "writing %s: %s", path, strerror(saved));
	}
	if (close(fd) < 0) {
		int saved = errno;
		unlink(path);
		return sg_fail(err, SG_OUTCOME_USAGE, "writing %s: %s", path, strerror(saved));
	}
	return 0;
}

/* The version `new` should use, in the style of the newest existing one. */
static char *next_version(const struct directory *d)
{
	char ts[15];
	utc_timestamp(ts);
	if (d->count == 0)
		return sg_strdup(ts);
	const char *newest = d->items[d->count - 1].version;
	if (looks_like_timestamp(newest)) {
		if (sg_version_cmp(ts, newest) > 0)
			return sg_strdup(ts);
		return version_next(newest, 14);   /* clock behind the newest file */
	}
	return version_next(newest, strlen(newest));
}

/* Scan and validate dir for every dialect; problems go to rep. An empty
 * or missing directory is fine for `new`. */
static void validate_all(const char *dir, struct directory *d, struct report *rep, bool empty_ok)
{
	if (sg_directory_scan(dir, d, rep) < 0)
		return;
	bool *bad = sg_check_groups(d, rep);
	if (d->count == 0 && !empty_ok && rep->counts[LV_ERROR] == 0)
		sg_no_migrations(d, rep);
	for (size_t k = 0; k < NDIALECTS; k++) {
		if (sg_all_dialects[k] == SG_DIALECT_MARIADB && !d->has_tag[SG_DIALECT_MARIADB])
			continue;   /* the same files as for MySQL */
		struct selection sel;
		sg_load_dialect(d, bad, sg_all_dialects[k], false, &sel, rep);
		sg_selection_free(&sel);
	}
	sg_check_unread(d, rep);
	free(bad);
}

int sg_migration_new(const char *dir, const char *name, const char *dialect, bool single_file,
		     struct sg_error *err)
{
	if (!valid_migration_name(name))
		return sg_fail(err, SG_OUTCOME_USAGE, "migration name '%s' must match [A-Za-z0-9_-]+", name ? name : "");
	if (dialect && *dialect) {
		bool known;
		if (sg_dialect_tag(dialect, &known) == SG_DIALECT_NONE)
			return sg_fail(err, SG_OUTCOME_USAGE, "%s dialect '%s' (%s)",
				       known ? "schemagate does not run migrations for the" : "unknown", dialect,
				       sg_known_tags_help);
	}
	if (mkdir_p(dir, err) < 0)
		return -1;

	/* Refuse to extend a directory that does not load. */
	struct report rep = {0};
	struct directory d;
	validate_all(dir, &d, &rep, true);
	int rc = sg_report_fail(&rep, err);
	sg_report_free(&rep);
	if (rc < 0) {
		sg_directory_free(&d);
		return -1;
	}
	bool any_pair = false, any_single = false;
	for (size_t i = 0; i < d.count; i++) {
		if (d.items[i].kind == FILE_SINGLE)
			any_single = true;
		else
			any_pair = true;
	}
	/* An explicit request for single-file wins; otherwise follow the directory. */
	bool single = single_file || (any_single && !any_pair);
	char *version = next_version(&d);
	sg_directory_free(&d);

	char *stem = dialect && *dialect ? sg_asprintf("%s/%s_%s.%s", dir, version, name, dialect)
					 : sg_asprintf("%s/%s_%s", dir, version, name);
	free(version);
	if (single) {
		char *path = sg_asprintf("%s.sql", stem);
		rc = create_file(path, "-- migrate:up\n\n-- migrate:down\n", err);
		if (rc == 0)
			printf("%s\n", path);
		free(path);
	} else {
		char *up = sg_asprintf("%s.up.sql", stem), *down = sg_asprintf("%s.down.sql", stem);
		rc = create_file(up, "", err);
		if (rc == 0 && (rc = create_file(down, "", err)) < 0)
			unlink(up);   /* never leave half a pair behind */
		if (rc == 0)
			printf("%s\n%s\n", up, down);
		free(up);
		free(down);
	}
	free(stem);
	fflush(stdout);
	return rc;
}

