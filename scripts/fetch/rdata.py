"""Minimal reader for R's serialization format and lazy-load databases (.rdx/.rdb).

Only what is needed to pull data objects (character/numeric vectors, lists, data
frames) out of an installed package's `data/Rdata.rdb` without R. Supports the XDR
('X') binary format, versions 2 and 3, and blobs compressed with zlib, bzip2 or xz.

Reference: R sources, src/main/serialize.c (InItem/ReadItem) and
src/library/base/R/lazyload.R (lazyLoadDBfetch).
"""

import bz2
import gzip
import lzma
import struct
import zlib

NA_INTEGER = -(2**31)

# SEXP type codes (Rinternals.h) and pseudo-types used only by serialize.c.
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP = 7, 8, 9, 10, 13, 14, 15
STRSXP, DOTSXP, VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP = 16, 17, 19, 20, 21, 22, 23
RAWSXP, S4SXP = 24, 25
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP = 255, 254, 253, 252
MISSINGARG_SXP, BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP = 251, 250, 249, 248
PERSISTSXP, EMPTYENV_SXP, BASEENV_SXP, ATTRLANGSXP, ATTRLISTSXP = 247, 242, 241, 240, 239
ALTREP_SXP = 238

LATIN1_MASK, UTF8_MASK, BYTES_MASK, ASCII_MASK = 1 << 2, 1 << 3, 1 << 1, 1 << 6


class RFormatError(ValueError):
    pass


class RSymbol(str):
    """An R symbol (a name); a str subclass so it compares with plain strings."""


class RObject:
    """A generic R value: `type` is the SEXP type, `value` the payload, `attrs` a dict."""

    __slots__ = ("type", "value", "attrs")

    def __init__(self, type_, value, attrs=None):
        self.type = type_
        self.value = value
        self.attrs = attrs or {}

    def __repr__(self):
        v = self.value
        if isinstance(v, list) and len(v) > 4:
            v = f"[{len(v)} items]"
        return f"RObject(type={self.type}, value={v!r}, attrs={list(self.attrs)})"

    def names(self):
        n = self.attrs.get("names")
        return list(n.value) if isinstance(n, RObject) else None


class _Reader:
    def __init__(self, data):
        self.b = data
        self.pos = 0
        self.refs = []
        self.native_encoding = "latin-1"

    def take(self, n):
        if self.pos + n > len(self.b):
            raise RFormatError("truncated R serialization stream")
        out = self.b[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = struct.unpack(">II", self.take(8))
            n = (hi << 32) | lo
        return n

    def header(self):
        fmt = self.take(2)
        if fmt != b"X\n":
            raise RFormatError(f"unsupported R serialization format {fmt!r} (only XDR 'X')")
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader R version
        if version == 3:
            n = self.int()
            self.native_encoding = self.take(n).decode("ascii", "replace")
        elif version != 2:
            raise RFormatError(f"unsupported R serialization version {version}")

    def charsxp(self, levels):
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.take(n)
        if levels & (UTF8_MASK | ASCII_MASK):
            return raw.decode("utf-8")
        if levels & LATIN1_MASK:
            return raw.decode("latin-1")
        if levels & BYTES_MASK:
            return raw.decode("latin-1")
        enc = self.native_encoding.lower()
        try:
            return raw.decode("utf-8" if enc in ("utf-8", "utf8") else enc)
        except (LookupError, UnicodeDecodeError):
            return raw.decode("latin-1")

    def attributes_pairlist(self):
        """Read an attribute pairlist and return it as a dict."""
        pl = self.item()
        return pairlist_to_dict(pl)

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))

        if t == NILVALUE_SXP:
            return None
        if t in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP,
                 MISSINGARG_SXP, BASENAMESPACE_SXP):
            return RObject(t, None)
        if t == REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == PERSISTSXP:
            self.int()  # 0
            n = self.int()
            names = [self.item() for _ in range(n)]
            obj = RObject(PERSISTSXP, names)
            self.refs.append(obj)
            return obj
        if t == SYMSXP:
            c = self.item()  # a CHARSXP
            sym = RSymbol(c if isinstance(c, str) else "")
            self.refs.append(sym)
            return sym
        if t in (PACKAGESXP, NAMESPACESXP):
            self.int()
            n = self.int()
            info = [self.item() for _ in range(n)]
            obj = RObject(t, info)
            self.refs.append(obj)
            return obj
        if t == ENVSXP:
            locked = self.int()
            obj = RObject(ENVSXP, {"locked": locked})
            self.refs.append(obj)
            obj.value["enclos"] = self.item()
            obj.value["frame"] = self.item()
            obj.value["hashtab"] = self.item()
            obj.attrs = pairlist_to_dict(self.item())
            return obj
        if t in (LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLANGSXP, ATTRLISTSXP):
            # Pairlist-like: read iteratively along the CDR to avoid deep recursion.
            cells = []
            while True:
                attrs = self.attributes_pairlist() if has_attr else {}
                tag = self.item() if has_tag else None
                car = self.item()
                cells.append((tag, car, attrs))
                nflags = self.int()
                nt = nflags & 0xFF
                if nt in (LISTSXP, LANGSXP, ATTRLISTSXP, ATTRLANGSXP) and t in (LISTSXP, ATTRLISTSXP, LANGSXP, ATTRLANGSXP):
                    has_attr = bool(nflags & (1 << 9))
                    has_tag = bool(nflags & (1 << 10))
                    continue
                # Not a pairlist cell: push the flags back and read the CDR as an item.
                self.pos -= 4
                cdr = self.item()
                break
            return RObject(LISTSXP if t != LANGSXP else LANGSXP, cells + ([] if cdr is None else [(None, cdr, {})]))
        if t == CHARSXP:
            return self.charsxp(levels)
        if t in (LGLSXP, INTSXP):
            n = self.length()
            vals = list(struct.unpack(f">{n}i", self.take(4 * n)))
            vals = [None if v == NA_INTEGER else v for v in vals]
            if t == LGLSXP:
                vals = [None if v is None else bool(v) for v in vals]
            obj = RObject(t, vals)
        elif t == REALSXP:
            n = self.length()
            obj = RObject(t, list(struct.unpack(f">{n}d", self.take(8 * n))))
        elif t == CPLXSXP:
            n = self.length()
            v = struct.unpack(f">{2 * n}d", self.take(16 * n))
            obj = RObject(t, [complex(v[2 * i], v[2 * i + 1]) for i in range(n)])
        elif t == STRSXP:
            n = self.length()
            vals = []
            for _ in range(n):
                f = self.int()
                if f & 0xFF != CHARSXP:
                    raise RFormatError(f"STRSXP element of type {f & 0xFF}")
                vals.append(self.charsxp(f >> 12))
            obj = RObject(t, vals)
        elif t in (VECSXP, EXPRSXP):
            n = self.length()
            obj = RObject(t, [self.item() for _ in range(n)])
        elif t == RAWSXP:
            n = self.length()
            obj = RObject(t, self.take(n))
        elif t == S4SXP:
            obj = RObject(t, None)
        elif t == ALTREP_SXP:
            info = self.item()
            state = self.item()
            attr = self.item()
            obj = _altrep(info, state)
            obj.attrs = pairlist_to_dict(attr)
            return obj
        else:
            raise RFormatError(f"unsupported SEXP type {t} in R serialization stream")
        if has_attr:
            obj.attrs = self.attributes_pairlist()
        return obj


