/*
 * floor.c - the least any PostgreSQL migration client can spend on a start.
 *
 *   floor URL [SQL]
 *
 * Connects with libpq to URL (the same URL, hence the same TCP + SCRAM
 * authentication, that the benchmarked tools use), runs one query (by
 * default the read of schemagate's history table, the one query a no-op
 * `up` cannot avoid), reads every row, and exits. A migration tool's no-op
 * start is compared against this: whatever it spends beyond it is the
 * tool's own overhead.
 *
 * Exit status: 0 on success, 1 on any error (message on stderr).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_SQL "SELECT version, checksum FROM schemagate_migrations"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: floor URL [SQL]\n");
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
