/*
 * floor.c - the least any PostgreSQL migration client can spend on a start.
 *
 *   floor [--read DIR] URL [SQL]
 *   floor --apply DIR URL
 *
 * Connects with libpq to URL (the same URL, hence the same TCP + SCRAM
 * authentication, that the benchmarked tools use), runs one query (by
 * default the read of schemagate's history table, the one query a no-op
 * `up` cannot avoid), reads every row, and exits. A migration tool's no-op
 * start is compared against this: whatever it spends beyond it is the
 * tool's own overhead.
 *
 * With --read DIR it first reads every file of DIR and hashes it with
 * SHA-256 (as OpenSSL's EVP does for schemagate), as a tool that checks
 * every applied migration's checksum must before it connects: the least
 * a no-op start over a large directory can cost.
 *
 * With --apply DIR it is the floor of a fresh apply instead: it creates a
 * one-column history table, then sends each migration of DIR (dbmate's
 * format, the `-- migrate:up` section, in name order) together with one
 * history INSERT as a single transaction in a single message: BEGIN, the
 * script, the INSERT, COMMIT, one round trip per migration. No lock, no
 * audit, no checksum: the least a tool that records what it applied can
 * send.
 *
 * Exit status: 0 on success, 1 on any error (message on stderr).
 */
#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SQL "SELECT version, checksum FROM schemagate_migrations"

/* Read and hash every file of dir; returns the number of files, -1 on error. */
static long read_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		return -1;
	}
	long files = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(de->d_name);
			closedir(d);
			return -1;
		}
		char *buf = malloc((size_t)st.st_size + 1);
		ssize_t n = buf ? read(fd, buf, (size_t)st.st_size + 1) : -1;
		close(fd);
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		if (n < 0 || EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
			fprintf(stderr, "floor: reading %s failed\n", de->d_name);
			free(buf);
			closedir(d);
			return -1;
		}
		free(buf);
		files++;
	}
	closedir(d);
	return files;
}

static int only_migrations(const struct dirent *de)
{
	size_t n = strlen(de->d_name);
	return de->d_name[0] != '.' && n > 4 && strcmp(de->d_name + n - 4, ".sql") == 0;
}

static char *slurp_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(name);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int exec_ok(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "floor: %s", PQerrorMessage(pg));
	PQclear(res);
	return ok;
}

/* One message per migration: BEGIN; up; INSERT; COMMIT. */
static int apply_dir(PGconn *pg, const char *dir)
{
	if (!exec_ok(pg, "CREATE TABLE IF NOT EXISTS floor_migrations (version TEXT PRIMARY KEY)"))
		return -1;
	struct dirent **names;
	int n = scandir(dir, &names, only_migrations, alphasort);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (n < 0 || dfd < 0) {
		perror(dir);
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char *text = rc == 0 ? slurp_at(dfd, names[i]->d_name) : NULL;
		char *up = text ? strstr(text, "-- migrate:up") : NULL;
		char *down = up ? strstr(up, "-- migrate:down") : NULL;
		if (rc == 0 && !up) {
			fprintf(stderr, "floor: %s: no -- migrate:up\n", names[i]->d_name);
			rc = -1;
		}
		if (rc == 0) {
			if (down)
				*down = '\0';
			size_t len = strlen(up) + 256;
			char *sql = malloc(len);
			snprintf(sql, len, "BEGIN; %s\n; INSERT INTO floor_migrations VALUES ('%.14s'); COMMIT", up,
				 names[i]->d_name);
			if (!exec_ok(pg, sql))
				rc = -1;
			free(sql);
		}
		free(text);
		free(names[i]);
	}
	free(names);
	close(dfd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--apply") == 0) {
		PGconn *pg = PQconnectdb(argv[3]);
		int rc = PQstatus(pg) == CONNECTION_OK ? apply_dir(pg, argv[2]) : -1;
		if (PQstatus(pg) != CONNECTION_OK)
			fprintf(stderr, "floor: connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return rc == 0 ? 0 : 1;
	}
	if (argc >= 3 && strcmp(argv[1], "--read") == 0) {
		if (read_dir(argv[2]) < 0)
			return 1;
		argc -= 2;
		argv += 2;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: floor [--read DIR] URL [SQL] | floor --apply DIR URL\n");
		return 1;
	}
	const char *sql = argc == 3 ? argv[2] : DEFAULT_SQL;

	PGconn *pg = PQconnectdb(argv[1]);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "floor: connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return 1;
	}

	PGresult *res = PQexec(pg, sql);
	int status = PQresultStatus(res);
	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
		fprintf(stderr, "floor: query: %s", PQerrorMessage(pg));
		PQclear(res);
		PQfinish(pg);
		return 1;
	}

	/* Touch every value so the rows are really consumed, as a tool would. */
	size_t bytes = 0;
	for (int r = 0; r < PQntuples(res); r++)
		for (int f = 0; f < PQnfields(res); f++)
			bytes += strlen(PQgetvalue(res, r, f));

	PQclear(res);
	PQfinish(pg);
	return bytes == (size_t)-1;
}
