/*
 * migration_scan.c - reading the migration directory (SPEC section 3):
 * each name that starts like a migration (digits, ending in .sql) is
 * parsed into version, name, dialect tag, layout and .autocommit marker;
 * R__NAME[.DIALECT].sql is a repeatable migration (kept apart, by name);
 * anything else is not a migration and is only listed by lint. Entries are
 * sorted numerically; a file's text is read once, on first use.
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

/* ---- file names ---------------------------------------------------- */


static void entry_free(struct entry *e)
{
	free(e->file);
	free(e->version);
	free(e->name);
	free(e->text);
	sg_statement_list_free(&e->split[0].list);
	sg_statement_list_free(&e->split[1].list);
}

void sg_directory_free(struct directory *d)
{
	for (size_t i = 0; i < d->count; i++)
		entry_free(&d->items[i]);
	free(d->items);
	for (size_t i = 0; i < d->nreps; i++)
		entry_free(&d->reps[i]);
	free(d->reps);
	for (size_t i = 0; i < d->nignored; i++)
		free(d->ignored[i]);
	free(d->ignored);
	if (d->handle)
		closedir(d->handle);
	memset(d, 0, sizeof(*d));
}

static bool ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
	size_t n = strlen(suffix);
	if (len < n || strncasecmp(s + len - n, suffix, n) != 0)
		return false;
	*rest = len - n;
	return true;
}

/* golang-migrate and dbmate take a file as a migration when its name
 * starts with digits; the rest of the directory is not theirs. */
static bool looks_like_migration(const char *file)
{
	size_t rest;
	return isdigit((unsigned char)file[0]) && ends_with(file, strlen(file), ".sql", &rest);
}

/* The name in file[begin, end) ends in a known dialect tag as its last
 * dotted word: record it in e; returns where the name ends without it. */
static size_t strip_tag(const char *file, size_t begin, size_t end, struct entry *e)
{
	const char *dot = end > begin ? memrchr(file + begin, '.', end - begin) : NULL;
	if (!dot)
		return end;
	bool known;
	size_t tb = (size_t)(dot - file) + 1;
	enum sg_dialect d = sg_dialect_tag_n(file + tb, end - tb, &known);
	if (!known)
		return end;
	e->tag = d;
	e->other_engine = d == SG_DIALECT_NONE;
	return tb - 1;
}

/* Flyway's repeatable migrations: R__NAME.sql. golang-migrate and dbmate
 * ignore the name (it does not start with digits). */
static bool looks_repeatable(const char *file)
{
	size_t rest;
	return strncmp(file, SG_REPEATABLE_PREFIX, strlen(SG_REPEATABLE_PREFIX)) == 0 &&
	       ends_with(file, strlen(file), ".sql", &rest);
}

static const char *const repeatable_help = "expected R__NAME.sql or R__NAME.DIALECT.sql";

/* R__NAME[.DIALECT].sql: one file, the whole of it the definition. */
static int parse_repeatable_name(const char *file, struct entry *e, struct report *rep)
{
	memset(e, 0, sizeof(*e));
	size_t len = strlen(file), end = 0, pre = strlen(SG_REPEATABLE_PREFIX);
	if (ends_with(file, len, ".up.sql", &end) || ends_with(file, len, ".down.sql", &end)) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "a repeatable migration is one file whose whole text is the definition, re-applied when it "
			   "changes; it has no up or down script (%s)", repeatable_help);
		return -1;
	}
	ends_with(file, len, ".sql", &end);
	end = strip_tag(file, pre, end, e);
	if (end <= pre) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE, "empty repeatable migration name after 'R__' (%s)",
			   repeatable_help);
		return -1;
	}
	e->kind = FILE_REPEATABLE;
	e->file = sg_strdup(file);
	e->version = sg_strndup(file, end);
	e->name = sg_strndup(file + pre, end - pre);
	return 0;
}

static const char *const name_help = "expected VERSION_NAME[.DIALECT][.autocommit].up.sql, .down.sql or .sql";

/*
 * VERSION[_NAME][.DIALECT][.autocommit](.up.sql|.down.sql|.sql). NAME may
 * hold dots; only a known tag as the last dotted word is a dialect.
 * Returns -1 (reported) when the name does not parse.
 */
