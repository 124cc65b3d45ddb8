/* test_envelope — round trips and hostile input for the envelope, event-batch and
 * store-protocol codecs (common/). Every decoder must refuse, never crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "command_id.h"
#include "envelope.h"
#include "event.h"
#include "ids.h"
#include "store_proto.h"

static void
test_envelope_round_trip (void **state)
{
    (void) state;
    envelope_t env;
    envelope_init (&env, "cmd.create_case", "rec:abc");
    envelope_set (env.correlation_id, sizeof env.correlation_id, "corr-1");
    envelope_set (env.causation_id, sizeof env.causation_id, "cause-1");
    envelope_set (env.key, sizeof env.key, "6f1c3e52-8a07-4b1d-9e55-21c470d30b9a");
    const char body [] = "{\"client_id\":\"C1\"}";
    env.body = body;
    env.body_size = sizeof body - 1;
    zframe_t *frame = envelope_encode (&env);
    assert_non_null (frame);

    envelope_t out;
    assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &out), 0);
    assert_int_equal (out.version, ENVELOPE_VERSION);
    assert_string_equal (out.type, "cmd.create_case");
    assert_string_equal (out.id, "rec:abc");
    assert_string_equal (out.correlation_id, "corr-1");
    assert_string_equal (out.causation_id, "cause-1");
    assert_string_equal (out.key, env.key);
    assert_int_equal (out.timestamp_us, env.timestamp_us);
    assert_int_equal (out.body_size, env.body_size);
    assert_memory_equal (out.body, body, env.body_size);
    /* zero-copy: the body points into the frame */
    assert_true (out.body >= (const char *) zframe_data (frame)
              && out.body < (const char *) zframe_data (frame) + zframe_size (frame));
    assert_string_equal (out.traceparent, "");
    size_t plain_size = zframe_size (frame);
    zframe_destroy (&frame);

    /* The trace context travels when set, and costs nothing when not. */
    envelope_set (env.traceparent, sizeof env.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    frame = envelope_encode (&env);
    assert_non_null (frame);
    assert_true (zframe_size (frame) > plain_size);
    assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &out), 0);
    assert_string_equal (out.traceparent, env.traceparent);
    assert_string_equal (out.key, env.key);
    assert_memory_equal (out.body, body, env.body_size);
    zframe_destroy (&frame);
}

static void
test_envelope_empty_body (void **state)
{
    (void) state;
    envelope_t env;
    envelope_init (&env, "ctl.ping", "p1");
    zframe_t *frame = envelope_encode (&env);
    envelope_t out;
    assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &out), 0);
    assert_int_equal (out.body_size, 0);
    zframe_destroy (&frame);
}

static void
test_envelope_rejects_garbage (void **state)
{
    (void) state;
    envelope_t out;
    assert_int_equal (envelope_decode (NULL, 0, &out), -2);
    assert_int_equal (envelope_decode ("", 0, &out), -2);
    assert_int_equal (envelope_decode ("\xc1", 1, &out), -2);          /* never-used byte */
    assert_int_equal (envelope_decode ("\x93\x01\x02\x03", 4, &out), -2); /* array, not map */
    /* a map without type */
    assert_int_equal (envelope_decode ("\x81\xa1v\x01", 4, &out), -2);
    /* wrong version */
    assert_int_equal (envelope_decode ("\x82\xa1v\x02\xa1t\xa1x", 8, &out), -2);
    /* valid minimal envelope */
    assert_int_equal (envelope_decode ("\x82\xa1v\x01\xa1t\xa1x", 8, &out), 0);
    assert_string_equal (out.type, "x");
    /* body of the wrong type */
    assert_int_equal (envelope_decode ("\x83\xa1v\x01\xa1t\xa1x\xa4" "body\x05", 14, &out), -2);
    /* trailing bytes after the map */
    assert_int_equal (envelope_decode ("\x82\xa1v\x01\xa1t\xa1xZ", 9, &out), -2);
}

static void
test_envelope_rejects_oversized_strings (void **state)
{
    (void) state;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    msgpack_pack_kv_int (&pk, "v", 1);
    msgpack_pack_kv_str (&pk, "t", "cmd.x");
    char big [ENVELOPE_ID_MAX + 10];
    memset (big, 'a', sizeof big - 1);
    big [sizeof big - 1] = 0;
    msgpack_pack_kv_str (&pk, "id", big);
    envelope_t out;
    assert_int_equal (envelope_decode (buf.data, buf.size, &out), -2);
    msgpack_sbuffer_destroy (&buf);
}

/* Every prefix and every single-byte corruption of a valid envelope decodes or fails
 * cleanly: a cheap deterministic fuzz that runs under the sanitizers. */
