/* test_projection_lease — leases of projector partitions (projector_partition = auto)
 * on SQLite and on MongoDB (a private FerretDB): claim the first free partition,
 * standby when all are held, renew, take over an expired lease, lose it to a taker,
 * release, and keep the leases through a rebuild in place; then projector_lease.c's
 * state machine on SQLite (claim, standby, renewal, takeover by a standby, a lost
 * lease, a renewal that fails until expiry, one that waits for a locked file past
 * expiry). Times are chosen by the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "partition.h"
#include "readmodel_indexes.h"
#include "../../actors/projector/projection.h"
#include "../../actors/projector/projector_lease.h"
#include "test_projection_helpers.h"
#include "test_projection_ferretdb.h"

static t_ferret_t s_ferret;
static mongoc_client_t *s_client;
static config_t *s_config;

static int
s_group_setup (void **state)
{
    (void) state;
    return t_ferret_group_up (&s_ferret, &s_client, &s_config);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    t_ferret_group_down (&s_ferret, &s_client, &s_config);
    return 0;
}

/* A projection of partition "index" ("auto" or a number) of count at location. */
static projection_t *
s_open (const readmodel_store_ops_t *ops, const char *location, const char *index, int count)
{
    char n [8];
    snprintf (n, sizeof n, "%d", count);
    setenv ("DOSSIER_PROJECTOR_PARTITIONS", n, 1);
    setenv ("DOSSIER_PROJECTOR_PARTITION", index, 1);
    projection_t *p = projection_new_with (ops, location, ops == &readmodel_mongo_ops ? s_config : NULL);
    unsetenv ("DOSSIER_PROJECTOR_PARTITIONS");
    unsetenv ("DOSSIER_PROJECTOR_PARTITION");
    assert_non_null (p);
    assert_true (projection_loaded (p));
    return p;
}

/* The same story on either backend (ttl 1000 ms). */
static void
s_claims (const readmodel_store_ops_t *ops, const char *location)
{
    projection_t *a = s_open (ops, location, "auto", 2);
    projection_t *b = s_open (ops, location, "auto", 2);
    projection_t *c = s_open (ops, location, "auto", 2);
    int i = -1, ignored, count;
    projection_partition (a, &i, &count);
    assert_int_equal (i, PARTITION_AUTO);
    assert_int_equal (count, 2);

    /* first free partition, in order; a third finds both held */
    assert_int_equal (projection_lease_claim (a, "a", 10000, 1000, &i), 0);
    assert_int_equal (i, 0);
    assert_int_equal (projection_lease_claim (b, "b", 10000, 1000, &i), 0);
    assert_int_equal (i, 1);
    i = -1;
    assert_int_equal (projection_lease_claim (c, "c", 10000, 1000, &i), 1);
    assert_int_equal (i, -1);
    /* a claim by the holder finds its own */
    assert_int_equal (projection_lease_claim (a, "a", 10100, 1000, &i), 0);
    assert_int_equal (i, 0);

    /* a renews; b does not, and its lease expires: c takes partition 1 over */
    assert_int_equal (projection_lease_renew (a, 0, "a", 10500, 1000), 0);
    assert_int_equal (projection_lease_claim (c, "c", 11000, 1000, &i), 1);   /* b's: at 11000, not before */
    assert_int_equal (projection_lease_claim (c, "c", 11001, 1000, &i), 0);
    assert_int_equal (i, 1);
    /* b finds it taken; releasing what is not ours changes nothing */
    assert_int_equal (projection_lease_renew (b, 1, "b", 11002, 1000), 1);
    assert_int_equal (projection_lease_release (b, 1, "b"), 0);
    assert_int_equal (projection_lease_claim (b, "b", 11003, 1000, &i), 1);
    assert_int_equal (projection_lease_renew (c, 1, "c", 11003, 1000), 0);

    /* a stops cleanly: its partition is free at once */
    assert_int_equal (projection_lease_release (a, 0, "a"), 0);
    assert_int_equal (projection_lease_claim (b, "b", 11004, 1000, &i), 0);
    assert_int_equal (i, 0);
    assert_int_equal (projection_lease_renew (a, 0, "a", 11005, 1000), 1);

    /* another partition count has leases of its own */
    projection_t *one = s_open (ops, location, "auto", 1);
    assert_int_equal (projection_lease_claim (one, "e", 11005, 1000, &i), 0);
    assert_int_equal (i, 0);

    /* a rebuild in place (every read model dropped) keeps the leases */
    assert_int_equal (projection_set_partition (b, 0), 0);
    projection_set_all_partitions (b, 1);
    assert_int_equal (projection_begin (b), 0);
    assert_int_equal (projection_clear (b), 0);
    assert_int_equal (projection_commit (b), 0);
    projection_set_all_partitions (b, 0);
    assert_int_equal (projection_lease_renew (b, 0, "b", 11006, 1000), 0);
    assert_int_equal (projection_lease_renew (c, 1, "c", 11006, 1000), 0);
    assert_int_equal (projection_lease_claim (a, "a", 11007, 1000, &i), 1);
    /* and the read models with leases are still read models (a rebuild may go there) */
    assert_int_equal (ops->is_readmodel (location, s_config), 1);

    projection_partition (b, &i, &ignored);
    assert_int_equal (i, 0);
    projection_destroy (&one);
    projection_destroy (&c);
    projection_destroy (&b);
    projection_destroy (&a);
}

