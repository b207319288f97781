-- +goose Up
-- One table of named fault points for every simulated dependency: the payment
-- simulator's charge, the inventory's reservation, the loyalty fulfilment
-- provider and partner simulators (see internal/platform/faults). A row is an
-- admin's setting; it overrides the point's default for every replica. The
-- three per-service tables it replaces are copied over and dropped.
CREATE TABLE fault_points (
    point                TEXT   PRIMARY KEY,
    fail                 BIGINT NOT NULL DEFAULT 0 CHECK (fail IN (0, 1)),
    delay_ms             BIGINT NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
    decline_rate_percent BIGINT NOT NULL DEFAULT 0 CHECK (decline_rate_percent BETWEEN 0 AND 100),
    decline_code         TEXT   NOT NULL DEFAULT '',
    actor                TEXT   NOT NULL DEFAULT '',
    updated_at           BIGINT NOT NULL
);

INSERT INTO fault_points (point, fail, delay_ms, actor, updated_at)
    SELECT CASE WHEN target = 'fulfillment' THEN 'loyalty.fulfillment' ELSE 'loyalty.partner.' || substr(target, 9) END,
           fail, delay_ms, actor, updated_at
    FROM loyalty_faults WHERE target = 'fulfillment' OR target LIKE 'partner:%';
-- The payment and inventory rows exist from the start; updated_at = 0 means
-- nobody ever set them, so the point keeps its default.
INSERT INTO fault_points (point, delay_ms, decline_rate_percent, decline_code, updated_at)
    SELECT 'payment.charge', latency_ms, decline_rate_percent, decline_code, updated_at FROM payment_faults WHERE updated_at > 0;
INSERT INTO fault_points (point, delay_ms, updated_at)
    SELECT 'inventory.reserve', reserve_delay_ms, updated_at FROM inventory_faults WHERE updated_at > 0;

DROP TABLE loyalty_faults;
DROP TABLE payment_faults;
DROP TABLE inventory_faults;

-- +goose Down
CREATE TABLE loyalty_faults (
    target     TEXT   PRIMARY KEY,
    fail       BIGINT NOT NULL DEFAULT 0 CHECK (fail IN (0, 1)),
    delay_ms   BIGINT NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
    actor      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO loyalty_faults (target, fail, delay_ms, actor, updated_at)
    SELECT CASE WHEN point = 'loyalty.fulfillment' THEN 'fulfillment' ELSE 'partner:' || substr(point, 17) END,
           fail, delay_ms, actor, updated_at
    FROM fault_points WHERE point = 'loyalty.fulfillment' OR point LIKE 'loyalty.partner.%';

CREATE TABLE payment_faults (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    latency_ms           BIGINT  NOT NULL DEFAULT 0,
    decline_rate_percent BIGINT  NOT NULL DEFAULT 0,
    decline_code         TEXT    NOT NULL DEFAULT 'generic_decline',
    updated_at           BIGINT  NOT NULL
);
INSERT INTO payment_faults (id, latency_ms, decline_rate_percent, decline_code, updated_at)
    SELECT 1, delay_ms, decline_rate_percent, decline_code, updated_at FROM fault_points WHERE point = 'payment.charge'
    UNION ALL
    SELECT 1, 0, 0, 'generic_decline', 0 WHERE NOT EXISTS (SELECT 1 FROM fault_points WHERE point = 'payment.charge');

CREATE TABLE inventory_faults (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    reserve_delay_ms BIGINT  NOT NULL DEFAULT 0 CHECK (reserve_delay_ms >= 0),
    updated_at       BIGINT  NOT NULL
);
INSERT INTO inventory_faults (id, reserve_delay_ms, updated_at)
    SELECT 1, delay_ms, updated_at FROM fault_points WHERE point = 'inventory.reserve'
    UNION ALL
    SELECT 1, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM fault_points WHERE point = 'inventory.reserve');

DROP TABLE fault_points;
