"""Thin Dagster assets, one module per stage of the flow; the logic lives in domain code."""