static void
test_envelope_truncation_and_corruption (void **state)
{
    (void) state;
    envelope_t env;
    envelope_init (&env, "cmd.decide_case", "id-1");
    envelope_set (env.key, sizeof env.key, "k");
    env.body = "{\"decision\":\"APPROVE\"}";
    env.body_size = strlen (env.body);
    zframe_t *frame = envelope_encode (&env);
    size_t size = zframe_size (frame);
    unsigned char *copy = malloc (size);
    envelope_t out;
    for (size_t n = 0; n < size; n++) {
        memcpy (copy, zframe_data (frame), n);
        assert_int_equal (envelope_decode (copy, n, &out), -2);
    }
    for (size_t i = 0; i < size; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy (copy, zframe_data (frame), size);
            copy [i] ^= (unsigned char) (1 << bit);
            int rc = envelope_decode (copy, size, &out);
            assert_true (rc == 0 || rc == -2);
        }
    free (copy);
    zframe_destroy (&frame);
}

static void
test_event_batch_round_trip (void **state)
{
    (void) state;
    event_t events [2];
    memset (events, 0, sizeof events);
    for (int i = 0; i < 2; i++) {
        events [i].position = 41 + i;
        snprintf (events [i].stream, sizeof events [i].stream, "case-%d", i);
        events [i].version = 1 + i;
        snprintf (events [i].id, sizeof events [i].id, "ev-%d", i);
        snprintf (events [i].type, sizeof events [i].type, "CaseCreated");
        events [i].timestamp_us = 1700000000000000LL + i;
        snprintf (events [i].command_id, sizeof events [i].command_id, "cmd");
        events [i].data = "{\"a\":1}";
        events [i].data_size = 7;
    }
    char *buf;
    size_t size;
    assert_int_equal (event_batch_encode (events, 2, 42, &buf, &size), 0);
    event_batch_t batch;
    assert_int_equal (event_batch_decode (buf, size, &batch), 0);
    assert_int_equal (batch.count, 2);
    assert_int_equal (batch.head, 42);
    assert_int_equal (batch.events [1].position, 42);
    assert_string_equal (batch.events [1].stream, "case-1");
    assert_string_equal (batch.events [0].id, "ev-0");
    assert_int_equal (batch.events [1].timestamp_us, 1700000000000001LL);
    assert_memory_equal (batch.events [0].data, "{\"a\":1}", 7);
    event_batch_destroy (&batch);
    /* truncated batches fail cleanly */
    for (size_t n = 0; n < size; n++) {
        int rc = event_batch_decode (buf, n, &batch);
        if (rc == 0)
            event_batch_destroy (&batch);
        else
            assert_int_equal (rc, -2);
    }
    free (buf);
    /* empty batch */
    assert_int_equal (event_batch_encode (NULL, 0, 7, &buf, &size), 0);
    assert_int_equal (event_batch_decode (buf, size, &batch), 0);
    assert_int_equal (batch.count, 0);
    assert_int_equal (batch.head, 7);
    event_batch_destroy (&batch);
    free (buf);
}

/* The optional trace context of an event: packed only when there is one (so events
 * without it keep their bytes, and old events decode), kept through a batch, ignored
 * when it is not a string that fits, and no prefix of a batch decodes. */
