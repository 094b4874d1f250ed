-- Station ledger, schema 4: per-bench counts kept by triggers in the same transaction as the rows they count, so
-- that `station status` answers in constant time on a ledger of millions of rows (it counted every row before).
-- Derived data, like an index: not part of the hash chain; the rows stay the truth.
CREATE TABLE bench_counts (
    bench     TEXT PRIMARY KEY,
    issued    INTEGER NOT NULL DEFAULT 0,  -- issuance rows (every state)
    confirmed INTEGER NOT NULL DEFAULT 0,  -- of them, in state 'confirmed'
    refused   INTEGER NOT NULL DEFAULT 0,  -- refusal rows
    last_id   INTEGER                      -- the bench's newest issuance row
) WITHOUT ROWID;

INSERT INTO bench_counts (bench, issued, confirmed, refused, last_id)
SELECT bench, SUM(n), SUM(c), SUM(r), MAX(last_id) FROM (
    SELECT bench, COUNT(*) AS n, SUM(state = 'confirmed') AS c, 0 AS r, MAX(id) AS last_id FROM issuances GROUP BY bench
    UNION ALL
    SELECT bench, 0, 0, COUNT(*), NULL FROM refusals GROUP BY bench
) GROUP BY bench;

CREATE TRIGGER bench_counts_issued AFTER INSERT ON issuances BEGIN
    INSERT INTO bench_counts (bench, issued, confirmed, last_id) VALUES (NEW.bench, 1, NEW.state = 'confirmed', NEW.id)
    ON CONFLICT (bench) DO UPDATE SET issued = issued + 1, confirmed = confirmed + (NEW.state = 'confirmed'),
        last_id = MAX(COALESCE(last_id, 0), NEW.id);
END;

CREATE TRIGGER bench_counts_state AFTER UPDATE OF state ON issuances
WHEN (OLD.state = 'confirmed') <> (NEW.state = 'confirmed') BEGIN
    UPDATE bench_counts SET confirmed = confirmed + (NEW.state = 'confirmed') - (OLD.state = 'confirmed')
    WHERE bench = NEW.bench;
END;

CREATE TRIGGER bench_counts_refused AFTER INSERT ON refusals BEGIN
    INSERT INTO bench_counts (bench, refused) VALUES (NEW.bench, 1)
    ON CONFLICT (bench) DO UPDATE SET refused = refused + 1;
END;
