"""Paired datasets on disk: the public names in one place.

The format (``dataset.json``, ``metadata.jsonl``, ``source/``, ``edited/``) is described in
`e2gan.data.pair_format`; the code is split by job:

- `e2gan.data.pair_format`  the records, id and split rules, parsing the files
- `e2gan.data.reader`       `PairDataset`: open and validate a dataset, read pairs on demand
- `e2gan.data.writer`       `PairDatasetWriter`: append pairs crash-safely, repair on reopen
- `e2gan.data.shards`       several processes writing one dataset, and merging their files
- `e2gan.data.subsets`      whole new datasets written atomically (imports, subsets, exports)

Import from here (``from e2gan.data.dataset import PairDataset``) unless you need a module's
internals.
"""

from e2gan.data.pair_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_FOLDERS,
    INFO_FILE,
    METADATA_FILE,
    SPLITS,
    DatasetInfo,
    PairRecord,
    assign_splits,
    check_pair_id,
    now_iso,
    safe_pair_id,
    unique_pair_ids,
)
from e2gan.data.reader import PairDataset
from e2gan.data.shards import SHARD_METADATA_PREFIX, merge_metadata_shards, shard_metadata_paths
from e2gan.data.subsets import PARTIAL_SUFFIX, atomic_dataset_writer, partial_path, replace_folder, write_subset
from e2gan.data.writer import PairDatasetWriter

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "IMAGE_FOLDERS", "INFO_FILE", "METADATA_FILE", "PARTIAL_SUFFIX",
    "SHARD_METADATA_PREFIX", "SPLITS", "DatasetInfo", "PairDataset", "PairDatasetWriter",
    "PairRecord", "assign_splits", "atomic_dataset_writer", "check_pair_id", "merge_metadata_shards",
    "now_iso", "partial_path", "replace_folder", "safe_pair_id", "shard_metadata_paths",
    "unique_pair_ids", "write_subset",
]
