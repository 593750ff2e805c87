/*
 * floor.c - the least any PostgreSQL migration client can spend on a start.
 *
 *   floor [--read DIR] URL [SQL]
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

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--read") == 0) {
		if (read_dir(argv[2]) < 0)
			return 1;
		argc -= 2;
		argv += 2;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: floor [--read DIR] URL [SQL]\n");
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
