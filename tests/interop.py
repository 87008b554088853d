#!/usr/bin/env python3
"""Opens Parquet files written by the stages with pyarrow and checks the contract schemas
(the README's Outputs section) and the provenance metadata. Used by tests/stages.rs; also handy by hand:

    python3 tests/interop.py data/demo/captions.parquet data/demo/features data/demo/grid
"""
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SCHEMAS = {
    "captions": {"image": pa.string(), "caption_idx": pa.uint8(), "split": pa.string(), "raw": pa.string(), "clean": pa.string()},
    "vocab": {"token_id": pa.uint32(), "token": pa.string(), "count": pa.uint64()},
    "tokens": {"image": pa.string(), "caption_idx": pa.uint8(), "split": pa.string(), "token_ids": pa.list_(pa.uint32())},
    "features": {"image": pa.string(), "feature": pa.list_(pa.float32(), 2048)},
    "predictions": {"image": pa.string(), "split": pa.string(), "caption": pa.string(), "log_prob": pa.float32(), "decoder": pa.string()},
    # The grid's list size comes from its shape metadata (2048 x 7 x 7 for a 224 crop).
    "grid": {"image": pa.string(), "grid": None},
    "attention": {"image": pa.string(), "position": pa.uint32(), "word": pa.string(), "weights": pa.list_(pa.float32())},
}
STAGES = {"captions": "cleaner", "vocab": "tokenizer", "tokens": "tokenizer", "features": "featurizer", "predictions": "evaluator",
          "grid": "featurizer", "attention": "evaluator"}


def table_kind(path):
    if path.is_dir():
        return path.name if path.name in ("features", "grid") else "features"
    if path.parent.name in ("features", "grid"):
        return path.parent.name
    return path.stem


def check_grid(path, table, metadata):
    """The shape metadata matches the list size, the weights are finite, and each image's grid
    averages over its regions to its pooled vector in features/ (the same network pass)."""
    channels, height, width = map(int, metadata["imagecaptioning.grid_shape"].split(","))
    size = table.schema.field("grid").type.list_size
    assert size == channels * height * width, f"{path}: list size {size} vs shape {channels},{height},{width}"
    features = path.parent / "features" if path.is_dir() else path.parent.parent / "features"
    pooled = ds.dataset(str(features), format="parquet").to_table()
    row_of = {name: i for i, name in enumerate(pooled.column("image").to_pylist())}
    grids = table.column("grid").combine_chunks().flatten().to_numpy().reshape(-1, channels, height * width)
    for i, name in enumerate(table.column("image").to_pylist()[:5]):
        expected = pooled.column("feature")[row_of[name]].values.to_numpy()
        mean = grids[i].mean(axis=1)
        assert np.allclose(mean, expected, rtol=1e-4, atol=1e-5), f"{path}: {name}: grid mean differs from its pooled vector"


def check(path):
    path = Path(path)
    table_name = table_kind(path)
    expected = SCHEMAS[table_name]
    if path.is_dir():
        table = ds.dataset(str(path), format="parquet").to_table()
        meta_file = sorted(path.glob("part-*.parquet"))[0]
    else:
        table = pq.read_table(path)
        meta_file = path
    for name, dtype in expected.items():
        field = table.schema.field(name)
        if dtype is None:
            assert pa.types.is_fixed_size_list(field.type) and field.type.value_type == pa.float32(), f"{path}: {name} is {field.type}"
            continue
        # Nested field names and nullability differ between writers; compare the value types.
        actual = field.type
        if pa.types.is_list(dtype) or pa.types.is_fixed_size_list(dtype):
            assert type(actual) is type(dtype), f"{path}: {name} is {actual}, expected {dtype}"
            assert actual.value_type == dtype.value_type, f"{path}: {name} is {actual}, expected {dtype}"
            if pa.types.is_fixed_size_list(dtype):
                assert actual.list_size == dtype.list_size, f"{path}: {name} is {actual}, expected {dtype}"
        else:
            assert actual == dtype, f"{path}: {name} is {actual}, expected {dtype}"
        assert table.column(name).null_count == 0, f"{path}: {name} has nulls"
    metadata = {k.decode(): v.decode() for k, v in (pq.read_metadata(meta_file).metadata or {}).items()}
    assert metadata.get("imagecaptioning.stage") == STAGES[table_name], f"{path}: stage metadata {metadata}"
    assert metadata.get("imagecaptioning.schema_version") == "1", f"{path}: schema_version {metadata}"
    assert "imagecaptioning.config" in metadata and "imagecaptioning.inputs" in metadata
    if table_name == "grid":
        check_grid(path, table, metadata)
    print(f"ok {path}: {table.num_rows} rows")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        check(p)
