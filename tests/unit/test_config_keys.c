/* test_config_keys — the registry of configuration keys (common/config_keys.c) is
 * well formed, names each key's environment variable exactly as config_get derives
 * it, finds keys by any of their names, and prints as a table or as JSON. That every
 * key the sources read is in it is checked by tests/e2e/test_deploy.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"

static const char *s_known_processes [] = {
    "supervisor", "store", "broker", "handler", "projector", "notifier", "scheduler", "gateway", "ingest", "cli",
};

static int
s_known_process (const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_known_processes / sizeof s_known_processes [0]; i++)
        if (strlen (s_known_processes [i]) == len && strncmp (s_known_processes [i], name, len) == 0)
            return 1;
    return 0;
}

/* "DOSSIER_" + the upper-cased path, '/' written '_': what config.c looks up. */
static void
s_env_of (const char *section, const char *key, char *buf, size_t size)
{
    if (strcmp (section, "dossier") == 0)
        snprintf (buf, size, "DOSSIER_%s", key);
    else
        snprintf (buf, size, "DOSSIER_%s_%s", section, key);
    for (char *p = buf; *p; p++)
        *p = *p == '/' ? '_' : (char) toupper ((unsigned char) *p);
}

static void
test_entries_are_well_formed (void **state)
{
    (void) state;
    size_t count = config_keys_count ();
    assert_true (count > 40);
    assert_null (config_keys_at (count));
    for (size_t i = 0; i < count; i++) {
        const config_key_t *entry = config_keys_at (i);
        assert_non_null (entry);
        assert_non_null (entry->env);
        assert_true (strncmp (entry->env, "DOSSIER_", 8) == 0);
        assert_non_null (entry->description);
        assert_true (strlen (entry->description) > 10);
        assert_null (strchr (entry->description, '\n'));
        assert_true ((entry->section == NULL) == (entry->key == NULL));
        /* every reader is a process or the CLI */
        const char *p = entry->processes;
        assert_non_null (p);
        while (*p) {
            size_t len = strcspn (p, ",");
            if (!s_known_process (p, len))
                fail_msg ("%s: unknown process in '%s'", entry->env, entry->processes);
            p += len + (p [len] == ',');
        }
        /* an endpoint, and only an endpoint, names its one binder, which reads it */
        int endpoint = entry->key && strncmp (entry->key, "endpoint_", 9) == 0;
        assert_int_equal (endpoint, entry->binder != NULL);
        if (entry->binder)
            assert_non_null (strstr (entry->processes, entry->binder));
        /* names are unique */
        for (size_t j = 0; j < i; j++)
            if (strcmp (config_keys_at (j)->env, entry->env) == 0)
                fail_msg ("%s listed twice", entry->env);
    }
}

static void
test_env_names_follow_config_get (void **state)
{
    (void) state;
    for (size_t i = 0; i < config_keys_count (); i++) {
        const config_key_t *entry = config_keys_at (i);
        if (!entry->section || strchr (entry->key, '<'))
            continue;
        char env [160];
        s_env_of (entry->section, entry->key, env, sizeof env);
        if (strcmp (env, entry->env) != 0)
            fail_msg ("%s/%s: registry says %s, config derives %s", entry->section, entry->key, entry->env, env);
    }
    /* The families: the supervisor's DOSSIER_PROCESSES_<NAME>, and kafka_config.c's
     * pass-through, which alone inserts PROPERTY_. */
    assert_string_equal (config_keys_find ("processes/handler")->env, "DOSSIER_PROCESSES_<NAME>");
    assert_string_equal (config_keys_find ("kafka/sasl.mechanism")->env, "DOSSIER_KAFKA_PROPERTY_<NAME>");
}

/* The environment really overrides each key of section dossier under that name. */
static void
test_env_overrides_through_config_get (void **state)
{
    (void) state;
    unsetenv ("DOSSIER_CONFIG");
    config_t *config = config_load (NULL);
    assert_non_null (config);
    size_t checked = 0;
    for (size_t i = 0; i < config_keys_count (); i++) {
        const config_key_t *entry = config_keys_at (i);
        if (!entry->section || strcmp (entry->section, "dossier") != 0)
            continue;
        char *saved = getenv (entry->env) ? strdup (getenv (entry->env)) : NULL;
        setenv (entry->env, "registry-probe", 1);
        const char *value = config_get (config, entry->key, NULL);
        if (!value || strcmp (value, "registry-probe") != 0)
            fail_msg ("%s does not override %s", entry->env, entry->key);
        if (saved)
            setenv (entry->env, saved, 1);
        else
            unsetenv (entry->env);
        free (saved);
        checked++;
    }
    assert_true (checked > 30);
    config_destroy (&config);
}

