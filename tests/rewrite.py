#!/usr/bin/env python3
"""Reads a Parquet file written by a stage and writes it back with another tool's defaults, as
a user editing it in a notebook would. Used by tests/reliability.rs (the interop matrix):

    python3 tests/rewrite.py pandas work/captions.parquet

Tools: pyarrow (pq.write_table: snappy, our metadata kept), pandas (to_parquet: snappy,
large_string on pandas 3, the `split` column as a categorical, i.e. dictionary-encoded),
duckdb (COPY ... TO: snappy, embeddings as plain lists), polars (write_parquet: zstd,
large_string and large_list). The file is replaced in place.
"""
import os
import sys
from pathlib import Path


def rewrite(tool, path):
    temp = path.with_name(f"{path.name}.{tool}.parquet")
    if tool == "pyarrow":
        import pyarrow.parquet as pq

        pq.write_table(pq.read_table(path), temp)
    elif tool == "pandas":
        import pandas as pd

        frame = pd.read_parquet(path)
        if "split" in frame.columns:
            frame["split"] = frame["split"].astype("category")
        frame.to_parquet(temp)
    elif tool == "duckdb":
        import duckdb

        duckdb.sql(f"COPY (SELECT * FROM read_parquet('{path}')) TO '{temp}' (FORMAT parquet)")
    elif tool == "polars":
        import polars as pl

        pl.read_parquet(path).write_parquet(temp)
    else:
        sys.exit(f"unknown tool {tool}")
    os.replace(temp, path)


if __name__ == "__main__":
    rewrite(sys.argv[1], Path(sys.argv[2]))
