-- +goose Up
-- The documented maxima of stored quantities (internal/bounds): stock, reserved
-- and ordered units at most 1,000,000,000, a cart line at most 1,000 units
-- (cart.MaxQuantity), a price at most 10^12 minor units. The services refuse
-- larger values at the edge; these constraints are the backstop. NOT VALID:
-- rows written before this migration are not rechecked (a database holding
-- one still starts, and `godwit verify` names it); every insert and update
-- from now on is checked.
ALTER TABLE inventory ADD CONSTRAINT inventory_available_bounds
    CHECK (available BETWEEN 0 AND 1000000000) NOT VALID;
ALTER TABLE reservation_items ADD CONSTRAINT reservation_items_quantity_bounds
    CHECK (quantity BETWEEN 1 AND 1000000000) NOT VALID;
ALTER TABLE order_items ADD CONSTRAINT order_items_quantity_bounds
    CHECK (quantity BETWEEN 1 AND 1000000000) NOT VALID;
ALTER TABLE cart_items ADD CONSTRAINT cart_items_quantity_bounds
    CHECK (quantity BETWEEN 1 AND 1000) NOT VALID;
ALTER TABLE products ADD CONSTRAINT products_price_bounds
    CHECK (price_amount BETWEEN 0 AND 1000000000000) NOT VALID;

-- +goose Down
ALTER TABLE products DROP CONSTRAINT products_price_bounds;
ALTER TABLE cart_items DROP CONSTRAINT cart_items_quantity_bounds;
ALTER TABLE order_items DROP CONSTRAINT order_items_quantity_bounds;
ALTER TABLE reservation_items DROP CONSTRAINT reservation_items_quantity_bounds;
ALTER TABLE inventory DROP CONSTRAINT inventory_available_bounds;
