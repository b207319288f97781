-- +goose Up
-- The documented maxima of stored quantities (internal/bounds), as on PostgreSQL
-- (see its 00044). SQLite adds a CHECK constraint only by rebuilding the table;
-- triggers give the same refusal without copying the tables and, like
-- PostgreSQL's NOT VALID, leave rows written before this migration to
-- `godwit verify`. NOT BETWEEN is true for a REAL beyond the bound (what an
-- overflowing integer sum becomes on SQLite).

-- +goose StatementBegin
CREATE TRIGGER inventory_available_bounds_insert BEFORE INSERT ON inventory
WHEN NEW.available NOT BETWEEN 0 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: inventory_available_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER inventory_available_bounds_update BEFORE UPDATE OF available ON inventory
WHEN NEW.available NOT BETWEEN 0 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: inventory_available_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reservation_items_quantity_bounds_insert BEFORE INSERT ON reservation_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: reservation_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reservation_items_quantity_bounds_update BEFORE UPDATE OF quantity ON reservation_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: reservation_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER order_items_quantity_bounds_insert BEFORE INSERT ON order_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: order_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER order_items_quantity_bounds_update BEFORE UPDATE OF quantity ON order_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: order_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER cart_items_quantity_bounds_insert BEFORE INSERT ON cart_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: cart_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER cart_items_quantity_bounds_update BEFORE UPDATE OF quantity ON cart_items
WHEN NEW.quantity NOT BETWEEN 1 AND 1000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: cart_items_quantity_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER products_price_bounds_insert BEFORE INSERT ON products
WHEN NEW.price_amount NOT BETWEEN 0 AND 1000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: products_price_bounds'); END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER products_price_bounds_update BEFORE UPDATE OF price_amount ON products
WHEN NEW.price_amount NOT BETWEEN 0 AND 1000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: products_price_bounds'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER inventory_available_bounds_insert;
DROP TRIGGER inventory_available_bounds_update;
DROP TRIGGER reservation_items_quantity_bounds_insert;
DROP TRIGGER reservation_items_quantity_bounds_update;
DROP TRIGGER order_items_quantity_bounds_insert;
DROP TRIGGER order_items_quantity_bounds_update;
DROP TRIGGER cart_items_quantity_bounds_insert;
DROP TRIGGER cart_items_quantity_bounds_update;
DROP TRIGGER products_price_bounds_insert;
DROP TRIGGER products_price_bounds_update;
