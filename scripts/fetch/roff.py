"""roff/man (and a little mdoc) to plain text, as nroff would show it, minus layout.

Handles the man macros, pod2man/help2man preambles (string definitions, conditionals,
macro definitions), font and size escapes, special characters, tables (tbl) and the common
mdoc macros. Unknown requests are dropped; unknown macros keep their arguments as text.
"""

import re

SPECIAL = {
    "em": "—", "en": "–", "hy": "-", "mi": "-", "bu": "•", "co": "©", "rg": "®", "tm": "™",
    "lq": "“", "rq": "”", "oq": "‘", "cq": "’", "aq": "'", "dq": '"', "ga": "`", "aa": "´",
    "ti": "~", "ha": "^", "rs": "\\", "sl": "/", "bv": "|", "or": "|", "ba": "|", "br": "|",
    "ul": "_", "ru": "_", "pl": "+", "eq": "=", "**": "*", "+-": "±", "mu": "×", "di": "÷",
    "de": "°", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "da": "↓", "ua": "↑",
    "sc": "§", "dg": "†", "dd": "‡", "pd": "∂", "*p": "π", "*b": "β", "*a": "α", "*m": "μ",
    "*W": "Ω", "ct": "¢", "Po": "£", "Ye": "¥", "Eu": "€", "ps": "¶", "fm": "′", "sd": "″",
    "lh": "☜", "rh": "☞", "ci": "○", "sq": "□", "OK": "✓", "at": "@", "sh": "#", "Do": "$",
    "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "⟨", "ra": "⟩", "Fo": "«", "Fc": "»",
    "fo": "‹", "fc": "›", "r!": "¡", "r?": "¿", "ss": "ß", ":a": "ä", ":o": "ö", ":u": "ü",
    "'e": "é", "`e": "è", "^e": "ê", "'a": "á", "`a": "à", ",c": "ç", "~n": "ñ", "12": "½",
    "14": "¼", "34": "¾", "S1": "¹", "S2": "²", "S3": "³", "no": "¬", "if": "∞", "md": "·",
    "pc": "·", "tno": "¬", "lz": "◊", "en-dash": "–", "nbsp": " ",
}
# Strings pod2man/man define for nroff; fixed values so quotes come out right.
PRESET_STRINGS = {
    "lq": "“", "rq": "”", "R": "®", "Tm": "™", "--": "—", "PI": "π", 'L"': '"', 'R"': '"',
    "C`": '"', "C'": '"', "C+": "C++", "Aq": "'", "S": "", "Sp": "", "Ye": "", "Lq": '"',
    "Rq": '"', "Ba": "|",
}

SKIP_REQUESTS = {
    "ad", "na", "hy", "nh", "ne", "ft", "ps", "vs", "ll", "ls", "ce", "ul", "cu", "tr", "ta",
    "tc", "lc", "mk", "rt", "pc", "lf", "ev", "rm", "rr", "rn", "als", "nr", "af", "so", "mso",
    "pl", "po", "wh", "ch", "it", "nm", "nn", "ss", "cs", "bd", "fp", "ftr", "fam", "tm", "ab",
    "ex", "pso", "sy", "nx", "hc", "hw", "hla", "hlm", "hpf", "lt", "pn", "ns", "rs", "os",
    "eo", "ec", "cc", "c2", "shift", "return", "do", "troff", "nroff", "UC", "PD", "IX", "DT",
    "Dd", "Dt", "Os", "Bl", "El", "Bd", "Ed", "Ek", "Bk", "Xc", "Xo", "Oo", "Oc", "Ns", "Sm",
    "X", "c", "q", "AT", "UN", "HD", "FN", "ig", "Id", "hw", "nop", "Rs", "Re", "Po", "Pc",
    "Sp_", "Vb_", "tag", "nh", "cflags", "kern", "char", "chop", "substring", "length",
    "break", "while", "unformat", "asciify", "backtrace", "blm", "lsm", "open", "opena",
    "close", "write", "writec", "writem", "trf", "cp", "vpt", "warn", "fspecial", "fzoom",
    "special", "sizes", "trin", "trnt", "fchar", "schar", "rchar", "defcolor", "gcolor",
    "fcolor", "ecs", "ecr", "ds1", "as1", "dei", "ami", "de1", "am1", "ti_", "in_",
}
PARA = {"PP", "P", "LP", "Pp", "Lp", "sp", "Sp", "HP", "bp", "SP", "AS", "AE"}
NOFILL_ON = {"nf", "Vb", "EX", "CS", "DS", "Ds", "Bd_", "VS", "cW", "RD", "ft_"}
NOFILL_OFF = {"fi", "Ve", "EE", "CE", "DE", "De", "Ed_", "VE", "RE_"}
HEADINGS = {"SH", "SS", "Sh", "Ss", "Sx_", "SB_"}
FONT_ONE = {"B", "I", "R", "SM", "SB", "Em", "Sy", "Li", "Ql", "Tn", "Pa", "Ar", "Cm", "Ic",
            "Ev", "Dv", "Va", "Fa", "Ft", "Fd", "Er", "Ad", "An", "Ms", "Sx", "Cd", "Lk", "Mt",
            "Nd", "Nx", "Fx", "Ox", "Bx", "Ux", "At", "St", "Bsx", "Dx", "Xr", "Nm", "Fl", "Op",
            "Dq", "Sq", "Pq", "Bq", "Aq", "Qq", "D1", "Dl", "It", "Fn", "Fo", "Fc", "Pf", "No",
            "OP", "UR", "URL", "MT", "UE", "ME", "Text", "Topic", "ShellCommand", "ShortOpt",
            "QuotedChar", "Esc", "CodeSkip", "IUNIX", "MTO", "T", "TQ_"}