static void
test_find_by_any_name (void **state)
{
    (void) state;
    const config_key_t *entry = config_keys_find ("http_addr");
    assert_non_null (entry);
    assert_string_equal (entry->env, "DOSSIER_HTTP_ADDR");
    assert_string_equal (entry->dflt, "127.0.0.1:8080");
    assert_ptr_equal (config_keys_find ("DOSSIER_HTTP_ADDR"), entry);
    assert_ptr_equal (config_keys_find ("dossier/http_addr"), entry);

    entry = config_keys_find ("supervisor/grace_ms");
    assert_non_null (entry);
    assert_string_equal (entry->env, "DOSSIER_SUPERVISOR_GRACE_MS");
    assert_ptr_equal (config_keys_find ("DOSSIER_SUPERVISOR_GRACE_MS"), entry);
    assert_null (config_keys_find ("grace_ms"));                  /* not in section dossier */

    entry = config_keys_find ("endpoint_store");
    assert_non_null (entry);
    assert_string_equal (entry->binder, "store");
    assert_ptr_equal (config_keys_find ("DOSSIER_PROCESSES_HANDLER"), config_keys_find ("processes/gateway"));
    assert_non_null (config_keys_find ("DOSSIER_KAFKA_PROPERTY_SASL_MECHANISM"));
    assert_non_null (config_keys_find ("DOSSIER_READY_FD"));

    assert_null (config_keys_find ("DOSSIER_PROCESSES_"));        /* a family needs a member */
    assert_null (config_keys_find ("processes/"));
    assert_null (config_keys_find ("no_such_key"));
    assert_null (config_keys_find ("DOSSIER_NO_SUCH_KEY"));
    assert_null (config_keys_find ("nosection/http_addr"));
    assert_null (config_keys_find (""));
    assert_null (config_keys_find (NULL));
}

static void
test_print_json (void **state)
{
    (void) state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    assert_int_equal (config_keys_print (out, 1), 0);
    fclose (out);
    json_error_t error;
    json_t *array = json_loads (text, 0, &error);
    free (text);
    assert_non_null (array);
    assert_true (json_is_array (array));
    assert_int_equal (json_array_size (array), config_keys_count ());
    json_t *first = json_array_get (array, 0);
    assert_string_equal (json_string_value (json_object_get (first, "env")), config_keys_at (0)->env);
    assert_true (json_is_array (json_object_get (first, "processes")));
    size_t i;
    json_t *item;
    json_array_foreach (array, i, item) {
        const config_key_t *entry = config_keys_at (i);
        assert_string_equal (json_string_value (json_object_get (item, "env")), entry->env);
        assert_int_equal (json_is_null (json_object_get (item, "default")), entry->dflt == NULL);
        assert_int_equal (json_is_null (json_object_get (item, "binder")), entry->binder == NULL);
        assert_true (json_array_size (json_object_get (item, "processes")) >= 1);
    }
    json_decref (array);
}

static void
test_print_table (void **state)
{
    (void) state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    assert_int_equal (config_keys_print (out, 0), 0);
    fclose (out);
    assert_true (strncmp (text, "KEY", 3) == 0);
    for (size_t i = 0; i < config_keys_count (); i++)
        assert_non_null (strstr (text, config_keys_at (i)->env));
    assert_non_null (strstr (text, "supervisor/grace_ms"));
    free (text);
}

static void
test_print_refuses_unwritable_output (void **state)
{
    (void) state;
    assert_int_equal (config_keys_print (NULL, 0), -1);
    FILE *full = fopen ("/dev/full", "w");
    if (!full)
        skip ();
    setvbuf (full, NULL, _IONBF, 0);
    assert_int_equal (config_keys_print (full, 0), -1);
    clearerr (full);
    assert_int_equal (config_keys_print (full, 1), -1);
    fclose (full);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_entries_are_well_formed),
        cmocka_unit_test (test_env_names_follow_config_get),
        cmocka_unit_test (test_env_overrides_through_config_get),
        cmocka_unit_test (test_find_by_any_name),
        cmocka_unit_test (test_print_json),
        cmocka_unit_test (test_print_table),
        cmocka_unit_test (test_print_refuses_unwritable_output),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