def _altrep(info, state):
    cls = str(info.value[0][1]) if isinstance(info, RObject) and info.value else "?"
    if cls == "compact_intseq":
        n, start, step = state.value
        return RObject(INTSXP, [int(start + i * step) for i in range(int(n))])
    if cls == "compact_realseq":
        n, start, step = state.value
        return RObject(REALSXP, [start + i * step for i in range(int(n))])
    if cls in ("deferred_string",):
        # state is a pairlist (arg . info); arg is the original numeric vector.
        arg = state.value[0][1]
        return RObject(STRSXP, [None if v is None else _num_to_str(v) for v in arg.value])
    if cls in ("wrap_integer", "wrap_real", "wrap_string", "wrap_logical", "wrap_list",
               "wrap_complex", "wrap_raw"):
        return state.value[0][1] if state.type == LISTSXP else state.value[0]
    raise RFormatError(f"unsupported ALTREP class {cls}")


def _num_to_str(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def pairlist_to_dict(pl):
    out = {}
    if isinstance(pl, RObject) and pl.type == LISTSXP:
        for tag, car, _ in pl.value:
            if tag is not None:
                out[str(tag)] = car
    return out


def unserialize(data):
    """Unserialize an R object from XDR bytes (already decompressed)."""
    r = _Reader(data)
    r.header()
    return r.item()


def read_rds(path):
    """Read an .rds file (gzip, bzip2, xz or uncompressed)."""
    with open(path, "rb") as f:
        raw = f.read()
    return unserialize(_decompress_file(raw))


def _decompress_file(raw):
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    if raw[:2] == b"x\x9c" or raw[:2] == b"x\xda" or raw[:2] == b"x\x01":
        return zlib.decompress(raw)
    return raw


def _decompress_blob(blob):
    """A lazy-load DB blob: 4-byte big-endian length, then the compressed payload.

    Type 1 (zlib) has no type byte; types 2/3 (bzip2/xz) store a byte '2'/'X'/'0' after the
    length (lazyLoadDBinsertValue with compress = 2 or 3).
    """
    if len(blob) < 5:
        raise RFormatError("lazy-load blob too short")
    outlen = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    kind = body[:1]
    if kind == b"2":
        out = bz2.decompress(body[1:])
    elif kind == b"X":
        out = lzma.decompress(body[1:])
    elif kind == b"0":
        out = body[1:]
    else:
        out = zlib.decompress(body)
    if len(out) != outlen:
        raise RFormatError(f"lazy-load blob inflated to {len(out)} bytes, header says {outlen}")
    return out


def read_lazyload_db(rdx, rdb, names=None):
    """Return {name: RObject} for the variables of a lazy-load DB (optionally only `names`).

    `rdx` and `rdb` are the contents (bytes) of Rdata.rdx and Rdata.rdb, or paths to them."""
    if isinstance(rdx, str):
        with open(rdx, "rb") as f:
            rdx = f.read()
    if isinstance(rdb, str):
        with open(rdb, "rb") as f:
            rdb = f.read()
    index = unserialize(_decompress_file(rdx))
    if not (isinstance(index, RObject) and index.type == VECSXP):
        raise RFormatError("lazy-load index (.rdx) is not a list")
    parts = dict(zip(index.names() or [], index.value))
    variables = parts.get("variables")
    if variables is None:
        raise RFormatError("lazy-load index (.rdx) has no 'variables'")
    out = {}
    for name, key in zip(variables.names(), variables.value):
        if names is not None and name not in names:
            continue
        off, ln = (int(x) for x in key.value)
        if off + ln > len(rdb):
            raise RFormatError(f"lazy-load entry {name} lies outside the .rdb file")
        out[name] = unserialize(_decompress_blob(rdb[off:off + ln]))
    if names is not None:
        missing = sorted(set(names) - set(out))
        if missing:
            raise RFormatError(f"objects not found in lazy-load DB: {', '.join(missing)}")
    return out
