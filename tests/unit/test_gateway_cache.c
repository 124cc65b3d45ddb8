/* test_gateway_cache — the gateway's response cache (actors/gateway/response_cache.c):
 * hits and misses, a generation change empties it, puts for another generation are
 * refused, the byte budget evicts least recently used first, and a body still being
 * sent (a reference held, as h2o does) outlives its eviction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../actors/gateway/gw_h2o.h"
#include "../../actors/gateway/response_cache.h"

static void
s_put (gw_cache_t *cache, uint64_t generation, const char *key, const char *body)
{
    assert_int_equal (gw_cache_put (cache, generation, key, strlen (key), body, strlen (body), NULL), 0);
}

static void
s_expect_hit (gw_cache_t *cache, const char *key, const char *body)
{
    gw_cache_body_t hit;
    if (!gw_cache_get (cache, key, strlen (key), &hit))
        fail_msg ("%s: miss, expected %s", key, body);
    assert_int_equal (hit.size, strlen (body));
    assert_memory_equal (hit.body, body, hit.size);
}

static void
s_expect_miss (gw_cache_t *cache, const char *key)
{
    gw_cache_body_t hit;
    if (gw_cache_get (cache, key, strlen (key), &hit))
        fail_msg ("%s: hit, expected a miss", key);
}

static void
test_hits_and_generations (void **state)
{
    (void) state;
    gw_cache_t *cache = gw_cache_new (1 << 20);
    assert_non_null (cache);
    s_expect_miss (cache, "/v1/cases/a");
    /* nothing is stored before a generation is declared */
    assert_int_equal (gw_cache_put (cache, 1, "/a", 2, "x", 1, NULL), -1);
    gw_cache_validate (cache, 1);
    s_put (cache, 1, "/v1/cases/a", "{\"a\":1}");
    s_put (cache, 1, "/v1/cases/b", "{\"b\":1}");
    s_put (cache, 1, "/v1/cases?limit=1", "");
    s_expect_hit (cache, "/v1/cases/a", "{\"a\":1}");
    s_expect_hit (cache, "/v1/cases/b", "{\"b\":1}");
    s_expect_hit (cache, "/v1/cases?limit=1", "");
    s_expect_miss (cache, "/v1/cases/c");
    s_expect_miss (cache, "/v1/cases/");         /* a prefix is another key */
    /* a put replaces */
    s_put (cache, 1, "/v1/cases/a", "{\"a\":2}");
    s_expect_hit (cache, "/v1/cases/a", "{\"a\":2}");
    /* the same generation again keeps everything */
    gw_cache_validate (cache, 1);
    s_expect_hit (cache, "/v1/cases/b", "{\"b\":1}");
    /* a body from another generation is refused */
    assert_int_equal (gw_cache_put (cache, 2, "/v1/cases/z", 11, "{}", 2, NULL), -1);
    /* a new generation empties it */
    gw_cache_validate (cache, 2);
    s_expect_miss (cache, "/v1/cases/a");
    s_expect_miss (cache, "/v1/cases/b");
    /* generation 0 (unknown) empties it and refuses puts */
    s_put (cache, 2, "/k", "v");
    gw_cache_validate (cache, 0);
    s_expect_miss (cache, "/k");
    assert_int_equal (gw_cache_put (cache, 0, "/k", 2, "v", 1, NULL), -1);

    gw_cache_stats_t stats;
    gw_cache_stats (cache, &stats);
    assert_int_equal (stats.entries, 0);
    assert_int_equal (stats.bytes, 0);
    assert_true (stats.hits >= 5 && stats.misses >= 5);
    gw_cache_destroy (&cache);
    assert_null (cache);
    gw_cache_destroy (&cache);
}

static void
test_budget_and_lru (void **state)
{
    (void) state;
    /* 16 KiB: a body may be at most 1 KiB */
    gw_cache_t *cache = gw_cache_new (16 * 1024);
    gw_cache_validate (cache, 7);
    char big [2048];
    memset (big, 'x', sizeof big);
    assert_int_equal (gw_cache_put (cache, 7, "/big", 4, big, sizeof big, NULL), -1);
    char body [900];
    memset (body, 'b', sizeof body);
    char key [32];
    for (int i = 0; i < 40; i++) {
        snprintf (key, sizeof key, "/v1/cases/%d", i);
        assert_int_equal (gw_cache_put (cache, 7, key, strlen (key), body, sizeof body, NULL), 0);
        /* keep /v1/cases/0 warm: it must survive the evictions */
        gw_cache_body_t hit;
        assert_true (gw_cache_get (cache, "/v1/cases/0", 11, &hit));
    }
    gw_cache_stats_t stats;
    gw_cache_stats (cache, &stats);
    assert_true (stats.bytes <= 16 * 1024);
    assert_true (stats.entries >= 10 && stats.entries < 40);
    gw_cache_body_t hit;
    assert_true (gw_cache_get (cache, "/v1/cases/0", 11, &hit));
    assert_true (gw_cache_get (cache, "/v1/cases/39", 12, &hit));
    assert_false (gw_cache_get (cache, "/v1/cases/1", 11, &hit));
    gw_cache_destroy (&cache);
}

static void
test_many_keys_grow_the_table (void **state)
{
    (void) state;
    gw_cache_t *cache = gw_cache_new (64 * 1024 * 1024);
    gw_cache_validate (cache, 3);
    char key [32], value [32];
    for (int i = 0; i < 5000; i++) {
        snprintf (key, sizeof key, "/v1/persons/%d", i);
        snprintf (value, sizeof value, "{\"n\":%d}", i);
        s_put (cache, 3, key, value);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf (key, sizeof key, "/v1/persons/%d", i);
        snprintf (value, sizeof value, "{\"n\":%d}", i);
        s_expect_hit (cache, key, value);
    }
    gw_cache_destroy (&cache);
}

/* A response holds a reference (h2o_mem_link_shared) while h2o writes the body; an
 * eviction or a new generation meanwhile must not free it. */
static void
test_body_outlives_eviction (void **state)
{
    (void) state;
    gw_cache_t *cache = gw_cache_new (1 << 20);
    gw_cache_validate (cache, 1);
    gw_cache_body_t entry;
    assert_int_equal (gw_cache_put (cache, 1, "/v1/cases/a", 11, "{\"a\":1}", 7, &entry), 0);
    h2o_mem_pool_t pool;
    h2o_mem_init_pool (&pool);
    h2o_mem_link_shared (&pool, (void *) entry.shared);
    gw_cache_validate (cache, 2);                   /* the cache lets go of it */
    assert_memory_equal (entry.body, "{\"a\":1}", 7);
    h2o_mem_clear_pool (&pool);                     /* the request is done: freed now */
    gw_cache_destroy (&cache);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_hits_and_generations),
        cmocka_unit_test (test_budget_and_lru),
        cmocka_unit_test (test_many_keys_grow_the_table),
        cmocka_unit_test (test_body_outlives_eviction),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
