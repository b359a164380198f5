-- The query service's read model. Idempotent: applied at start-up under an advisory lock.
-- plays is range-partitioned by season; partitions are created on demand by the projector
-- (query.partitions) the first time a season is seen.
CREATE TABLE IF NOT EXISTS plays (
    play_id        text        NOT NULL,  -- '<game_id>:<feed play id>', unique platform-wide
    season         integer     NOT NULL,
    game_id        text        NOT NULL,
    feed_play_id   text        NOT NULL,
    revision       integer     NOT NULL,
    deleted        boolean     NOT NULL DEFAULT false,
    season_type    text        NOT NULL,
    week           integer     NOT NULL,
    home           text        NOT NULL,
    away           text        NOT NULL,
    sequence       integer     NOT NULL,
    drive          integer,
    quarter        integer,
    clock          text,
    down           integer,
    yards_to_go    integer,
    yardline_100   integer,
    offense        text,
    defense        text,
    play_type      text,
    yards_gained   integer,
    touchdown      boolean     NOT NULL DEFAULT false,
    turnover       boolean     NOT NULL DEFAULT false,
    penalty        boolean     NOT NULL DEFAULT false,
    sack           boolean     NOT NULL DEFAULT false,
    pressure       boolean     NOT NULL DEFAULT false,
    description    text,
    formation      jsonb,
    personnel      jsonb,
    -- json, not jsonb: stored and returned as the events carried them; nothing queries inside
    -- them (player_ids serves the player filter), and json skips jsonb's parse on every insert.
    participants   json        NOT NULL DEFAULT '[]',
    stats          json        NOT NULL DEFAULT '[]',
    player_ids     text[]      NOT NULL DEFAULT '{}',
    event_id       text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    projected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (play_id, season)
) PARTITION BY RANGE (season);

CREATE INDEX IF NOT EXISTS plays_game_seq ON plays (game_id, sequence);
-- The newest-first list needs season in the index: partitions alone do not give that order.
CREATE INDEX IF NOT EXISTS plays_newest ON plays (season DESC, game_id DESC, sequence DESC);
DROP INDEX IF EXISTS plays_game_order;  -- tried and dropped: it could not serve the newest-first list
CREATE INDEX IF NOT EXISTS plays_offense_situation ON plays (offense, down, yards_to_go)
    INCLUDE (yards_gained, touchdown);
CREATE INDEX IF NOT EXISTS plays_defense_situation ON plays (defense, down, yards_to_go);
CREATE INDEX IF NOT EXISTS plays_players ON plays USING gin (player_ids);

CREATE TABLE IF NOT EXISTS games (
    game_id      text        PRIMARY KEY,
    season       integer     NOT NULL,
    season_type  text        NOT NULL,
    week         integer     NOT NULL,
    home         text        NOT NULL,
    away         text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS games_season ON games (season, season_type, week);

-- Databases made before participants and stats became json.
ALTER TABLE plays ALTER COLUMN participants TYPE json, ALTER COLUMN stats TYPE json,
    ALTER COLUMN participants SET DEFAULT '[]', ALTER COLUMN stats SET DEFAULT '[]';

-- The score after each play and the game's status after it (events carry them since the score
-- and game state were added to the contract; older events leave them null).
ALTER TABLE plays ADD COLUMN IF NOT EXISTS home_score integer, ADD COLUMN IF NOT EXISTS away_score integer,
    ADD COLUMN IF NOT EXISTS game_status text;

-- Every (player, season, team) a play names, with the name and position the events give: the
-- player directory behind /v1/players. name_key is the name folded for search (no accents, no
-- case, no punctuation: "J.J. Watt" -> "jj watt"; services.query.players.name_key).
CREATE TABLE IF NOT EXISTS player_teams (
    player_id  text    NOT NULL,
    season     integer NOT NULL,
    team       text    NOT NULL,
    name       text,
    name_key   text,
    position   text,
    PRIMARY KEY (player_id, season, team)
);
CREATE INDEX IF NOT EXISTS player_teams_name ON player_teams (name_key text_pattern_ops);
CREATE INDEX IF NOT EXISTS player_teams_team ON player_teams (team, season);
-- The game list's keyset order.
CREATE INDEX IF NOT EXISTS games_order ON games (season, week, game_id);

-- The generation of each part of the data the answer cache knows (services/query/cache.py):
-- raised by the projector in every batch's transaction for the games, seasons and teams it wrote.
CREATE TABLE IF NOT EXISTS read_generations (
    tag text   PRIMARY KEY,
    gen bigint NOT NULL
);

-- Expected points and win probability of each scrimmage play, from its offense's side
-- (shared/epwp.py), and the model version that computed them; games.value_model says which model
-- last valued a game's plays, so a new model revalues every game in the background.
ALTER TABLE plays ADD COLUMN IF NOT EXISTS ep_before double precision,
    ADD COLUMN IF NOT EXISTS ep_after double precision, ADD COLUMN IF NOT EXISTS epa double precision,
    ADD COLUMN IF NOT EXISTS wp_before double precision, ADD COLUMN IF NOT EXISTS wp_after double precision,
    ADD COLUMN IF NOT EXISTS value_model text;
ALTER TABLE games ADD COLUMN IF NOT EXISTS value_model text;

-- Seasons moved to cold storage (`snapline archive`, shared/archive.py): their rows are gone from
-- plays (partition dropped), games and player_teams; reads of them answer 410 season_archived.
-- game_ids: the season's games, so that a read by game or play id can say so too.
CREATE TABLE IF NOT EXISTS archived_seasons (
    season      integer     PRIMARY KEY,
    location    text        NOT NULL,
    game_ids    text[]      NOT NULL DEFAULT '{}',
    archived_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS archived_seasons_games ON archived_seasons USING gin (game_ids);
