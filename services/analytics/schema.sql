-- Exact aggregates. Each play's last applied contribution is kept, so a correction or a
-- delete applies the difference and a redelivered event changes nothing.
CREATE TABLE IF NOT EXISTS analytics_play_contrib (
    play_id   text    PRIMARY KEY,
    season    integer NOT NULL,
    revision  integer NOT NULL,
    contrib   json    NOT NULL  -- read back only by this service, whole: json skips jsonb's parse
);

-- Additive totals: one row per (subject, season, season type, week, stat). Subjects are
-- players ('player') and teams ('team'); stats are named '<group>.<field>' (defense.sacks).
CREATE TABLE IF NOT EXISTS stat_totals (
    subject_kind text     NOT NULL,
    subject_id   text     NOT NULL,
    season       integer  NOT NULL,
    season_type  text     NOT NULL,
    week         integer  NOT NULL,
    stat         text     NOT NULL,
    value        double precision NOT NULL,
    PRIMARY KEY (subject_kind, subject_id, season, season_type, week, stat)
) WITH (fillfactor = 80);
-- Free space in each page lets `value = value + ...` be a HOT update (no index entries), also
-- for rows on pages that inserts filled: a correction's update took half the time in a measure.
-- Set again for databases made before it; it applies to pages written from now on.
ALTER TABLE stat_totals SET (fillfactor = 80);
CREATE INDEX IF NOT EXISTS stat_totals_leaders ON stat_totals (subject_kind, stat, season, season_type);

CREATE TABLE IF NOT EXISTS players (
    player_id  text PRIMARY KEY,
    name       text,
    team       text,
    position   text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (play, defender named on it), with the play's situation: the snaps and
-- pressures behind the defensive rankings. Partitioned by season like plays.
CREATE TABLE IF NOT EXISTS defender_plays (
    season       integer NOT NULL,
    play_id      text    NOT NULL,
    player_id    text    NOT NULL,
    team         text    NOT NULL,
    season_type  text    NOT NULL,
    week         integer NOT NULL,
    quarter      integer,
    down         integer,
    yards_to_go  integer,
    yardline_100 integer,
    offense      text,
    pressure     boolean NOT NULL,
    sacks        real    NOT NULL,
    PRIMARY KEY (season, play_id, player_id)
) PARTITION BY RANGE (season);

CREATE INDEX IF NOT EXISTS defender_plays_situation ON defender_plays (season, down, yards_to_go)
    INCLUDE (player_id, pressure, sacks);

ALTER TABLE analytics_play_contrib ALTER COLUMN contrib TYPE json;

-- The generation of each part of the data the answer cache knows (shared/answers.py): raised by
-- the store in every transaction that changed the aggregates, for its seasons and `all`.
CREATE TABLE IF NOT EXISTS analytics_generations (
    tag text   PRIMARY KEY,
    gen bigint NOT NULL
);

-- One row per play (deleted plays removed), with what EP/WP and the EPA and tendency answers
-- need: the situation, the score after the play, the outcome, the offensive players credited
-- on it (passer, rusher, receiver), and the play's values (shared/valuing.py writes them, a whole
-- game at a time: a play's values depend on its neighbours). Partitioned by season like plays.
CREATE TABLE IF NOT EXISTS analytics_plays (
    season        integer NOT NULL,
    play_id       text    NOT NULL,
    game_id       text    NOT NULL,
    home          text    NOT NULL,
    season_type   text    NOT NULL,
    week          integer NOT NULL,
    sequence      integer NOT NULL,
    quarter       integer NOT NULL,
    clock         text,
    down          integer,
    yards_to_go   integer,
    yardline_100  integer,
    offense       text,
    defense       text,
    play_type     text    NOT NULL,
    yards_gained  integer NOT NULL,
    touchdown     boolean NOT NULL,
    home_score    integer,
    away_score    integer,
    game_status   text,
    carriers      text[]  NOT NULL,  -- offensive players credited with a passing, rushing or receiving stat
    ep_before     double precision,
    ep_after      double precision,
    epa           double precision,
    wp_before     double precision,
    wp_after      double precision,
    value_model   text,
    PRIMARY KEY (season, play_id)
) PARTITION BY RANGE (season);

CREATE INDEX IF NOT EXISTS analytics_plays_game ON analytics_plays (game_id);

-- The games of analytics_plays and the EP/WP model that last valued each whole game (NULL: the
-- background pass values it).
CREATE TABLE IF NOT EXISTS analytics_games (
    game_id     text    PRIMARY KEY,
    season      integer NOT NULL,
    home        text    NOT NULL,
    away        text    NOT NULL,
    value_model text
);

-- Seasons moved to cold storage (`snapline archive`, shared/archive.py): their rows are gone from
-- the aggregates and the play copy; reads narrowed to them answer 410 season_archived.
CREATE TABLE IF NOT EXISTS analytics_archived_seasons (
    season      integer     PRIMARY KEY,
    location    text        NOT NULL,
    game_ids    text[]      NOT NULL DEFAULT '{}',
    archived_at timestamptz NOT NULL DEFAULT now()
);
