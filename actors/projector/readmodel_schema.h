/* readmodel_schema — the read-model DDL as compiled-in strings: the contract copy of
 * schemas/readmodels.sql, and the projector's own table of skipped poison events. */
#ifndef DOSSIER_READMODEL_SCHEMA_H
#define DOSSIER_READMODEL_SCHEMA_H

/* Exactly the text of schemas/readmodels.sql (a unit test compares them). */
extern const char readmodel_schema_sql [];

/* projector_errors(position, event_id, error): events the projector could not apply. */
extern const char readmodel_schema_errors_sql [];

#endif
