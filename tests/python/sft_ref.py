"""The SFT tokenization convention, written independently of cptc with the `tokenizers` Python
package: a question-answer record is its prompt (`Question: ...\nAnswer: `) encoded, then its
answer encoded, then EOS; the targets are the answer's tokens and the EOS."""

import json
import sys

from tokenizers import Tokenizer


def cmd_encode(tokenizer, jsonl, n, eos):
    tok = Tokenizer.from_file(tokenizer)
    eos = int(eos)
    out = []
    with open(jsonl, encoding="utf-8") as f:
        for line in list(f)[: int(n)]:
            r = json.loads(line)
            prompt = tok.encode(f"Question: {r['question']}\nAnswer: ", add_special_tokens=False).ids
            answer = tok.encode(r["answer"], add_special_tokens=False).ids
            out.append({"ids": prompt + answer + [eos], "mask": [0] * len(prompt) + [1] * (len(answer) + 1),
                        "answer_bytes": len(r["answer"].encode("utf-8"))})
    print(json.dumps(out))


COMMANDS = {"encode": cmd_encode}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
