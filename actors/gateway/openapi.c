/* openapi — embeds schemas/openapi.json with the assembler's .incbin: no generated
 * source, no second copy to drift. The path is relative to the repository root,
 * where make runs the compiler; the Makefile makes this object depend on the JSON
 * file, and tests/unit/test_gateway_http.c (test_openapi_served) compares the two. */
#include "openapi.h"

__asm__ (
    "    .section .rodata\n"
    "    .globl gw_openapi_blob\n"
    "    .hidden gw_openapi_blob\n"
    "    .globl gw_openapi_blob_size\n"
    "    .hidden gw_openapi_blob_size\n"
    "    .balign 16\n"
    "gw_openapi_blob:\n"
    "    .incbin \"schemas/openapi.json\"\n"
    "1:\n"
    "    .byte 0\n"
    "    .balign 8\n"
    "gw_openapi_blob_size:\n"
    "    .quad 1b - gw_openapi_blob\n"
    "    .previous\n"
);

extern const char gw_openapi_blob [];
extern const unsigned long long gw_openapi_blob_size;

const char *
gw_openapi_json (size_t *size)
{
    *size = (size_t) gw_openapi_blob_size;
    return gw_openapi_blob;
}
