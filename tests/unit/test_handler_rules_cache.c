/* test_handler_rules_cache — the cache of configuration-service answers: fresh for the
 * TTL, then stale (served on error) for max_stale, then a miss that still remembers its
 * ETag for revalidation; a 304 makes an entry fresh again; a full cache drops the entry
 * confirmed longest ago. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../actors/handler/rules_cache.h"

static rules_t *
s_rules (const char *version)
{
    return rules_new_empty (version);
}

static void
test_ttl_stale_and_miss (void **state)
{
    (void) state;
    rules_cache_t *cache = rules_cache_new (100, 1000, 16);
    assert_non_null (cache);
    const rules_t *got = NULL;
    assert_int_equal (rules_cache_get (cache, "k", 0, &got), RULES_CACHE_MISS);
    assert_null (got);
    assert_string_equal (rules_cache_etag (cache, "k"), "");
    rules_t *r = s_rules ("v1");
    assert_int_equal (rules_cache_put (cache, "k", &r, "\"e1\"", 1000), 0);
    assert_null (r);
    assert_int_equal (rules_cache_get (cache, "k", 1099, &got), RULES_CACHE_FRESH);
    assert_string_equal (rules_version (got), "v1");
    assert_int_equal (rules_cache_get (cache, "k", 1100, &got), RULES_CACHE_STALE);
    assert_string_equal (rules_version (got), "v1");
    assert_int_equal (rules_cache_get (cache, "k", 2100, &got), RULES_CACHE_STALE);
    assert_int_equal (rules_cache_get (cache, "k", 2101, &got), RULES_CACHE_MISS);
    assert_null (got);
    /* too old to serve, but its ETag still revalidates it */
    assert_string_equal (rules_cache_etag (cache, "k"), "\"e1\"");
    assert_int_equal (rules_cache_touch (cache, "k", 3000), 0);
    assert_int_equal (rules_cache_get (cache, "k", 3050, &got), RULES_CACHE_FRESH);
    assert_int_equal (rules_cache_touch (cache, "other", 3000), -1);
    /* a new answer replaces the old, ETag included */
    r = s_rules ("v2");
    assert_int_equal (rules_cache_put (cache, "k", &r, NULL, 4000), 0);
    assert_int_equal (rules_cache_get (cache, "k", 4000, &got), RULES_CACHE_FRESH);
    assert_string_equal (rules_version (got), "v2");
    assert_string_equal (rules_cache_etag (cache, "k"), "");
    assert_int_equal (rules_cache_size (cache), 1);
    rules_cache_destroy (&cache);
    assert_null (cache);
}

static void
test_eviction (void **state)
{
    (void) state;
    rules_cache_t *cache = rules_cache_new (1000, 0, 2);
    rules_t *r = s_rules ("a");
    rules_cache_put (cache, "a", &r, NULL, 10);
    r = s_rules ("b");
    rules_cache_put (cache, "b", &r, NULL, 5);
    r = s_rules ("c");
    rules_cache_put (cache, "c", &r, NULL, 20);     /* b was confirmed longest ago */
    const rules_t *got;
    assert_int_equal (rules_cache_size (cache), 2);
    assert_int_equal (rules_cache_get (cache, "b", 20, &got), RULES_CACHE_MISS);
    assert_int_equal (rules_cache_get (cache, "a", 20, &got), RULES_CACHE_FRESH);
    assert_int_equal (rules_cache_get (cache, "c", 20, &got), RULES_CACHE_FRESH);
    /* an ETag too long to send back is dropped */
    char etag [RULES_CACHE_ETAG_MAX + 10];
    memset (etag, 'x', sizeof etag - 1);
    etag [sizeof etag - 1] = 0;
    r = s_rules ("d");
    rules_cache_put (cache, "a", &r, etag, 30);
    assert_string_equal (rules_cache_etag (cache, "a"), "");
    rules_cache_destroy (&cache);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ttl_stale_and_miss),
        cmocka_unit_test (test_eviction),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
