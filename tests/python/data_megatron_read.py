"""Reads cptc token shards with megatron-core's own IndexedDataset and prints what it sees.

Usage: data_megatron_read.py PREFIX [PREFIX...]
Prints one JSON object per prefix: dtype, sequence and document counts, the document indices and
every sequence's ids, for the Rust test `data_shard` to compare with what it wrote.
"""

import json
import sys

from megatron.core.datasets.indexed_dataset import IndexedDataset


def main() -> None:
    for prefix in sys.argv[1:]:
        ds = IndexedDataset(prefix, mmap=True)
        out = {
            "dtype": str(ds.index.dtype.__name__),
            "sequences": len(ds),
            "document_indices": [int(x) for x in ds.document_indices],
            "ids": [[int(t) for t in ds[i]] for i in range(len(ds))],
            "first_partial": [int(t) for t in ds.get(0, offset=1, length=3)] if len(ds) else [],
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
