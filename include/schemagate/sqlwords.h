/*
 * sqlwords.h - the leading keywords of one SQL statement, for the few
 * decisions that depend on what a statement is (does it commit implicitly,
 * can it run in a transaction, which index does it create).
 */
#ifndef SCHEMAGATE_SQLWORDS_H
#define SCHEMAGATE_SQLWORDS_H

#include <stdbool.h>
#include <stddef.h>

#define SG_SQL_WORD_MAX 32

/* Up to max leading words of sql, upper-cased, skipping whitespace and
 * comments (-- ..., # ..., / * ... * /); a word is a run of letters, digits,
 * '_' and '$', or one quoted identifier ("x", `x`) with its quotes removed.
 * Stops at the first other character. Returns the number of words. */
size_t sg_sql_words(const char *sql, char words[][SG_SQL_WORD_MAX], size_t max);

/* Is word (upper-cased) one of the NULL-terminated list? */
bool sg_sql_word_in(const char *word, const char *const *list);

#endif
