/* kafka_config — librdkafka settings from Dossier's configuration: the brokers
 * (DOSSIER_KAFKA_BROKERS) plus any librdkafka property passed through, so SASL/SSL
 * and tuning need no code change. */
#ifndef DOSSIER_KAFKA_CONFIG_H
#define DOSSIER_KAFKA_CONFIG_H

#include "config.h"
#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* 1 when Kafka is configured (key kafka_brokers / DOSSIER_KAFKA_BROKERS set), else 0. */
int kafka_config_enabled (config_t *config);

/* Fills conf: bootstrap.servers from kafka_brokers, then every property of the
 * config file's `kafka` section (e.g. `sasl.mechanism = "PLAIN"`), then every
 * environment variable DOSSIER_KAFKA_PROPERTY_<NAME>, where <NAME> is the property
 * upper-cased with '.' written as '_' (DOSSIER_KAFKA_PROPERTY_SECURITY_PROTOCOL=SASL_SSL
 * sets security.protocol). Later sources win. Returns 0 ok, -1 with a message in err
 * if librdkafka refused a property (the message names it; values are not echoed,
 * they may be secrets). */
int kafka_config_apply (config_t *config, rd_kafka_conf_t *conf, char *err, size_t err_size);

#endif
