/* openapi — the REST API's OpenAPI 3 description, schemas/openapi.json, built into
 * the gateway binary so that GET /openapi.json always describes the code that
 * answers it, with no file to install or find at run time. */
#ifndef DOSSIER_GW_OPENAPI_H
#define DOSSIER_GW_OPENAPI_H

#include <stddef.h>

/* The bytes of schemas/openapi.json as it was at build time (static, not
 * NUL-terminated in the count). */
const char *gw_openapi_json (size_t *size);

#endif