MDOC_CALLABLE = {"Ar", "Cm", "Pa", "Ic", "Em", "Sy", "Li", "Ql", "Ev", "Dv", "Va", "Fa", "Er",
                 "Ad", "Tn", "No", "Xr", "Fl", "Ns", "Op", "Oo", "Oc", "Dq", "Sq", "Pq", "Bq",
                 "Aq", "Qq", "Sx", "Nm", "Pf"}

ESCAPE_RE = re.compile(r"""\\(?:
    (?P<font>f(?:\[[^\]]*\]|\(..|.))
  | (?P<size>s(?:[+-]?\d|\([+-]?\d\d|[+-]?\(\d\d|\[[+-]?\d+\]|'[+-]?\d+'))
  | \*(?P<str>\[[^\]]*\]|\(..|.)
  | (?P<num>n[+-]?(?:\[[^\]]*\]|\(..|.))
  | \((?P<sp2>..)
  | \[(?P<spn>[^\]]*)\]
  | (?P<func>[hvwlLoXDZbNRSCxAoMmYV])'(?P<farg>[^']*)'
  | (?P<fun2>[gkVzYMm])(?:\[[^\]]*\]|\(..|.)
  | (?P<one>.)
)""", re.X | re.S)

ONE_CHAR = {
    "-": "-", "e": "\\", "\\": "\\", "&": "", ")": "", " ": " ", "~": " ", "0": " ", "|": "",
    "^": "", ",": "", "/": "", "c": "", "%": "", ":": "", "'": "´", "`": "`", ".": ".",
    "t": "\t", "a": "", "d": "", "u": "", "r": "", "p": "", "{": "", "}": "", "!": "",
    "E": "\\", "@": "@", "_": "_", "=": "=", "+": "+", "$": "", "?": "", "#": "",
}


class _State:
    def __init__(self):
        self.strings = dict(PRESET_STRINGS)
        self.paras = []  # finished paragraphs (list of lines)
        self.cur = []  # lines of the paragraph being built
        self.fill = True
        self.pending_break = False  # next text line starts a new line (after .TP tag etc.)
        self.break_after_next = False
        self.name = ""


def _escapes(s, st, depth=0):
    # Comments: \" to end of line; \# likewise (groff).
    s = re.sub(r'(?<!\\)((?:\\\\)*)\\["#].*$', r"\1", s)

    def sub(m):
        if m.group("font") or m.group("size") or m.group("num") or m.group("fun2"):
            return ""
        if m.group("str") is not None:
            key = m.group("str")
            key = key[1:-1] if key.startswith("[") else key[1:] if key.startswith("(") else key
            val = st.strings.get(key, "")
            return _escapes(val, st, depth + 1) if depth < 5 and "\\" in val else val
        if m.group("sp2") is not None:
            return SPECIAL.get(m.group("sp2"), "")
        if m.group("spn") is not None:
            name = m.group("spn")
            if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
                return chr(int(name[1:], 16))
            return SPECIAL.get(name, "")
        if m.group("func") is not None:
            f, arg = m.group("func"), m.group("farg")
            if f == "C":
                return SPECIAL.get(arg, "")
            if f == "o":
                return arg[:1]
            return ""
        return ONE_CHAR.get(m.group("one"), m.group("one"))

    return ESCAPE_RE.sub(sub, s)


def _args(s):
    """Split macro arguments, honouring double quotes ("" inside quotes is a literal quote)."""
    out, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        if s[i] == '"':
            i += 1
            buf = []
            while i < n:
                if s[i] == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(s[i])
                i += 1
            out.append("".join(buf))
        else:
            j = i
            while j < n and s[j] not in " \t":
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                j += 1
            out.append(s[i:j])
            i = j
    return out


