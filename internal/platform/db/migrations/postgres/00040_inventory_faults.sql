-- +goose Up
-- Fault injection for the inventory service: an artificial delay before each
-- reservation, so a slow stock check can be reproduced and seen in traces.
CREATE TABLE inventory_faults (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    reserve_delay_ms BIGINT  NOT NULL DEFAULT 0 CHECK (reserve_delay_ms >= 0),
    updated_at       BIGINT  NOT NULL
);
INSERT INTO inventory_faults (id, reserve_delay_ms, updated_at) VALUES (1, 0, 0);

-- +goose Down
DROP TABLE inventory_faults;