static int parse_file_name(const char *file, struct entry *e, struct report *rep)
{
	memset(e, 0, sizeof(*e));
	size_t len = strlen(file), rest;
	if (ends_with(file, len, ".up.sql", &rest))
		e->kind = FILE_UP;
	else if (ends_with(file, len, ".down.sql", &rest))
		e->kind = FILE_DOWN;
	else if (ends_with(file, len, ".sql", &rest))
		e->kind = FILE_SINGLE;
	else
		return -1;   /* looks_like_migration() said .sql */
	len = rest;

	size_t v = 0;
	while (v < len && isdigit((unsigned char)file[v]))
		v++;
	size_t name_b = v;
	if (v < len && file[v] == '_') {
		name_b = v + 1;
	} else if (v < len && file[v] != '.') {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "cannot parse the migration file name: VERSION must be followed by '_NAME' or '.' (%s)",
			   name_help);
		return -1;
	}
	size_t end = len;
	if (ends_with(file, end, ".autocommit", &rest) && rest >= v) {
		e->autocommit = true;
		end = rest;
	}
	end = strip_tag(file, name_b, end, e);
	if (file[v] == '.' && end != v) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "cannot parse the migration file name: after VERSION, '.' must start a dialect tag (%s)",
			   name_help);
		return -1;
	}
	if (file[v] == '_' && end <= name_b) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE, "empty migration name after '_' (%s)", name_help);
		return -1;
	}
	size_t rest2;
	if (end > name_b && ends_with(file, end, ".autocommit", &rest2)) {
		sg_report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "'.autocommit' must come right before .up.sql or .down.sql (V_NAME.DIALECT.autocommit.up.sql, "
			   "as popx reads it)");
		return -1;
	}
	e->file = sg_strdup(file);
	e->version = sg_strndup(file, v);
	e->name = end > name_b && file[v] == '_' ? sg_strndup(file + name_b, end - name_b) : sg_strdup("");
	return 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = sg_version_cmp(a->version, b->version);
	return c ? c : strcmp(a->file, b->file);
}

/* Repeatables by key (their name order), then file. */
static int rep_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = strcmp(a->version, b->version);
	return c ? c : strcmp(a->file, b->file);
}

static const char *file_type(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* Classify one directory entry; adds a migration to d. */
static void scan_one(struct directory *d, const char *name, unsigned char dtype, struct report *rep)
{
	bool repeatable = looks_repeatable(name);
	bool migration = repeatable || looks_like_migration(name);
	struct stat st;
	mode_t mode;
	if (dtype == DT_REG) {
		mode = S_IFREG;
	} else if (dtype == DT_DIR) {
		mode = S_IFDIR;
	} else {
		/* symlinks (ConfigMap volumes), and file systems without d_type */
		if (fstatat(dirfd(d->handle), name, &st, 0) < 0) {
			char target[512];
			ssize_t n = readlinkat(dirfd(d->handle), name, target, sizeof(target) - 1);
			if (n >= 0) {
				target[n] = '\0';
				bool loop = errno == ELOOP;
				sg_report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "%s symlink to %s (%s)%s",
					   loop ? "looping" : "dangling", target, strerror(errno),
					   loop ? "" : "; a volume that is not fully mounted?");
			} else {
				sg_report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "%s", strerror(errno));
			}
			return;
		}
		mode = st.st_mode;
	}
	if (S_ISDIR(mode)) {
		/* subdirectories are not part of the directory, as for golang-migrate */
		if (migration)
			sg_report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "a directory named like a migration file");
		return;
	}
	if (!S_ISREG(mode)) {
		sg_report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE,
			   "%s, not a file: a migration directory holds only files", file_type(mode));
		return;
	}
	if (!migration) {
		d->ignored = sg_realloc(d->ignored, (d->nignored + 1) * sizeof(char *));
		d->ignored[d->nignored++] = sg_strdup(name);
		return;
	}
	if (!sg_utf8_valid(name)) {
		/* the history table records the name as text: PostgreSQL and
		 * MySQL would refuse it after the script ran */
		char *shown = sg_utf8_sanitize(name, 1024);
		sg_report_add(rep, LV_ERROR, shown, 0, SG_DIALECT_NONE,
			   "the file name is not valid UTF-8 (the history table records names as text); rename it");
		free(shown);
		return;
	}
	struct entry e;
	if ((repeatable ? parse_repeatable_name(name, &e, rep) : parse_file_name(name, &e, rep)) < 0)
		return;
	if (!e.other_engine)
		d->has_tag[e.tag] = true;
	if (repeatable) {
		if (d->nreps == d->capreps) {
			d->capreps = d->capreps ? d->capreps * 2 : 16;
			d->reps = sg_realloc(d->reps, d->capreps * sizeof(*d->reps));
		}
		d->reps[d->nreps++] = e;
		return;
	}
	if (d->count == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->items = sg_realloc(d->items, d->cap * sizeof(*d->items));
	}
	d->items[d->count++] = e;
}