static void
test_claims_sqlite (void **state)
{
    (void) state;
    t_tmp_t t;
    t_tmp_new (&t, "readmodels.db");
    s_claims (&readmodel_sqlite_ops, t.path);
    t_tmp_destroy (&t);
}

static void
test_claims_mongo (void **state)
{
    (void) state;
    s_claims (&readmodel_mongo_ops, "t_lease");
    /* one document per (partition, count), in the collection a rebuild does not drop */
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, "t_lease", RM_COLL_LEASES);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t error;
    assert_int_equal (mongoc_collection_count_documents (coll, &filter, NULL, NULL, NULL, &error), 3);
    bson_destroy (&filter);
    mongoc_collection_destroy (coll);
    mongoc_database_t *d = mongoc_client_get_database (s_client, "t_lease");
    assert_true (mongoc_database_drop (d, &error));
    mongoc_database_destroy (d);
}

/* projector_lease.c over SQLite: three projectors, two partitions. */
static void
test_state_machine (void **state)
{
    (void) state;
    t_tmp_t t;
    t_tmp_new (&t, "readmodels.db");
    projection_t *p [3];
    projector_lease_t *l [3];
    for (int k = 0; k < 3; k++) {
        p [k] = s_open (&readmodel_sqlite_ops, t.path, "auto", 2);
        l [k] = projector_lease_new (3000);
        assert_non_null (l [k]);
        assert_string_equal (projector_lease_state (l [k]), "standby");
    }
    assert_string_not_equal (projector_lease_owner (l [0]), projector_lease_owner (l [1]));
    t_log_t log = { 0 };
    t_kyc_case (&log);                  /* T_KYC: partition 1 of 2 */
    /* nothing is applied before a partition is claimed */
    assert_int_equal (projection_apply (p [1], log.events, log.count), -1);

    assert_int_equal (projector_lease_tick (l [0], p [0], 100000), PROJECTOR_LEASE_CLAIMED);
    assert_int_equal (projector_lease_index (l [0]), 0);
    assert_int_equal (projector_lease_tick (l [1], p [1], 100000), PROJECTOR_LEASE_CLAIMED);
    assert_int_equal (projector_lease_index (l [1]), 1);
    int index, count;
    projection_partition (p [1], &index, &count);
    assert_int_equal (index, 1);
    assert_int_equal (projection_apply (p [1], log.events, log.count), 0);
    assert_int_equal (projection_checkpoint (p [1]), (int64_t) log.count);

    /* the third waits as a standby, trying every TTL/3 */
    assert_int_equal (projector_lease_tick (l [2], p [2], 100000), PROJECTOR_LEASE_NOTHING);
    assert_string_equal (projector_lease_state (l [2]), "standby");
    assert_int_equal (projector_lease_index (l [2]), -1);
    assert_int_equal (projector_lease_due (l [2]), 101000);
    /* nothing is due before then */
    assert_int_equal (projector_lease_tick (l [2], p [2], 100999), PROJECTOR_LEASE_NOTHING);

    /* holder 0 renews every TTL/3; holder 1 dies at 100000 (its lease ends at 103000) */
    for (int64_t now = 101000; now <= 103000; now += 1000) {
        assert_int_equal (projector_lease_tick (l [0], p [0], now), PROJECTOR_LEASE_NOTHING);
        assert_string_equal (projector_lease_state (l [0]), "held");
        assert_int_equal (projector_lease_expires (l [0]), now + 3000);
        assert_int_equal (projector_lease_tick (l [2], p [2], now), PROJECTOR_LEASE_NOTHING);
    }
    /* the standby takes partition 1 once the lease expired, from its checkpoint */
    assert_int_equal (projector_lease_tick (l [2], p [2], 104000), PROJECTOR_LEASE_CLAIMED);
    assert_int_equal (projector_lease_index (l [2]), 1);
    projection_partition (p [2], &index, &count);
    assert_int_equal (index, 1);
    assert_int_equal (projection_checkpoint (p [2]), (int64_t) log.count);
    /* the old holder, back from a pause, finds it taken and says why */
    assert_null (projector_lease_lost_reason (l [1]));
    assert_int_equal (projector_lease_tick (l [1], p [1], 104000), PROJECTOR_LEASE_LOST);
    assert_string_equal (projector_lease_state (l [1]), "lost");
    assert_int_equal (projector_lease_index (l [1]), -1);
    assert_non_null (strstr (projector_lease_lost_reason (l [1]), "another projector"));
    /* a lost lease stays lost (the projector exits; a restart claims again) */
    assert_int_equal (projector_lease_tick (l [1], p [1], 200000), PROJECTOR_LEASE_NOTHING);

    /* a clean stop releases: a new projector gets partition 1 at once, long before
     * the lease would have expired (107000) */
    projector_lease_release (l [2], p [2]);
    assert_string_equal (projector_lease_state (l [2]), "standby");
    projection_t *late = s_open (&readmodel_sqlite_ops, t.path, "auto", 2);
    projector_lease_t *ll = projector_lease_new (3000);
    assert_int_equal (projector_lease_tick (ll, late, 104001), PROJECTOR_LEASE_CLAIMED);
    assert_int_equal (projector_lease_index (ll), 1);

    /* another writer keeps the file locked (as a rebuild in place does) past the
     * lease's expiry (106000): nobody can take it meanwhile, so it is not lost, and
     * the renewal after the lock goes succeeds (each attempt waits 10 s for the lock) */
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (t.path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (projector_lease_tick (l [0], p [0], 106500), PROJECTOR_LEASE_NOTHING);
    assert_string_equal (projector_lease_state (l [0]), "held");
    assert_int_equal (projector_lease_due (l [0]), 107500);
    assert_int_equal (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (projector_lease_tick (l [0], p [0], 107500), PROJECTOR_LEASE_NOTHING);
    assert_int_equal (projector_lease_expires (l [0]), 110500);

    /* the database cannot be written: holder 0 retries every second, and gives up
     * when its lease expires (last renewed at 107500: until 110500) */
    assert_int_equal (sqlite3_exec (db, "DROP TABLE projector_leases", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    assert_int_equal (projector_lease_tick (l [0], p [0], 108500), PROJECTOR_LEASE_NOTHING);
    assert_string_equal (projector_lease_state (l [0]), "held");
    assert_int_equal (projector_lease_due (l [0]), 109500);
    assert_int_equal (projector_lease_tick (l [0], p [0], 109500), PROJECTOR_LEASE_NOTHING);
    assert_int_equal (projector_lease_tick (l [0], p [0], 110500), PROJECTOR_LEASE_LOST);
    assert_non_null (strstr (projector_lease_lost_reason (l [0]), "could not be reached"));

    projector_lease_destroy (&ll);
    projection_destroy (&late);
    for (int k = 0; k < 3; k++) {
        projector_lease_destroy (&l [k]);
        projection_destroy (&p [k]);
    }
    t_tmp_destroy (&t);
}

int
main (void)
{
    log_init ("test", getenv ("T_LOG") ? getenv ("T_LOG") : "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_claims_sqlite),
        cmocka_unit_test (test_claims_mongo),
        cmocka_unit_test (test_state_machine),
    };
    int rc = cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
    zsys_shutdown ();
    return rc;
}
