/*
 * driver.c - the table of drivers, by engine.
 */
#include "schemagate/driver.h"

const struct sg_driver *sg_driver_for(enum sg_engine engine)
{
	switch (engine) {
	case SG_ENGINE_POSTGRES: return &sg_driver_postgres;
	case SG_ENGINE_MYSQL: return &sg_driver_mysql;
	case SG_ENGINE_SQLITE: return &sg_driver_sqlite;
	case SG_ENGINE_NONE: break;
	}
	return NULL;
}