/* A directory entry before it is classified. */
struct dir_name {
	char *name;
	unsigned char type;   /* d_type */
};

static int dir_name_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct dir_name *)pa)->name, ((const struct dir_name *)pb)->name);
}

/* Classify the entries in name order: every message and note then comes
 * out the same, whatever order the file system lists them in. Frees names. */
static void scan_names(struct directory *d, struct dir_name *names, size_t n, struct report *rep)
{
	if (n > 1)
		qsort(names, n, sizeof(*names), dir_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (names[i].name[0] != '.')   /* dot-files; ConfigMap's ..data links */
			scan_one(d, names[i].name, names[i].type, rep);
		free(names[i].name);
	}
	free(names);
	if (d->count > 1)
		qsort(d->items, d->count, sizeof(*d->items), entry_cmp);
	if (d->nreps > 1)
		qsort(d->reps, d->nreps, sizeof(*d->reps), rep_cmp);
}

/* Every file of dir, classified. Problems go to rep; returns -1 only
 * when the directory itself cannot be read. */
int sg_directory_scan(const char *dir, struct directory *d, struct report *rep)
{
	memset(d, 0, sizeof(*d));
	d->dir = dir;
	d->handle = opendir(dir);
	if (!d->handle) {
		sg_report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE, "migration directory %s: %s", dir, strerror(errno));
		return -1;
	}
	struct dir_name *names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d->handle)) != NULL) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = sg_realloc(names, cap * sizeof(*names));
		}
		names[n++] = (struct dir_name){sg_strdup(de->d_name), de->d_type};
	}
	scan_names(d, names, n, rep);
	return 0;
}

/* The same for a directory held in memory: every file is a regular file. */
void sg_directory_scan_files(const char *label, const struct sg_migration_file *files, size_t n, struct directory *d,
		       struct report *rep)
{
	memset(d, 0, sizeof(*d));
	d->dir = label;
	d->files = files;
	d->nfiles = n;
	struct dir_name *names = sg_calloc(n + 1, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = (struct dir_name){sg_strdup(files[i].name), DT_REG};
	scan_names(d, names, n, rep);
}

/* A file of a directory held in memory, copied to end in NUL. */
static char *memory_file(const struct directory *d, const char *name, size_t *n)
{
	for (size_t i = 0; i < d->nfiles; i++) {
		if (strcmp(d->files[i].name, name) != 0)
			continue;
		char *text = sg_malloc(d->files[i].len + 1);
		memcpy(text, d->files[i].content, d->files[i].len);
		text[d->files[i].len] = '\0';
		*n = d->files[i].len;
		return text;
	}
	abort();   /* sg_directory_scan_files() took the name from the list */
}

/* A migration file's bytes, NUL-terminated; NULL (reported) when it
 * cannot be read. */
static char *read_file(const struct directory *d, const struct entry *e, size_t *len, struct report *rep)
{
	/* O_NONBLOCK: a FIFO swapped in after the scan must not hang us */
	int fd = openat(dirfd(d->handle), e->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st = {0};
	const char *why = NULL;
	if (fd < 0 || fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	if (why) {
		sg_report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "cannot be read: %s", why);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	/* Room for one byte more than fstat saw: a read of a regular file
	 * that returns less than asked is at its end, so a file costs one
	 * read and no reallocation (the buffer grows only if the file grew
	 * since fstat). Linux returns at most ~2 GiB per call, so only
	 * smaller reads that come back short are taken as the end. */
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *text = sg_malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			cap = cap * 2 + 4096;
			text = sg_realloc(text, cap + 1);
		}
		size_t want = cap - n;
		ssize_t got = read(fd, text + n, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			sg_report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "cannot be read: %s", strerror(errno));
			close(fd);
			free(text);
			return NULL;
		}
		n += (size_t)got;
		if (got == 0 || ((size_t)got < want && want <= (1u << 30)))
			break;
	}
	close(fd);
	text[n] = '\0';
	*len = n;
	return text;
}

/* Read a migration once: BOM stripped, NUL bytes refused. */
bool sg_entry_read(const struct directory *d, struct entry *e, struct report *rep)
{
	if (e->read)
		return e->text != NULL;
	e->read = true;
	size_t n = 0;
	char *text = d->files ? memory_file(d, e->file, &n) : read_file(d, e, &n, rep);
	if (!text)
		return false;
	if (memchr(text, '\0', n)) {
		sg_report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "contains a NUL byte; not a SQL script");
		free(text);
		return false;
	}
	if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		memmove(text, text + 3, n - 2);
		n -= 3;
		e->bom = true;
	}
	e->text = text;
	e->len = n;
	return true;
}

