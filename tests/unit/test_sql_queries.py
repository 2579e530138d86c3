"""The SQL each source sends: identifiers quoted, values bound, the right rows for each mode."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pymssql._mssql as mssql_driver
import pytest

from tidemark.connectors.base import KeyRange, StreamState
from tidemark.connectors.sql.cursor import cursor_filter
from tidemark.connectors.sql.mssql.source import MssqlDialect, catalog_queries
from tidemark.connectors.sql.mysql.source import MySQLDialect, columns_sql
from tidemark.connectors.sql.plan import ReadPlan
from tidemark.connectors.sql.postgres.read import settings_sql
from tidemark.connectors.sql.postgres.source import ADBC_DIALECT, PostgresDialect
from tidemark.connectors.sql.redshift.source import COLUMNS_SQL, RedshiftConfig, catalog_filters
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.events import StreamSpec, SyncMode

pytestmark = pytest.mark.unit

ID = SqlColumn("id", "bigint", pa.int64(), nullable=False)
WEIRD = SqlColumn('Se"le]ct`%s', "text", pa.string())
TS = SqlColumn("Updated At", "timestamp with time zone", pa.timestamp("us", tz="UTC"))
JSONB = SqlColumn("doc", "jsonb", pa.string(), select="{}::text")
TABLE = SqlTable("My Schema", "Order", (ID, WEIRD, TS, JSONB), primary_key=("id",))


def plan(mode: SyncMode = SyncMode.INCREMENTAL, state: StreamState | None = None,
         key_range: KeyRange | None = None, lookback: int | None = None) -> ReadPlan:
    spec = StreamSpec(name="My Schema.Order", sync_mode=mode, cursor_field="Updated At", lookback=lookback)
    return ReadPlan(table=TABLE, columns=TABLE.columns, cursor=cursor_filter(spec, state, TABLE),
                    order_by=TS if mode is not SyncMode.FULL_REFRESH else None, key_range=key_range)


STATE = StreamState(cursor_field="Updated At", cursor_value=datetime(2024, 3, 2, 10, tzinfo=UTC))


def test_postgres_quotes_identifiers_and_binds_values() -> None:
    sql, params = PostgresDialect().render(plan(state=STATE))
    assert sql == (
        'SELECT "id", "Se""le]ct`%%s", "Updated At", "doc"::text AS "doc" FROM "My Schema"."Order" '
        'WHERE "Updated At" >= CAST(%s AS timestamp with time zone) ORDER BY "My Schema"."Order"."Updated At"'
    )
    assert params == ["2024-03-02T10:00:00+00:00"]


def test_adbc_reads_bound_values_back_from_session_settings() -> None:
    sql, params = ADBC_DIALECT.render(plan(SyncMode.INCREMENTAL_APPEND, STATE, KeyRange(column="id", lower="10")))
    assert sql == (
        'SELECT "id", "Se""le]ct`%s", "Updated At", "doc"::text AS "doc" FROM "My Schema"."Order" '
        "WHERE \"Updated At\" > CAST(current_setting('tidemark.p0') AS timestamp with time zone) "
        "AND \"id\" >= CAST(current_setting('tidemark.p1') AS bigint) ORDER BY \"My Schema\".\"Order\".\"Updated At\""
    )
    assert params == ["2024-03-02T10:00:00+00:00", "10"]
    assert settings_sql(2) == "SELECT set_config('tidemark.p0', $1, false), set_config('tidemark.p1', $2, false)"


def test_adbc_reads_decimals_as_text_and_psycopg_natively() -> None:
    amount = SqlColumn("amount", "numeric(12,2)", pa.decimal128(12, 2))
    assert ADBC_DIALECT.select_expr(amount) == '"amount"::text AS "amount"'
    assert PostgresDialect().select_expr(amount) == '"amount"'
    # A type already read through a cast keeps its own cast.
    money = SqlColumn("price", "money", pa.decimal128(19, 2), select="{}::numeric(19,2)")
    assert ADBC_DIALECT.select_expr(money) == '"price"::numeric(19,2) AS "price"'


def test_full_refresh_has_no_filter_and_no_order() -> None:
    sql, params = PostgresDialect().render(plan(SyncMode.FULL_REFRESH, STATE))
    assert "WHERE" not in sql
    assert "ORDER BY" not in sql
    assert params == []


def test_mysql_backticks_and_naive_utc_parameters() -> None:
    sql, params = MySQLDialect().render(plan(state=STATE, key_range=KeyRange(column="id", lower="5", upper="9")))
    assert sql == (
        "SELECT `id`, `Se\"le]ct``%%s`, `Updated At`, `doc`::text AS `doc` FROM `My Schema`.`Order` "
        "WHERE `Updated At` >= %s AND `id` >= %s AND `id` < %s ORDER BY `My Schema`.`Order`.`Updated At`"
    )
    assert params == [datetime(2024, 3, 2, 10), 5, 9]


def test_mysql_catalog_query_binds_every_database() -> None:
    sql = columns_sql(["a", "b"], stream=True)
    assert "c.TABLE_SCHEMA IN (%s, %s)" in sql
    assert "CONCAT(c.TABLE_SCHEMA, '.', c.TABLE_NAME) = %s" in sql


def test_mssql_brackets_casts_and_writes_values_as_literals() -> None:
    dialect = MssqlDialect()
    sql, params = dialect.render(plan(state=STATE, lookback=3600))
    assert sql == (
        "SELECT [id], [Se\"le]]ct`%s], [Updated At], [doc]::text AS [doc] FROM [My Schema].[Order] "
        "WHERE [Updated At] >= CAST(N'2024-03-02T09:00:00+00:00' AS datetimeoffset(7)) "
        "ORDER BY [My Schema].[Order].[Updated At]"
    )
    assert params == []


def test_mssql_identifiers_holding_pymssql_placeholders_stay_identifiers() -> None:
    # pymssql substitutes `%(p0)s` anywhere in the text, brackets or not, so a statement with
    # parameters could have a value pasted into a column name: values are literals instead.
    hostile = SqlColumn("x%(p0)s]; DROP TABLE y; --", "int", pa.int64())
    key = SqlColumn("k'; DROP TABLE y; --", "nvarchar", pa.string())
    table = SqlTable("dbo", 'x"; DROP TABLE y; --', (hostile, key))
    spec = StreamSpec(name=table.stream, sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field=hostile.name)
    p = ReadPlan(table=table, columns=table.columns, cursor=cursor_filter(spec, StreamState(cursor_value=7), table),
                 key_range=KeyRange(column=key.name, lower="a'b"))
    sql, params = MssqlDialect().render(p)
    assert params == []
    assert sql == (
        "SELECT [x%(p0)s]]; DROP TABLE y; --], [k'; DROP TABLE y; --] FROM [dbo].[x\"; DROP TABLE y; --] "
        "WHERE [x%(p0)s]]; DROP TABLE y; --] > CAST(N'7' AS int) "
        "AND [k'; DROP TABLE y; --] >= CAST(N'a''b' AS nvarchar)"
    )
    # Sent as the source sends it (no parameters), the driver leaves the text as it is.
    assert mssql_driver.substitute_params(sql, None).decode() == sql


def test_mssql_catalog_queries_filter_by_schema_and_stream() -> None:
    columns, keys, params = catalog_queries(["dbo", "Sales"], "dbo.orders")
    assert "s.name IN (%(s0)s, %(s1)s)" in columns
    assert "s.name + '.' + o.name = %(stream)s" in keys
    assert "HAS_PERMS_BY_NAME" in columns
    assert params == {"s0": "dbo", "s1": "Sales", "stream": "dbo.orders"}


def test_redshift_catalog_reads_svv_columns() -> None:
    config = RedshiftConfig(host="h", database="dev", user="u", schemas=["public"])
    filters, params = catalog_filters(config, "public.orders")
    sql = COLUMNS_SQL.format(filters=filters)
    assert "FROM svv_columns c" in sql
    assert "JOIN svv_tables t" in sql
    assert "c.table_schema IN (%s)" in sql
    assert params == ["public", "public.orders"]


def test_decimal_cursor_binds_exactly() -> None:
    amount = SqlColumn("amount", "numeric(12,2)", pa.decimal128(12, 2))
    table = SqlTable("s", "t", (amount,))
    spec = StreamSpec(name="s.t", sync_mode=SyncMode.INCREMENTAL_APPEND, cursor_field="amount")
    p = ReadPlan(table=table, columns=(amount,),
                 cursor=cursor_filter(spec, StreamState(cursor_value="10.05"), table), order_by=amount)
    assert PostgresDialect().render(p)[1] == ["10.05"]
    assert MySQLDialect().render(p)[1] == [Decimal("10.05")]
