-- Site load management (docs/load-management.md). Kept column-for-column equal to
-- migrations/sqlite/0012_sites.sql.

-- A site: its owner's connection to the grid, and how its chargers are kept safe with
-- the server gone. failsafe: 'zero' (a charger with no session profile charges at 0 A)
-- or 'reserve' (at its failsafe current, reserved for every idle connector).
-- allocator/allocator_until: the instance that allocates the site now, and until when.
CREATE TABLE sites (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES owners(id),
    name            TEXT NOT NULL,
    failsafe        TEXT NOT NULL,
    lease_s         BIGINT NOT NULL,
    allocator       TEXT,
    allocator_until BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX sites_owner ON sites (owner_id);

-- The site's tree: its connection (no parent), boards and circuits. Limits per site
-- phase in tenths of an ampere, already derated; a parent always has a lower id.
CREATE TABLE site_nodes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    parent_id   BIGINT REFERENCES site_nodes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    limit_l1_da BIGINT NOT NULL,
    limit_l2_da BIGINT NOT NULL,
    limit_l3_da BIGINT NOT NULL,
    power_cap_w BIGINT
);
CREATE INDEX site_nodes_site ON site_nodes (site_id);

-- Where a charger hangs: its node, its phase rotation onto the site ('123', '231', '1',
-- ...: the site phase each of its own phases is wired to), its maximum per connector in
-- dA, its sessions' priority, the default limit it was last given (dA; NULL: none since
-- its last boot), and what its composite schedule showed once it held a session's
-- profile ('ok', 'wrong': it would draw more than it was given, 'unknown'; NULL: not
-- checked since its boot or placement). leaving = 1: taken off its site (or sold), its
-- limits not lifted yet; the row goes once they are.
CREATE TABLE site_chargers (
    device_id      TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    node_id        BIGINT NOT NULL REFERENCES site_nodes(id) ON DELETE CASCADE,
    rotation       TEXT NOT NULL,
    max_current_da BIGINT NOT NULL,
    priority       BIGINT NOT NULL,
    default_da     BIGINT,
    schedule_check TEXT,
    leaving        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX site_chargers_node ON site_chargers (node_id);

-- What each running session on a site was last given: the current (dA), the one before
-- it (an unacknowledged change counts at the higher of the two), whether the charger
-- acknowledged it, until when its lease holds, when it last went from paused to given
-- current or back (ms), and the most current per phase the car last drew (dA; NULL: the
-- charger did not say since its limit was last raised), and what the profile sent holds
-- once its lease ends (dA: never more than the current it gives).
CREATE TABLE site_allocations (
    session_id  BIGINT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    site_id     BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    current_da  BIGINT NOT NULL,
    previous_da BIGINT NOT NULL,
    acked       BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    served_at   BIGINT NOT NULL,
    drawn_da    BIGINT,
    failsafe_da BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX site_allocations_site ON site_allocations (site_id);
