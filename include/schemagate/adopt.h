/*
 * adopt.h - adopting another tool's history table (SPEC section 4).
 *
 * A database migrated by golang-migrate, dbmate, pop/popx or goose already
 * says which versions ran. When schemagate's history table does not exist
 * yet (or exists but was never used: no row, no audit event), those
 * versions are recorded as `baselined`, with the current file's checksum,
 * in one transaction under the lock and audited. Read-only commands see
 * the same rows without anything being written. The foreign table is
 * only ever read.
 *
 *   golang-migrate  schema_migrations(version bigint, dirty bool): every
 *                   directory version <= version; dirty refuses (exit 4)
 *   dbmate          schema_migrations(version varchar): exactly those
 *   pop/popx        schema_migration(version): exactly those, and popx's
 *                   rule for versions longer than 14 digits
 *   goose           goose_db_version(id, version_id, is_applied): the
 *                   latest row of each version decides; version 0 is
 *                   goose's own marker
 *
 * A foreign version the directory lacks is recorded too (no name, no
 * checksum), so the usual "database ahead" rule applies to it.
 */
#ifndef SCHEMAGATE_ADOPT_H
#define SCHEMAGATE_ADOPT_H

#include "schemagate/config.h"
#include "schemagate/driver.h"
#include "schemagate/history.h"
#include "schemagate/migration.h"

/*
 * Read-only. When h (just read) is a history that was never used, add
 * what adoption would record to it, as `baselined` rows, and set
 * h->nadopted / h->adopted_from. Errors: two candidate tables under
 * --adopt=auto, or a table of the wrong shape for --adopt=TOOL (exit 2);
 * a dirty golang-migrate version (exit 4).
 */
int sg_adopt_preview(struct sg_conn *c, enum sg_adopt_mode mode, const char *table,
		     const struct sg_migration_set *set, struct sg_history *h, struct sg_error *err);

/*
 * Under the lock, before anything else touches the history table: when
 * it was never used, create it and record what adoption finds, in one
 * transaction, with one `adopt` audit event per version; log it once.
 * Does nothing when there is nothing to adopt.
 */
int sg_adopt_record(struct sg_conn *c, enum sg_adopt_mode mode, const char *table,
		    const struct sg_migration_set *set, struct sg_error *err);

#endif
