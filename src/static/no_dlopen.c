/*
 * no_dlopen.c - the static build refuses to load shared objects.
 *
 * A fully static binary cannot safely dlopen() a shared object: the object
 * pulls in the shared libc (and, for a MariaDB client plugin, a second
 * libmariadb) next to the copies linked into the binary, and the first call
 * across that boundary crashes. That is how the static binary used to die
 * with SIGSEGV when a MariaDB server asked for client_ed25519 and Debian's
 * plugin directory was on the machine.
 *
 * The plugins schemagate needs are compiled in (container/build-static.sh
 * builds MariaDB Connector/C with caching_sha2_password, sha256_password
 * and client_ed25519 static). For anything else - another authentication
 * plugin, an OpenSSL engine or provider module - these definitions, linked
 * ahead of libc.a, make the load fail with a clear reason, e.g.
 *   "Plugin dialog could not be loaded: dynamic loading is not available
 *    in the static schemagate build"
 *
 * Compiled ONLY when SG_STATIC is on, as an object of the executable, so
 * it wins over libc.a for every archive linked after it.
 */
#include <dlfcn.h>
#include <stddef.h>

static const char no_dlopen_reason[] = "dynamic loading is not available in the static schemagate build";

/* dlerror() reports a failure once, then NULL, as POSIX asks. */
static _Thread_local int no_dlopen_failed;

void *dlopen(const char *file, int mode)
{
	(void)file;
	(void)mode;
	no_dlopen_failed = 1;
	return NULL;
}

char *dlerror(void)
{
	if (!no_dlopen_failed)
		return NULL;
	no_dlopen_failed = 0;
	return (char *)no_dlopen_reason;
}

/* No handle can exist, so these only ever see invalid ones. */
void *dlsym(void *handle, const char *symbol)
{
	(void)handle;
	(void)symbol;
	no_dlopen_failed = 1;
	return NULL;
}

int dlclose(void *handle)
{
	(void)handle;
	no_dlopen_failed = 1;
	return -1;
}
