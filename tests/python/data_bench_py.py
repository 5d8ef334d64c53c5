"""The Python pipeline users run today, as the benchmark's baseline: HF `tokenizers` batch
encoding plus numpy writes of a Megatron-style token file.

Usage: data_bench_py.py TOKENIZER_JSON CORPUS_JSONL OUT_PREFIX EOS_ID
Prints one JSON line: bytes of text, tokens, wall and CPU seconds (all threads), MB/s.
"""

import json
import sys
import time

import numpy as np
from tokenizers import Tokenizer


def main() -> None:
    tok_path, corpus, prefix, eos = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tok = Tokenizer.from_file(tok_path)
    dtype = np.uint16 if tok.get_vocab_size() < 65500 else np.int32
    t0 = time.perf_counter()
    c0 = time.process_time()
    nbytes = 0
    ntokens = 0
    lengths = []
    batch, batch_bytes = [], 0
    with open(corpus, encoding="utf-8") as f, open(prefix + ".bin", "wb") as out:

        def flush() -> None:
            nonlocal ntokens
            for enc in tok.encode_batch(batch, add_special_tokens=False):
                ids = np.array(enc.ids + [eos], dtype=dtype)
                ids.tofile(out)
                lengths.append(len(ids))
                ntokens += len(ids)

        for line in f:
            text = json.loads(line)["text"]
            nbytes += len(text.encode("utf-8"))
            batch.append(text)
            batch_bytes += len(text)
            if batch_bytes >= 8 << 20:
                flush()
                batch, batch_bytes = [], 0
        if batch:
            flush()
    np.array(lengths, dtype=np.int32).tofile(prefix + ".lengths")
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    out = {"bytes": nbytes, "tokens": ntokens, "seconds": dt, "cpu_seconds": cpu, "mb_s": nbytes / 1e6 / dt}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
