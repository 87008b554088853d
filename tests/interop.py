#!/usr/bin/env python3
"""Opens Parquet files written by the stages with pyarrow and checks the contract schemas
(design.md) and the provenance metadata. Used by tests/stages.rs; also handy by hand:

    python3 tests/interop.py data/demo/captions.parquet data/demo/features
"""
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SCHEMAS = {
    "captions": {"image": pa.string(), "caption_idx": pa.uint8(), "split": pa.string(), "raw": pa.string(), "clean": pa.string()},
    "vocab": {"token_id": pa.uint32(), "token": pa.string(), "count": pa.uint64()},
    "tokens": {"image": pa.string(), "caption_idx": pa.uint8(), "split": pa.string(), "token_ids": pa.list_(pa.uint32())},
    "features": {"image": pa.string(), "feature": pa.list_(pa.float32(), 2048)},
    "predictions": {"image": pa.string(), "split": pa.string(), "caption": pa.string(), "log_prob": pa.float32(), "decoder": pa.string()},
}
STAGES = {"captions": "cleaner", "vocab": "tokenizer", "tokens": "tokenizer", "features": "featurizer", "predictions": "evaluator"}


def check(path):
    path = Path(path)
    table_name = "features" if path.is_dir() or path.parent.name == "features" else path.stem
    expected = SCHEMAS[table_name]
    if path.is_dir():
        table = ds.dataset(str(path), format="parquet").to_table()
        meta_file = sorted(path.glob("part-*.parquet"))[0]
    else:
        table = pq.read_table(path)
        meta_file = path
    for name, dtype in expected.items():
        field = table.schema.field(name)
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
    print(f"ok {path}: {table.num_rows} rows")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        check(p)
