-- 0050_recognition_caller_request_id.sql — production: the caller's own
-- request_id of a recognition request.
--
-- A request_id may be any id the caller chose (unde-httpd's: up to 64 of
-- [A-Za-z0-9._:-], carried through every stage and upstream call), not
-- only a UUID. unde-recognize keeps it on every line it writes; the row's
-- id stays a UUID (the caller's when it is one, else a new one, answered
-- as recognition_id), and the caller's other id is kept here so that
-- `unde-recognize feedback` finds the row by either.
-- Applied by `unde-db migrate production` inside one transaction.

ALTER TABLE recognition_requests ADD COLUMN request_id TEXT;

COMMENT ON COLUMN recognition_requests.request_id IS
    'the caller''s request_id when it is not the row''s id (not a UUID); NULL otherwise';

CREATE INDEX idx_recognition_request_id ON recognition_requests(request_id)
    WHERE request_id IS NOT NULL;
