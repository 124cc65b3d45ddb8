/* country — ISO 3166-1 alpha-2 country codes: the 249 officially assigned ones.
 * Every country and nationality field of a client record is checked against it. */
#ifndef DOSSIER_COUNTRY_H
#define DOSSIER_COUNTRY_H

#include <stddef.h>

#define COUNTRY_CODE_COUNT 249

/* 1 if code is an officially assigned ISO 3166-1 alpha-2 code in upper case
 * ("FR", "GB"), else 0. NULL, lower case and reserved codes ("UK", "EU") are not valid. */
int country_is_valid (const char *code);

/* The index-th code of the list in alphabetical order, or NULL past the end
 * (for tests and for tools that list the codes). */
const char *country_code_at (size_t index);

#endif