def _emit_text(st, text):
    if not text.strip() and st.fill:
        return
    if st.pending_break or not st.cur:
        st.cur.append(text.strip() if st.fill else text.rstrip())
        st.pending_break = False
    elif st.fill:
        st.cur[-1] = (st.cur[-1] + " " + text.strip()).strip()
    else:
        st.cur.append(text.rstrip())
    if not st.fill:
        st.pending_break = True
    if st.break_after_next:
        st.break_after_next = False
        st.pending_break = True


def _flush(st):
    if st.cur:
        st.paras.append(st.cur)
    st.cur = []
    st.pending_break = False


def _mdoc(name, args, st):
    words, prefix, nospace, brackets = [], "", False, []
    if name == "Op":
        brackets = ["[", "]"]
    elif name == "Dq":
        brackets = ["“", "”"]
    elif name == "Sq":
        brackets = ["‘", "’"]
    elif name == "Pq":
        brackets = ["(", ")"]
    elif name == "Bq":
        brackets = ["[", "]"]
    elif name == "Aq":
        brackets = ["<", ">"]
    elif name == "Qq":
        brackets = ['"', '"']
    if name == "Fl":
        prefix = "-"
    if name == "Nm" and not args:
        return st.name
    if name == "Nm" and not st.name:
        st.name = args[0]
    for a in args:
        if a in MDOC_CALLABLE:
            if a == "Fl":
                prefix = "-"
            elif a == "Ns":
                nospace = True
            elif a == "Nm":
                words.append(st.name)
            continue
        w = prefix + a
        prefix = ""
        if nospace and words:
            words[-1] += w
            nospace = False
        elif words and re.fullmatch(r"[.,:;)\]?!]+", a):
            words[-1] += w
        else:
            words.append(w)
    if prefix:
        words.append(prefix)
    if name == "Xr" and len(args) >= 2:
        return f"{args[0]}({args[1]})" + "".join(args[2:])
    text = " ".join(words)
    return f"{brackets[0]}{text}{brackets[1]}" if brackets else text


def _condition(rest):
    """Evaluate a roff condition at the start of `rest`; return (truth, body)."""
    rest = rest.lstrip()
    neg = rest.startswith("!")
    if neg:
        rest = rest[1:]
    m = re.match(r"^([ntoe])(?=\s|\\\{|$)", rest)
    if m:
        truth = m.group(1) in ("n", "o")
        body = rest[1:]
    else:
        # Numeric or string comparison: we cannot evaluate, assume false (nroff defaults).
        m = re.match(r"^(?:'[^']*'[^']*'|\S+)", rest)
        truth = False
        body = rest[m.end():] if m else ""
    return (not truth if neg else truth), body.lstrip()


def _skip_block(lines, i, body):
    """Skip a conditional body that opens with \\{ until the matching \\}; return next index."""
    depth = body.count("\\{") - body.count("\\}")
    while depth > 0 and i < len(lines):
        depth += lines[i].count("\\{") - lines[i].count("\\}")
        i += 1
    return i


