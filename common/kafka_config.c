/* kafka_config — see kafka_config.h. Values are never logged: SASL passwords pass
 * through here. */
#include "kafka_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int
kafka_config_enabled (config_t *config)
{
    const char *brokers = config_get (config, "kafka_brokers", NULL);
    return brokers && *brokers;
}

static int
s_set (rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t err_size)
{
    char why [256];
    if (rd_kafka_conf_set (conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf (err, err_size, "kafka property %s: %s", name, why);
        return -1;
    }
    return 0;
}

int
kafka_config_apply (config_t *config, rd_kafka_conf_t *conf, char *err, size_t err_size)
{
    const char *brokers = config_get (config, "kafka_brokers", NULL);
    if (brokers && s_set (conf, "bootstrap.servers", brokers, err, err_size))
        return -1;
    zconfig_t *tree = config_tree (config);
    zconfig_t *section = tree ? zconfig_locate (tree, "kafka") : NULL;
    for (zconfig_t *item = section ? zconfig_child (section) : NULL; item; item = zconfig_next (item)) {
        const char *value = zconfig_value (item);
        if (value && s_set (conf, zconfig_name (item), value, err, err_size))
            return -1;
    }
    static const char prefix [] = "DOSSIER_KAFKA_PROPERTY_";
    for (char **env = environ; env && *env; env++) {
        if (strncmp (*env, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name_start = *env + sizeof prefix - 1;
        const char *eq = strchr (name_start, '=');
        if (!eq || eq == name_start || eq - name_start >= 128)
            continue;
        char name [128];
        size_t len = (size_t) (eq - name_start);
        for (size_t i = 0; i < len; i++)
            name [i] = name_start [i] == '_' ? '.' : (char) tolower ((unsigned char) name_start [i]);
        name [len] = 0;
        if (s_set (conf, name, eq + 1, err, err_size))
            return -1;
    }
    return 0;
}
