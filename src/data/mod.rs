//! Data pipeline: ingest, held-out split, tokenization into Megatron shards, mixture sampling, packing.
