-- Read models (SQLite, file <data_dir>/readmodels.db), owned by the projector,
-- read by the gateway. Each row keeps its ready-to-send JSON beside the indexed
-- fields, so a GET is one keyed lookup and a write of bytes.
-- `seq` is the global log position of the event that created the row: it orders
-- lists and is the pagination cursor. `updated_position` is the position of the
-- last event applied to the row (projector writes are guarded by it).

-- One checkpoint row per projector partition: "projector" with one partition,
-- "projector/<i>-of-<N>" with N (common/partition.h: a case is in partition
-- fnv1a32+fmix32(case id) mod N). A partition without a row starts from the least row.
CREATE TABLE IF NOT EXISTS checkpoint (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS cases (
    id               TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    traitement_type  TEXT NOT NULL,
    status           TEXT NOT NULL,
    updated_position INTEGER NOT NULL,
    summary_json     TEXT NOT NULL,  -- item of GET /v1/cases
    full_json        TEXT NOT NULL   -- GET /v1/cases/{id}: with persons, company, beneficial owners, documents
);
CREATE INDEX IF NOT EXISTS cases_by_client ON cases (client_id, seq);
CREATE INDEX IF NOT EXISTS cases_by_type   ON cases (traitement_type, seq);
CREATE INDEX IF NOT EXISTS cases_by_status ON cases (status, seq);

CREATE TABLE IF NOT EXISTS companies (
    id               TEXT PRIMARY KEY,
    case_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    updated_position INTEGER NOT NULL,
    json             TEXT NOT NULL   -- GET /v1/companies/{id}
);
CREATE INDEX IF NOT EXISTS companies_by_case ON companies (case_id, seq);

CREATE TABLE IF NOT EXISTS persons (
    id               TEXT PRIMARY KEY,
    case_id          TEXT NOT NULL,
    company_id       TEXT,
    seq              INTEGER NOT NULL,
    updated_position INTEGER NOT NULL,
    json             TEXT NOT NULL   -- GET /v1/persons/{id}
);
CREATE INDEX IF NOT EXISTS persons_by_case ON persons (case_id, seq);

CREATE TABLE IF NOT EXISTS beneficial_owners (
    id               TEXT PRIMARY KEY,
    company_id       TEXT NOT NULL,
    case_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    updated_position INTEGER NOT NULL,
    json             TEXT NOT NULL   -- item of GET /v1/companies/{id}/beneficial-owners
);
CREATE INDEX IF NOT EXISTS bos_by_company ON beneficial_owners (company_id, seq);

CREATE TABLE IF NOT EXISTS documents (
    id               TEXT PRIMARY KEY,
    case_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    status           TEXT NOT NULL,
    updated_position INTEGER NOT NULL,
    json             TEXT NOT NULL   -- GET /v1/documents/{id}
);
CREATE INDEX IF NOT EXISTS documents_by_case ON documents (case_id, seq);

-- The audit trail: a projection of the log itself, so the gateway reads only read models.
-- Keyed by the case's seq rather than its id: the events of a new case go to the end of
-- the table, where a key of random-looking ids put every event on a random page (the
-- largest share of the pages the projector wrote). An older file is rebuilt from the log.
CREATE TABLE IF NOT EXISTS case_events (
    case_seq INTEGER NOT NULL,       -- cases.seq of the case
    version  INTEGER NOT NULL,
    case_id  TEXT NOT NULL,
    position INTEGER NOT NULL,
    json     TEXT NOT NULL,          -- {"position","version","event_id","type","timestamp","command_id","data":{...}}
    PRIMARY KEY (case_seq, version)
);
