/* readmodel_reader — the gateway's read-model queries over a backend table
 * (readmodel_reader_backend.h): SQLite or MongoDB, as config "store" says. The
 * backends find stored JSON; this file frames it into the REST answers (lists,
 * the audit trail, the cursor), so both answer with the same bytes. */
#include "readmodel_reader.h"
#include "readmodel_reader_backend.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct _gw_reader_t {
    const gw_reader_ops_t *ops;
    void *impl;
};

static gw_reader_t *
s_new (const gw_reader_ops_t *ops, void *impl)
{
    if (!impl)
        return NULL;
    gw_reader_t *self = calloc (1, sizeof (gw_reader_t));
    if (!self) {
        ops->destroy (impl);
        return NULL;
    }
    self->ops = ops;
    self->impl = impl;
    return self;
}

gw_reader_t *
gw_reader_new (const char *path)
{
    return s_new (&gw_reader_sqlite_ops, gw_reader_sqlite_new (path));
}

gw_reader_t *
gw_reader_new_config (config_t *config)
{
    const char *store = config_get (config, "store", "sqlite");
    if (strcmp (store, "mongodb") == 0)
        return s_new (&gw_reader_mongo_ops, gw_reader_mongo_new (config));
    if (strcmp (store, "sqlite") != 0) {
        log_error (NULL, NULL, "read models: unknown store \"%.40s\" (sqlite or mongodb)", store);
        return NULL;
    }
    char *path = config_data_path (config, "readmodels.db");
    gw_reader_t *self = path ? gw_reader_new (path) : NULL;
    free (path);
    return self;
}

void
gw_reader_destroy (gw_reader_t **self_p)
{
    if (self_p && *self_p) {
        gw_reader_t *self = *self_p;
        self->ops->destroy (self->impl);
        free (self);
        *self_p = NULL;
    }
}

const char *
gw_reader_backend (gw_reader_t *self)
{
    return self->ops->name;
}

int
gw_reader_ready (gw_reader_t *self)
{
    return self->ops->ready (self->impl);
}

const char *
gw_reader_reason (gw_reader_t *self)
{
    return self->ops->reason (self->impl);
}

uint64_t
gw_reader_snapshot (gw_reader_t *self)
{
    return self->ops->snapshot ? self->ops->snapshot (self->impl) : 0;
}

void
gw_reader_release (gw_reader_t *self)
{
    if (self->ops->release)
        self->ops->release (self->impl);
}

static int
s_object (gw_reader_t *self, gw_rm_object_t which, const char *id, gw_buf_t *out)
{
    gw_buf_reset (out);
    int rc = self->ops->object (self->impl, which, id, out);
    if (rc != GW_READER_OK)
        gw_buf_reset (out);
    return rc;
}

int
gw_reader_case (gw_reader_t *self, const char *id, gw_buf_t *out)
{
    return s_object (self, GW_RM_CASE, id, out);
}

int
gw_reader_company (gw_reader_t *self, const char *id, gw_buf_t *out)
{
    return s_object (self, GW_RM_COMPANY, id, out);
}

int
gw_reader_person (gw_reader_t *self, const char *id, gw_buf_t *out)
{
    return s_object (self, GW_RM_PERSON, id, out);
}

int
gw_reader_document (gw_reader_t *self, const char *id, gw_buf_t *out)
{
    return s_object (self, GW_RM_DOCUMENT, id, out);
}

int
gw_reader_case_exists (gw_reader_t *self, const char *id)
{
    return self->ops->exists (self->impl, GW_RM_CASE, id);
}

int
gw_reader_document_case (gw_reader_t *self, const char *document_id, char case_id [GW_ID_MAX])
{
    case_id [0] = 0;
    int rc = self->ops->document_case (self->impl, document_id, case_id);
    if (rc != GW_READER_OK)
        case_id [0] = 0;
    return rc;
}

int
gw_reader_cases (gw_reader_t *self, const gw_cases_query_t *query, gw_buf_t *out)
{
    gw_buf_reset (out);
    int limit = query->limit >= 1 && query->limit <= GW_LIMIT_MAX ? query->limit : GW_LIMIT_DEFAULT;
    int64_t last_seq = 0;
    int more = 0;
    gw_buf_append_str (out, "{\"items\":[");
    int rc = self->ops->cases (self->impl, query, limit, out, &last_seq, &more);
    if (rc != GW_READER_OK) {
        gw_buf_reset (out);
        return rc;
    }
    gw_buf_append_str (out, "],\"next_cursor\":");
    if (more) {
        char cursor [GW_CURSOR_MAX];
        gw_cursor_encode (last_seq, cursor);
        gw_buf_append_json_string (out, cursor, strlen (cursor));
    }
    else
        gw_buf_append_str (out, "null");
    gw_buf_append_str (out, "}");
    return out->failed ? GW_READER_UNAVAILABLE : GW_READER_OK;
}

/* out = {[case_id,]"<field>":[rows of which under id]}, after checking the parent
 * exists. */
static int
s_sub_list (gw_reader_t *self, gw_rm_object_t parent, gw_rm_list_t which, const char *id,
            gw_buf_t *out, int with_case_id, const char *field)
{
    gw_buf_reset (out);
    int rc = self->ops->exists (self->impl, parent, id);
    if (rc != GW_READER_OK)
        return rc;
    gw_buf_append_str (out, "{");
    if (with_case_id) {
        gw_buf_append_str (out, "\"case_id\":");
        gw_buf_append_json_string (out, id, strlen (id));
        gw_buf_append_str (out, ",");
    }
    gw_buf_append_str (out, field);
    gw_buf_append_str (out, ":[");
    rc = self->ops->rows (self->impl, which, id, out);
    if (rc != GW_READER_OK) {
        gw_buf_reset (out);
        return rc;
    }
    gw_buf_append_str (out, "]}");
    return out->failed ? GW_READER_UNAVAILABLE : GW_READER_OK;
}

int
gw_reader_case_events (gw_reader_t *self, const char *case_id, gw_buf_t *out)
{
    return s_sub_list (self, GW_RM_CASE, GW_RM_CASE_EVENTS, case_id, out, 1, "\"events\"");
}

int
gw_reader_case_documents (gw_reader_t *self, const char *case_id, gw_buf_t *out)
{
    return s_sub_list (self, GW_RM_CASE, GW_RM_CASE_DOCUMENTS, case_id, out, 0, "\"items\"");
}

int
gw_reader_company_owners (gw_reader_t *self, const char *company_id, gw_buf_t *out)
{
    return s_sub_list (self, GW_RM_COMPANY, GW_RM_COMPANY_OWNERS, company_id, out, 0, "\"items\"");
}