static void
test_event_traceparent (void **state)
{
    (void) state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    event_t events [2];
    memset (events, 0, sizeof events);
    for (int i = 0; i < 2; i++) {
        events [i].position = 1 + i;
        snprintf (events [i].stream, sizeof events [i].stream, "case");
        events [i].version = 1 + i;
        snprintf (events [i].id, sizeof events [i].id, "ev-%d", i);
        snprintf (events [i].type, sizeof events [i].type, "CaseCreated");
        events [i].data = "{}";
        events [i].data_size = 2;
    }
    snprintf (events [0].traceparent, sizeof events [0].traceparent, "%s", tp);
    char *buf;
    size_t size;
    assert_int_equal (event_batch_encode (events, 2, 2, &buf, &size), 0);
    event_batch_t batch;
    assert_int_equal (event_batch_decode (buf, size, &batch), 0);
    assert_int_equal (batch.count, 2);
    assert_string_equal (batch.events [0].traceparent, tp);
    assert_string_equal (batch.events [1].traceparent, "");
    event_batch_destroy (&batch);
    for (size_t n = 0; n < size; n++)
        assert_int_equal (event_batch_decode (buf, n, &batch), -2);
    free (buf);

    /* Without one: a map of the 9 keys from before trace context, no "tp" in it. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    event_pack (&pk, &events [1]);
    assert_int_equal ((unsigned char) sb.data [0], 0x89);      /* fixmap of 9 */
    assert_null (memmem (sb.data, sb.size, "\xa2tp", 3));
    msgpack_sbuffer_clear (&sb);
    event_pack (&pk, &events [0]);
    assert_int_equal ((unsigned char) sb.data [0], 0x8a);      /* fixmap of 10 */
    assert_non_null (memmem (sb.data, sb.size, "\xa2tp", 3));
    msgpack_sbuffer_destroy (&sb);

    /* A "tp" that is not a string, or too long: the event still decodes, without it. */
    const msgpack_object_type kinds [] = { MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_STR };
    for (size_t k = 0; k < 2; k++) {
        msgpack_sbuffer_init (&sb);
        msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 7);
        msgpack_pack_kv_int (&pk, "pos", 1);
        msgpack_pack_kv_str (&pk, "stream", "case");
        msgpack_pack_kv_int (&pk, "ver", 1);
        msgpack_pack_kv_str (&pk, "id", "ev");
        msgpack_pack_kv_str (&pk, "type", "CaseCreated");
        if (kinds [k] == MSGPACK_OBJECT_STR)
            msgpack_pack_kv_str (&pk, "tp", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-and-more");
        else
            msgpack_pack_kv_int (&pk, "tp", 7);
        msgpack_pack_kv_bin (&pk, "data", "{}", 2);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object obj;
        size_t off = 0;
        assert_int_equal (msgpack_unpack (sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
        event_t ev;
        assert_int_equal (event_unpack (&obj, &ev), 0);
        assert_string_equal (ev.traceparent, "");
        assert_string_equal (ev.id, "ev");
        msgpack_zone_destroy (&zone);
        msgpack_sbuffer_destroy (&sb);
    }
}

static void
test_store_append_round_trip (void **state)
{
    (void) state;
    store_new_event_t ev [2] = {
        { .id = "e1", .type = "CaseCreated", .data = "{}", .data_size = 2 },
        { .id = "e2", .type = "PersonLinked", .data = "{\"x\":1}", .data_size = 7 },
    };
    store_append_t req = {
        .stream = "s1", .expected_version = 0, .command_id = "rec:1", .fingerprint = "fp",
        .result = "{\"ok\":true}", .result_size = 11, .events = ev, .count = 2
    };
    char *buf;
    size_t size;
    assert_int_equal (store_append_encode (&req, &buf, &size), 0);
    store_append_t out;
    assert_int_equal (store_append_decode (buf, size, &out), 0);
    assert_string_equal (out.stream, "s1");
    assert_int_equal (out.expected_version, 0);
    assert_string_equal (out.command_id, "rec:1");
    assert_string_equal (out.fingerprint, "fp");
    assert_int_equal (out.result_size, 11);
    assert_int_equal (out.count, 2);
    assert_string_equal (out.events [1].type, "PersonLinked");
    assert_memory_equal (out.events [1].data, "{\"x\":1}", 7);
    store_append_free (&out);
    for (size_t n = 0; n < size; n++) {
        int rc = store_append_decode (buf, n, &out);
        assert_int_equal (rc, -2);
    }
    free (buf);
}

static void
test_store_replies (void **state)
{
    (void) state;
    size_t size;
    store_reply_t reply;
    char *buf = store_appended_encode (10, 15, 6, &size);
    assert_int_equal (store_reply_decode ("store.appended", buf, size, &reply), 0);
    assert_int_equal (reply.first_position, 10);
    assert_int_equal (reply.last_position, 15);
    assert_int_equal (reply.version, 6);
    free (buf);
    buf = store_duplicate_encode ("{}", 2, "abc", &size);
    assert_int_equal (store_reply_decode ("store.duplicate", buf, size, &reply), 0);
    assert_int_equal (reply.result_size, 2);
    assert_string_equal (reply.fingerprint, "abc");
    free (buf);
    int64_t from, max;
    buf = store_read_all_encode (5, 99999, &size);
    assert_int_equal (store_read_all_decode (buf, size, &from, &max), 0);
    assert_int_equal (from, 5);
    assert_int_equal (max, STORE_READ_MAX);      /* capped by a constant, not by the peer */
    free (buf);
    char stream [EVENT_ID_MAX];
    buf = store_read_stream_encode ("case-9", 3, &size);
    assert_int_equal (store_read_stream_decode (buf, size, stream, &from), 0);
    assert_string_equal (stream, "case-9");
    assert_int_equal (from, 3);
    free (buf);
}

static void
test_ids_and_command_ids (void **state)
{
    (void) state;
    char a [IDS_UUID_LEN], b [IDS_UUID_LEN];
    ids_uuid5 ("hello", a);
    ids_uuid5 ("hello", b);
    assert_string_equal (a, b);
    assert_true (ids_is_uuid (a));
    assert_int_equal (a [14], '5');                 /* version nibble */
    ids_uuid5 ("hello!", b);
    assert_string_not_equal (a, b);
    ids_uuid4 (a);
    ids_uuid4 (b);
    assert_true (ids_is_uuid (a));
    assert_string_not_equal (a, b);
    assert_int_equal (a [14], '4');
    assert_true (strchr ("89ab", a [19]) != NULL);

    /* Known answers (RFC 9562 UUIDv5 in Dossier's namespace; FIPS 180 SHA-1): ids
     * already in logs must come out the same from any later build. */
    ids_uuid5 ("hello", a);
    assert_string_equal (a, "0827b4a7-069c-5c9f-98e2-377ad00f1d99");
    ids_uuid5_indexed ("rec:abc", 7, a);
    assert_string_equal (a, "110b606e-a8c7-57da-b528-130a13136f92");
    /* "<prefix>/<index>" was always cut at 511 bytes: still the same ids */
    char prefix [601];
    memset (prefix, 'p', 509);
    prefix [509] = 0;
    ids_uuid5_indexed (prefix, 12, a);
    assert_string_equal (a, "d20b5c73-2b9c-55bc-a728-52cb9a334e00");
    memset (prefix, 'q', 600);
    prefix [600] = 0;
    ids_uuid5_indexed (prefix, 1, a);
    assert_string_equal (a, "dbe062b4-d3e8-5439-ba4a-8c18c7030cb9");
    char hex [41];
    ids_sha1_hex ("", 0, hex);
    assert_string_equal (hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    char thousand [1000];
    memset (thousand, 'a', sizeof thousand);
    ids_sha1_hex (thousand, sizeof thousand, hex);
    assert_string_equal (hex, "291e9a6c66994949b57ba5e650361e98fc36b1ba");

    /* A forked child draws its own random ids, not a copy of its parent's. */
    int pipefd [2];
    assert_int_equal (pipe (pipefd), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        char mine [IDS_UUID_LEN];
        ids_uuid4 (mine);
        _exit (write (pipefd [1], mine, IDS_UUID_LEN) == IDS_UUID_LEN ? 0 : 1);
    }
    char theirs [IDS_UUID_LEN];
    assert_int_equal (read (pipefd [0], theirs, IDS_UUID_LEN), IDS_UUID_LEN);
    waitpid (child, NULL, 0);
    close (pipefd [0]);
    close (pipefd [1]);
    ids_uuid4 (a);
    assert_true (ids_is_uuid (theirs));
    assert_string_not_equal (a, theirs);

    char cmd1 [COMMAND_ID_MAX], cmd2 [COMMAND_ID_MAX];
    const char *r1 = "{\"client_id\":\"C1\",\"case_type\":\"STANDARD\",\"case_version\":1,\"x\":1}";
    const char *r2 = "{ \"case_version\": 1, \"case_type\": \"STANDARD\", \"client_id\": \"C1\" }";
    json_t *j1 = json_loads (r1, 0, NULL), *j2 = json_loads (r2, 0, NULL);
    command_id_from_record (j1, r1, strlen (r1), cmd1);
    command_id_from_record (j2, r2, strlen (r2), cmd2);
    assert_string_equal (cmd1, cmd2);               /* same natural key, same command */
    assert_memory_equal (cmd1, "rec:", 4);
    json_decref (j1);
    json_decref (j2);
    command_id_from_record (NULL, "garbage", 7, cmd1);
    assert_memory_equal (cmd1, "raw:", 4);

    assert_int_equal (command_id_from_idempotency_key ("\"8e03978e\"", 10, cmd1), 0);
    assert_string_equal (cmd1, "http:8e03978e");
    assert_int_equal (command_id_from_idempotency_key ("8e03978e", 8, cmd2), 0);
    assert_string_equal (cmd1, cmd2);
    assert_int_equal (command_id_from_idempotency_key ("", 0, cmd1), -2);
    assert_int_equal (command_id_from_idempotency_key ("a\nb", 3, cmd1), -2);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_envelope_round_trip),
        cmocka_unit_test (test_envelope_empty_body),
        cmocka_unit_test (test_envelope_rejects_garbage),
        cmocka_unit_test (test_envelope_rejects_oversized_strings),
        cmocka_unit_test (test_envelope_truncation_and_corruption),
        cmocka_unit_test (test_event_batch_round_trip),
        cmocka_unit_test (test_event_traceparent),
        cmocka_unit_test (test_store_append_round_trip),
        cmocka_unit_test (test_store_replies),
        cmocka_unit_test (test_ids_and_command_ids),
    };
    return cmocka_run_group_tests_name ("envelope", tests, NULL, NULL);
}
