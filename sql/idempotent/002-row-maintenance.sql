-- requires: 0001 (memora.collection, memora.dataset, memora.document)
--
-- Columns the database keeps right by itself, whoever writes the row: the REST API, the worker or psql.

CREATE OR REPLACE FUNCTION memora.touch_updated_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION memora.touch_updated_at() IS 'BEFORE UPDATE trigger: set updated_at to now().';

CREATE OR REPLACE TRIGGER collection_touch_updated_at
    BEFORE UPDATE ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.touch_updated_at();

CREATE OR REPLACE TRIGGER dataset_touch_updated_at
    BEFORE UPDATE ON memora.dataset
    FOR EACH ROW EXECUTE FUNCTION memora.touch_updated_at();


CREATE OR REPLACE FUNCTION memora.content_hash(content text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT sha256(convert_to(content, 'UTF8')) $$;

COMMENT ON FUNCTION memora.content_hash(text) IS 'SHA-256 of the UTF-8 bytes of a text; Python computes the same.';


CREATE OR REPLACE FUNCTION memora.document_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Hashing is skipped for updates that leave content alone (claims, lease renewals, status changes).
    IF TG_OP = 'INSERT' OR NEW.content IS DISTINCT FROM OLD.content THEN
        NEW.content_hash := memora.content_hash(NEW.content);
    ELSE
        NEW.content_hash := OLD.content_hash;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF (NEW.content_hash, NEW.title, NEW.content_type)
           IS DISTINCT FROM (OLD.content_hash, OLD.title, OLD.content_type) THEN
            -- Changed text: the worker must chunk and embed it again, whatever it was doing.
            NEW.version := OLD.version + 1;
            NEW.status := 'pending';
            NEW.attempts := 0;
            NEW.error := NULL;
            NEW.available_at := now();
        ELSIF NEW.status = 'pending' AND OLD.status IN ('ready', 'failed') THEN
            -- Queued again by hand (UPDATE ... SET status = 'pending'): a fresh set of attempts, at once.
            NEW.attempts := 0;
            NEW.error := NULL;
            NEW.available_at := now();
        END IF;
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION memora.document_before_write() IS
    'Keep content_hash, updated_at and version right, and queue the document again when its text changes.';

CREATE OR REPLACE TRIGGER document_before_write
    BEFORE INSERT OR UPDATE ON memora.document
    FOR EACH ROW EXECUTE FUNCTION memora.document_before_write();


CREATE OR REPLACE FUNCTION memora.document_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- One channel per schema; PostgreSQL folds identical notifications of a transaction into one.
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.document', '');
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION memora.document_notify() IS 'Wake the workers (they LISTEN on channel <schema>.document) when work is queued.';

CREATE OR REPLACE TRIGGER document_notify
    AFTER INSERT OR UPDATE ON memora.document
    FOR EACH ROW WHEN (NEW.status = 'pending')
    EXECUTE FUNCTION memora.document_notify();
