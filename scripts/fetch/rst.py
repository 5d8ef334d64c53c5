"""reStructuredText (Sphinx flavour) to plain text, good enough for language-model corpora.

Keeps prose, code examples and object signatures; drops section adornments, comments,
targets, index entries and directive options; rewrites roles, links and inline markup to
their visible text.
"""

import re

# Directives dropped with their whole body.
DROP = {
    "index", "moduleauthor", "sectionauthor", "toctree", "highlight", "testsetup", "testcleanup",
    "raw", "image", "figure", "include", "literalinclude", "tabularcolumns", "currentmodule",
    "module", "program", "audit-event", "audit-event-table", "c:namespace", "c:namespace-push",
    "c:namespace-pop", "default-role", "role", "contents", "sectnum", "meta", "limited-api-list",
    "availability-table", "toctree-only", "only-html", "miscnews", "changelog-include",
}
# Version notes: rendered as a sentence plus their body.
VERSION_NOTES = {
    "versionadded": "Added in version {}.",
    "versionchanged": "Changed in version {}:",
    "deprecated": "Deprecated since version {}:",
    "deprecated-removed": "Deprecated since version {}, will be removed in version {}:",
}
# Directives whose body is literal code (no inline markup processing).
LITERAL = {"code-block", "sourcecode", "code", "doctest", "testcode", "testoutput",
           "productionlist", "parsed-literal", "highlight-lang", "grammar-snippet"}
# Object descriptions: signature line(s) then body.
OBJECTS = {
    "function", "method", "class", "attribute", "data", "exception", "decorator",
    "decoratormethod", "classmethod", "staticmethod", "coroutinefunction", "coroutinemethod",
    "abstractmethod", "awaitablefunction", "awaitablemethod", "describe", "object", "envvar",
    "option", "cmdoption", "opcode", "pdbcommand", "2to3fixer", "monitoring-event",
    "property", "type", "c:function", "c:type", "c:member", "c:macro", "c:var", "c:data",
    "c:struct", "c:union", "c:enum", "c:enumerator", "c:functionmacro", "c:alias",
    "cfunction", "cmember", "cmacro", "ctype", "cvar",
}
LABELLED = {"availability": "Availability: {}", "rubric": "{}", "impl-detail": "",
            "seealso": "See also:", "note": "Note:", "warning": "Warning:",
            "important": "Important:", "tip": "Tip:", "caution": "Caution:", "hint": "Hint:",
            "attention": "Attention:", "danger": "Danger:", "error": "Error:",
            "admonition": "{}", "topic": "{}", "sidebar": "{}", "centered": "{}"}

EXPLICIT_RE = re.compile(r"^(\s*)\.\.(?:\s+(.*))?$")
DIRECTIVE_RE = re.compile(r"^([\w:+.-]+)::\s*(.*)$")
ADORNMENT_RE = re.compile(r"^\s*([=\-~^\"'`#*+_.:<>])\1{2,}\s*$")
OPTION_RE = re.compile(r"^\s*:[\w -]+:(?:\s.*)?$")

INLINE_RE = re.compile(r"""
    (?P<lit>``(?P<littext>.+?)``)
  | (?::(?P<role>[\w:+.-]+):)?`(?P<text>[^`]+?)`(?P<link>__?)?
  | \*\*(?P<strong>[^*\s](?:[^*\n]*?[^*\s])?)\*\*
  | (?<![\w*\\])\*(?P<em>[^*\s](?:[^*\n]*?[^*\s])?)\*(?![\w*])
  | \s?\[(?:\#[\w-]*|\d+|\*)\]_
  | \|(?P<subst>[\w -]+)\|(?:__?)?
  | \\(?P<esc>.)
""", re.X)

ROLE_PREFIX = {"pep": "PEP {}", "rfc": "RFC {}"}


def _role_text(role, text):
    m = re.match(r"^(.*?)\s*<([^<>]+)>$", text, re.S)
    if m and m.group(1):
        text = m.group(1)
    elif m:
        text = m.group(2)
    if role:
        role = role.split(":")[-1]
        if role in ROLE_PREFIX:
            return ROLE_PREFIX[role].format(text)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text


def _inline_sub(m):
    if m.group("lit") is not None:
        return m.group("littext")
    if m.group("text") is not None:
        return _role_text(m.group("role"), m.group("text"))
    if m.group("strong") is not None:
        return m.group("strong")
    if m.group("em") is not None:
        return m.group("em")
    if m.group("subst") is not None:
        return m.group("subst")
    if m.group("esc") is not None:
        return "" if m.group("esc") == " " else m.group("esc")
    return ""  # footnote reference


def inline(text):
    return INLINE_RE.sub(_inline_sub, text)


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _dedent(lines):
    ind = [_indent(l) for l in lines if l.strip()]
    cut = min(ind) if ind else 0
    return [l[cut:] if l.strip() else "" for l in lines]


