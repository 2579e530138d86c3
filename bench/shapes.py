"""The benchmark's table shapes: how each is created and filled, in PostgreSQL and (one) in MariaDB.

Every shape has a ``bigint`` key ``id`` and an indexed ``updated_at`` cursor. Except in ``narrow``
(the first round's table, kept for comparison), ``updated_at`` is random: it follows neither the
key nor the physical order, as on a table whose rows are updated, so an incremental read that
sorted by the cursor would pay for it here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgtable import CREATE as NARROW_CREATE
from pgtable import FILL as NARROW_FILL
from pgtable import TABLE as NARROW_TABLE

# A random instant in the ~3 years from 2023-01-01 (all in the past: changed rows get now()), to the microsecond.
RANDOM_TS = "timestamptz '2023-01-01 00:00:00+00' + random() * interval '1000 days'"


@dataclass(frozen=True)
class Shape:
    name: str
    table: str
    create: str
    fill: str  # parameters: %(low)s, %(high)s
    what: str


def _pg(name: str, columns: str, values: str, what: str) -> Shape:
    table = f"bench_{name}"
    create = f"CREATE TABLE {table} (\n    id bigint PRIMARY KEY,\n    updated_at timestamptz NOT NULL,\n{columns}\n)"
    fill = (f"INSERT INTO {table} SELECT g, {RANDOM_TS},\n{values}\n"
            "FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g")
    return Shape(name, table, create, fill, what)


WIDE = _pg("wide", """    n integer NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    score double precision NOT NULL,
    created_at timestamptz NOT NULL,
    active boolean NOT NULL,
    payload jsonb NOT NULL,
    note text""", """    ((g * 7919) %% 100000)::int,
    md5(g::text) || left(md5((g + 1)::text), 8),
    md5((g * 3)::text) || '@example.com',
    round((random() * 1000000)::numeric, 2),
    random() * 1000,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
    random() < 0.5,
    jsonb_build_object('v', jsonb_build_array(g %% 10, g %% 1000, random())),
    CASE WHEN g %% 2 = 0 THEN NULL ELSE md5(g::text) END""",
           "11 columns: bigint key, int, two ~40-char high-cardinality texts, random numeric(12,2), random "
           "double, two timestamptz (the cursor random), boolean, a jsonb object with a 3-number array, a "
           "text NULL in half the rows")

TEXT = _pg("text", """    title text NOT NULL,
    body text NOT NULL,
    summary text NOT NULL,
    comment text""", """    'title ' || md5(g::text),
    repeat(md5((g * 7)::text) || ' ', 12),
    repeat(md5((g * 11)::text) || ' ', 5),
    CASE WHEN g %% 3 = 0 THEN NULL ELSE repeat(md5((g * 13)::text), 3) END""",
           "text-heavy: a ~40-char title, a ~400-char body, a ~165-char summary, a ~100-char comment "
           "(NULL in a third)")

NUMERIC = _pg("numeric", """    q1 numeric(18, 4) NOT NULL,
    q2 numeric(18, 4) NOT NULL,
    q3 numeric(12, 2) NOT NULL,
    q4 numeric(38, 10),
    d1 double precision NOT NULL,
    d2 double precision NOT NULL,
    d3 double precision NOT NULL,
    f1 real NOT NULL,
    i1 integer NOT NULL,
    i2 bigint NOT NULL""", """    round((random() * 1e12)::numeric, 4),
    round((random() * 1e6)::numeric, 4),
    round((random() * 1e8)::numeric, 2),
    CASE WHEN g %% 4 = 0 THEN NULL ELSE round((random() * 1e20)::numeric, 10) END,
    random(), random() * 1e9, random() - 0.5,
    (random() * 1000)::real,
    (g %% 2147483647)::int,
    g * 1000003""",
              "numeric-heavy: four numeric (18,4 / 18,4 / 12,2 / 38,10 NULL in a quarter), three double, a real, "
              "an int, a bigint")

JSONB = _pg("jsonb", """    doc jsonb NOT NULL,
    tags jsonb NOT NULL,
    meta jsonb""", """    jsonb_build_object('id', g, 'kind', (ARRAY['order', 'refund', 'visit'])[1 + g %% 3],
        'customer', jsonb_build_object('name', md5(g::text), 'tier', g %% 5, 'score', random()),
        'lines', jsonb_build_array(jsonb_build_object('sku', g %% 997, 'qty', 1 + g %% 7, 'price', random() * 100),
                                   jsonb_build_object('sku', g %% 991, 'qty', 1 + g %% 3, 'price', random() * 10))),
    jsonb_build_array('a', md5((g * 3)::text), g %% 100),
    CASE WHEN g %% 2 = 0 THEN NULL ELSE jsonb_build_object('source', 'web', 'ip', '10.0.' || (g %% 255)) END""",
            "jsonb-heavy: a nested ~330-byte document, a 3-element array, a small object NULL in half")

_SIXTY_TYPES = [("integer", "(g * {k} %% 100000)::int"), ("double precision", "random() * {k}"),
                ("text", "left(md5((g * {k})::text), 12)"), ("numeric(10, 2)", "round((random() * {k}00)::numeric, 2)"),
                ("boolean", "(g + {k}) %% 3 = 0"), ("timestamptz", RANDOM_TS)]
_SIXTY = [(f"c{k:02d}", *_SIXTY_TYPES[k % len(_SIXTY_TYPES)]) for k in range(1, 59)]
SIXTY = _pg("cols60", ",\n".join(f"    {name} {typ}" for name, typ, _ in _SIXTY),
            ",\n".join(f"    {expr.format(k=k + 1)}" for k, (_, _, expr) in enumerate(_SIXTY)),
            "60 columns: id, updated_at and 58 more cycling int, double, 12-char text, numeric(10,2), boolean, "
            "timestamptz")

NARROW = Shape("narrow", NARROW_TABLE, NARROW_CREATE, NARROW_FILL,
               "the first round's 7 columns (bigint key, text, numeric, timestamptz cursor in key order, boolean, "
               "jsonb, text NULL in half)")

PG_SHAPES = {s.name: s for s in (NARROW, WIDE, TEXT, NUMERIC, JSONB, SIXTY)}

# The same 11-column shape in MariaDB (RAND(seed) keeps it reproducible; `seq_1_to_N` is MariaDB's sequence engine).
MYSQL_TABLE = "bench_wide"
MYSQL_CREATE = f"""CREATE TABLE {MYSQL_TABLE} (
    id bigint PRIMARY KEY, n int NOT NULL, name varchar(64) NOT NULL, email varchar(64) NOT NULL,
    amount decimal(12, 2) NOT NULL, score double NOT NULL, created_at datetime(6) NOT NULL,
    updated_at datetime(6) NOT NULL, active tinyint(1) NOT NULL, payload json NOT NULL, note text,
    KEY {MYSQL_TABLE}_updated_at (updated_at)
)"""
MYSQL_FILL = f"""INSERT INTO {MYSQL_TABLE}
SELECT seq, (seq * 7919) % 100000, CONCAT(MD5(seq), LEFT(MD5(seq + 1), 8)), CONCAT(MD5(seq * 3), '@example.com'),
       ROUND(RAND(seq) * 1000000, 2), RAND(seq + 1) * 1000, '2024-01-01' + INTERVAL seq SECOND,
       '2023-01-01' + INTERVAL FLOOR(RAND(seq + 2) * 86400000) SECOND + INTERVAL FLOOR(RAND(seq + 5) * 1000000)
           MICROSECOND, RAND(seq + 3) < 0.5,
       JSON_OBJECT('v', JSON_ARRAY(seq % 10, seq % 1000, RAND(seq + 4))),
       IF(seq % 2 = 0, NULL, MD5(seq))
FROM seq_{{low}}_to_{{high}}"""  # noqa: S608 - constant identifiers and integer bounds
