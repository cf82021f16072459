-- Work a manager could not do: one failing item (an observation that cannot be packaged, say) is
-- set aside here with its error, and the manager goes on with the rest. `ccat status` lists these;
-- an item that succeeds later is removed.
CREATE TABLE manager_issue (
    manager text NOT NULL,
    item text NOT NULL,
    error text NOT NULL,
    failures integer NOT NULL DEFAULT 1,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (manager, item)
);
