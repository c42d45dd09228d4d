"""The raw GHL tables, as Dagster sees them: landed data that the dbt models read.

Webhook ingest and the REST pulls write them, so they are declared as assets that those
jobs report materializations of (`raw_materializations`) rather than assets with a compute
function of their own. That keeps a long-running ingest or backfill run from marking them
"in progress", which would hold back the model refresh until the run ends.
"""

from collections.abc import Iterable, Iterator, Mapping

from dagster import AssetKey, AssetMaterialization, AssetSpec, MetadataValue

from trainu_dagster.ingest.apply import TABLES

# entity name in parsed changes -> the raw table it lands in
RAW_TABLES: dict[str, str] = {entity: table for entity, (table, _, _) in TABLES.items()}
# written with the appointments, in the same transaction (see ingest.apply)
START_TIMES = "ghl_appointment_start_times"

ghl_raw_tables = [
    AssetSpec(
        ["raw", table],
        group_name="raw",
        kinds={"postgres"},
        description=f"Latest GHL {entity} state, merged field by field by source time, "
        "from webhooks and REST pulls.",
    )
    for entity, table in RAW_TABLES.items()
] + [
    AssetSpec(
        ["raw", START_TIMES],
        group_name="raw",
        kinds={"postgres"},
        description="Every start time each GHL appointment was seen at (reschedules).",
    )
]


def raw_materializations(
    changes_by_entity: Mapping[str, int], metadata: Mapping[str, int | str]
) -> Iterator[AssetMaterialization]:
    """One materialization per raw table that received changes, with `metadata`."""
    for entity, count in changes_by_entity.items():
        if not count:
            continue
        tables: Iterable[str] = [RAW_TABLES[entity]]
        if entity == "appointment":
            tables = [RAW_TABLES[entity], START_TIMES]
        for table in tables:
            yield AssetMaterialization(
                asset_key=AssetKey(["raw", table]),
                metadata={"changes": MetadataValue.int(count), **metadata},
            )
