"""Serves one reference module's subcommands to a test process, so that torch and transformers
are imported once per test binary rather than once per call (each import is seconds of CI).

  serve.py MODULE      reads one JSON array per line on stdin, [subcommand, args...], runs
                       MODULE.COMMANDS[subcommand](*args) and answers one JSON line:
                       {"ok": true, "stdout": ...} or {"ok": false, "error": traceback + stderr}

Every subcommand seeds what it draws, so an answer does not depend on the calls before it.
"""

import contextlib
import importlib
import io
import json
import sys
import traceback

import torch


def main():
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    module = importlib.import_module(sys.argv[1])
    torch.set_num_threads(1)
    replies = sys.stdout
    for line in sys.stdin:
        args = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                module.COMMANDS[args[0]](*args[1:])
            reply = {"ok": True, "stdout": out.getvalue()}
        except BaseException:  # SystemExit too: one failed call must not end the server
            reply = {"ok": False, "error": traceback.format_exc() + err.getvalue()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
