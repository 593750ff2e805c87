/*
 * sqlwords.c - see sqlwords.h.
 */
#include "schemagate/sqlwords.h"

#include <ctype.h>
#include <string.h>

static const char *skip_blank(const char *p)
{
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if ((p[0] == '-' && p[1] == '-') || p[0] == '#') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *end = strstr(p + 2, "*/");
			p = end ? end + 2 : p + strlen(p);
		} else {
			return p;
		}
	}
}

static bool word_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

size_t sg_sql_words(const char *sql, char words[][SG_SQL_WORD_MAX], size_t max)
{
	size_t n = 0;
	const char *p = sql;
	while (n < max) {
		p = skip_blank(p);
		size_t len = 0;
		if (*p == '"' || *p == '`') {
			char q = *p++;
			while (*p && *p != q) {
				if (len + 1 < SG_SQL_WORD_MAX)
					words[n][len++] = *p;
				p++;
			}
			if (*p == q)
				p++;
		} else if (word_char((unsigned char)*p)) {
			while (word_char((unsigned char)*p)) {
				if (len + 1 < SG_SQL_WORD_MAX)
					words[n][len++] = (char)toupper((unsigned char)*p);
				p++;
			}
		} else {
			break;
		}
		words[n][len] = '\0';
		n++;
	}
	return n;
}

bool sg_sql_word_in(const char *word, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(word, *list) == 0)
			return true;
	return false;
}
