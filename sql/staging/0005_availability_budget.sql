-- 0005_availability_budget.sql — staging: the Mobile API's request budget.
--
-- Spec §1/§17.2: the brands' mobile stock API is polled through resident
-- proxies at 4 requests per hour. unde-availability(1) spends that budget
-- across runs and processes: before asking, a run locks its brand's row of
-- availability_budget (FOR UPDATE, inside one short transaction: safe
-- through PgBouncer in transaction mode), counts the requests of the last
-- hour in availability_requests, and records the ones it is about to make
-- — or, when they would not fit, makes none and says when the oldest one
-- leaves the hour. unde-cleanup(1) removes requests older than its cut-off.
-- Applied by `unde-db migrate staging` inside one transaction.

CREATE TABLE availability_budget (
    brand VARCHAR(50) PRIMARY KEY
);

CREATE TABLE availability_requests (
    id BIGSERIAL PRIMARY KEY,
    brand VARCHAR(50) NOT NULL,
    store_id INTEGER,
    run_id VARCHAR(64),
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_availability_requests_brand_at ON availability_requests(brand, requested_at);