def _block_end(lines, i, base):
    """Index after the explicit-markup block whose first line is lines[i] at indent `base`."""
    j = i + 1
    while j < len(lines):
        l = lines[j]
        if l.strip() and _indent(l) <= base:
            break
        j += 1
    while j > i + 1 and not lines[j - 1].strip():
        j -= 1
    return j


def _convert(lines, literal=False):
    out = []
    i = 0
    literal_base = literal_min = None
    while i < len(lines):
        line = lines[i].expandtabs(8)
        stripped = line.strip()
        if literal:
            out.append(line.rstrip())
            i += 1
            continue
        if literal_base is not None:
            # Literal block after '::': its first line sets the indentation it keeps.
            if not stripped:
                out.append("")
                i += 1
                continue
            if literal_min is None:
                literal_min = _indent(line) if _indent(line) > literal_base else -1
            if literal_min >= 0 and _indent(line) >= literal_min:
                out.append(line.rstrip())
                i += 1
                continue
            literal_base = literal_min = None
        if not stripped:
            out.append("")
            i += 1
            continue
        m = EXPLICIT_RE.match(line)
        if m:
            base = len(m.group(1))
            j = _block_end(lines, i, base)
            out.extend(_explicit(m.group(2) or "", lines[i + 1:j], base))
            i = j
            continue
        if ADORNMENT_RE.match(line):
            i += 1
            continue
        if stripped.startswith(">>>"):
            # Doctest block: verbatim until a blank line.
            while i < len(lines) and lines[i].strip():
                out.append(lines[i].rstrip())
                i += 1
            continue
        # A paragraph: consecutive non-blank prose lines, inline markup resolved across lines.
        para = [line.rstrip()]
        j = i + 1
        while (j < len(lines) and lines[j].strip() and not para[-1].endswith("::")
               and not EXPLICIT_RE.match(lines[j]) and not ADORNMENT_RE.match(lines[j])
               and not lines[j].strip().startswith(">>>")):
            para.append(lines[j].expandtabs(8).rstrip())
            j += 1
        if para[-1].endswith("::"):
            last = para[-1][:-2].rstrip()
            para[-1] = last + ":" if last.strip() else ""
            literal_base = _indent(line)
            if not para[-1]:
                para.pop()
        if para:
            out.extend(inline("\n".join(para)).split("\n"))
        i = j
    return out


def _explicit(head, body, base):
    """Render an explicit markup block ('.. something' plus its indented body)."""
    m = DIRECTIVE_RE.match(head.strip())
    if not m:
        fm = re.match(r"^\[(?:#[\w-]*|\d+|\*)\]\s*(.*)$", head.strip())
        if fm:  # footnote: keep its text
            return _convert([fm.group(1)] + _dedent(body))
        return []  # comment, hyperlink target, substitution definition
    name, args = m.group(1), m.group(2).strip()
    # Argument continuation lines and options come first in the body.
    body = list(body)
    arg_lines = [args] if args else []
    k = 0
    if name in OBJECTS:
        # Further signatures: lines in the body before the first blank/option line.
        while k < len(body) and body[k].strip() and not OPTION_RE.match(body[k]):
            arg_lines.append(body[k].strip())
            k += 1
    while k < len(body) and body[k].strip() and OPTION_RE.match(body[k]):
        k += 1
    rest = _dedent(body[k:])
    if name in DROP:
        return []
    if name in VERSION_NOTES:
        parts = args.split(None, 1) if args else [""]
        ver = parts[0]
        tail = parts[1] if len(parts) > 1 else ""
        if name == "deprecated-removed":
            vs = args.split()
            head_txt = VERSION_NOTES[name].format(vs[0] if vs else "", vs[1] if len(vs) > 1 else "")
            tail = " ".join(vs[2:])
        else:
            head_txt = VERSION_NOTES[name].format(ver)
        first = (head_txt + (" " + inline(tail) if tail else "")).strip()
        return [""] + [first] + _convert(rest) + [""]
    if name in LITERAL:
        return [""] + _convert(rest, literal=True) + [""]
    if name in OBJECTS:
        sig = [inline(a) if name.startswith("c") else a for a in arg_lines]
        sig = [re.sub(r"\\(.)", r"\1", s) for s in sig]
        return [""] + sig + [""] + _convert(rest) + [""]
    if name in LABELLED:
        label = LABELLED[name].format(inline(args)) if "{}" in LABELLED[name] else LABELLED[name]
        out = [""]
        if label:
            out.append(label)
        return out + _convert(rest) + [""]
    if name in ("only", "ifconfig"):
        return _convert(rest)
    if name in ("csv-table", "list-table", "table"):
        return [""] + ([inline(args)] if args else []) + _convert(rest) + [""]
    # Unknown directive: keep arguments and body as prose.
    return [""] + ([inline(args)] if args else []) + _convert(rest) + [""]


def rst_to_text(src):
    src = src.replace("\r\n", "\n")
    lines = _convert(src.split("\n"))
    text = "\n".join(l.rstrip() for l in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
