-- Station ledger, schema 3: serial blocks leased from the fleet registry ([registry], serial_source = "station").
-- A lease is recorded here (and chained as a `serial-leased` event) before any serial of it is reserved, so a
-- station never issues a number it does not hold, even after a crash between the registry's commit and this one.
CREATE TABLE serial_leases (
    id        INTEGER PRIMARY KEY,      -- the registry's lease id
    prefix    TEXT NOT NULL,
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL CHECK (first <= last),
    leased_at TEXT NOT NULL
);
CREATE UNIQUE INDEX serial_leases_first ON serial_leases (prefix, first);