def roff_to_text(src):
    st = _State()
    raw = src.replace("\r\n", "\n").split("\n")
    # Join escaped newlines.
    lines = []
    buf = ""
    for l in raw:
        if l.endswith("\\") and not l.endswith("\\\\"):
            buf += l[:-1]
            continue
        lines.append(buf + l)
        buf = ""
    if buf:
        lines.append(buf)

    i = 0
    pending_el = None  # result of the last .ie: True means the .el branch is skipped
    table = None  # None, or "format" / "data" while inside .TS/.TE
    while i < len(lines):
        line = lines[i]
        i += 1
        if not re.match(r"^[.']\s*(?:if|ie|el|while)(?![A-Za-z0-9_])", line):
            line = line.replace("\\{", "").replace("\\}", "")
        if table is not None:
            if re.match(r"^[.']\s*TE\b", line):
                table = None
                _flush(st)
                continue
            if table == "format":
                if line.rstrip().endswith("."):
                    table = "data"
                continue
            if re.match(r"^[.']", line):
                continue
            cells = [c.strip() for c in _escapes(line, st).replace("T{", "").replace("T}", "").split("\t")]
            row = "  ".join(c for c in cells if c and c not in ("_", "=", "\\_"))
            if row:
                st.pending_break = True
                _emit_text(st, row)
                st.pending_break = True
            continue
        if line[:1] in (".", "'"):
            body = line[1:].lstrip()
            if body.startswith('\\"') or body.startswith("\\#") or not body.strip():
                continue
            m = re.match(r"^([^\s\\]+)(.*)$", body)
            if not m:
                continue
            name, rest = m.group(1), m.group(2)
            if name not in ("if", "ie", "el", "while"):
                rest = re.sub(r'(?<!\\)((?:\\\\)*)\\".*$', r"\1", rest)
            if name in ("de", "de1", "am", "ig", "dei", "ami"):
                end = ".."
                a = _args(rest)
                if name in ("de", "de1", "am") and len(a) > 1:
                    end = "." + a[1]
                if name == "ig" and a:
                    end = "." + a[0]
                while i < len(lines) and lines[i].strip() != end and not (end == ".." and lines[i].strip().startswith("..")):
                    i += 1
                i += 1
                continue
            if name in ("if", "ie", "el", "while"):
                if name == "el":
                    truth, cbody = (not pending_el if pending_el is not None else False), rest.lstrip()
                    pending_el = None
                else:
                    truth, cbody = _condition(rest)
                    if name == "ie":
                        pending_el = truth
                    if name == "while":
                        truth = False
                if not truth:
                    i = _skip_block(lines, i, cbody)
                    continue
                cbody = cbody.replace("\\{", "").replace("\\}", "").strip()
                if cbody:
                    lines.insert(i, cbody)
                continue
            if name in ("ds", "ds1", "as", "as1"):
                mm = re.match(r"^\s*(\S+)\s?(.*)$", rest)
                if mm:
                    key, val = mm.group(1), mm.group(2)
                    val = val[1:] if val.startswith('"') else val
                    if key not in PRESET_STRINGS:
                        if name.startswith("as"):
                            st.strings[key] = st.strings.get(key, "") + val
                        else:
                            st.strings[key] = val
                continue
            if name == "TS":
                _flush(st)
                table = "format"
                continue
            if name in ("EQ",):
                while i < len(lines) and not re.match(r"^[.']\s*EN\b", lines[i]):
                    i += 1
                i += 1
                continue
            if name == "TH":
                _flush(st)
                continue
            if name in HEADINGS:
                _flush(st)
                a = _args(rest)
                title = " ".join(_escapes(x, st) for x in a).strip()
                if not title and i < len(lines) and not lines[i].startswith((".", "'")):
                    title = _escapes(lines[i], st).strip()
                    i += 1
                if title:
                    st.paras.append([title])
                continue
            if name in PARA:
                _flush(st)
                continue
            if name == "br":
                st.pending_break = True
                continue
            if name in ("TP", "TQ", "tag"):
                if name == "TP":
                    _flush(st)
                else:
                    st.pending_break = True
                st.break_after_next = True
                st.pending_break = True
                continue
            if name in ("IP", "Ip", "It"):
                _flush(st) if name != "It" else None
                a = _args(rest)
                tag = _mdoc("It", a, st) if name == "It" else (_escapes(a[0], st) if a else "")
                st.pending_break = True
                if tag.strip():
                    _emit_text(st, tag)
                    st.pending_break = True
                continue
            if name in ("RS", "RE", "in", "ti"):
                st.pending_break = True
                continue
            if name in NOFILL_ON:
                st.fill = False
                st.pending_break = True
                continue
            if name in NOFILL_OFF:
                st.fill = True
                st.pending_break = True
                continue
            if name in ("B", "I", "R", "SM", "SB") or name in ("BI", "BR", "IB", "IR", "RB", "RI"):
                a = _args(rest)
                if not a:
                    continue  # applies to the next line, which we print as is
                joiner = "" if len(name) == 2 and name != "SM" and name != "SB" else " "
                _emit_text(st, joiner.join(_escapes(x, st) for x in a))
                continue
            if name in ("UR", "MT"):
                continue
            if name in ("UE", "ME"):
                a = _args(rest)
                if a:
                    _emit_text(st, _escapes("".join(a), st))
                continue
            if name == "URL":
                a = _args(rest)
                if a:
                    _emit_text(st, _escapes(a[1] if len(a) > 1 else a[0], st) + "".join(a[2:]))
                continue
            if name == "OP":
                a = _args(rest)
                _emit_text(st, "[" + " ".join(_escapes(x, st) for x in a) + "]")
                continue
            if name in ("Nd",):
                _emit_text(st, "- " + " ".join(_escapes(x, st) for x in _args(rest)))
                continue
            if name in SKIP_REQUESTS or name[:1].islower():
                continue
            if name in FONT_ONE or name[:1].isupper():
                a = [_escapes(x, st) for x in _args(rest)]
                if name in ("Dl", "D1"):
                    st.pending_break = True
                    _emit_text(st, " ".join(a))
                    st.pending_break = True
                    continue
                text = _mdoc(name, a, st)
                if text.strip():
                    _emit_text(st, text)
                continue
            continue
        # Text line.
        if not line.strip():
            if st.fill:
                _flush(st)
            else:
                st.cur.append("")
            continue
        _emit_text(st, _escapes(line, st))
    _flush(st)
    out = []
    for para in st.paras:
        text = "\n".join(l.rstrip() for l in para).strip("\n")
        if text.strip():
            out.append(text)
    return "\n\n".join(out)
