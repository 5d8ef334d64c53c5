"""Read members out of .deb, tar(.gz/.xz) and zip/wheel archives with the standard library."""

import io
import posixpath
import tarfile
import zipfile


class ArchiveError(ValueError):
    pass


def _ar_members(path):
    """Yield (name, bytes) for the members of a Unix `ar` archive (the .deb container)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"!<arch>\n":
        raise ArchiveError(f"{path}: not an ar archive (.deb)")
    pos = 8
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        name = hdr[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(hdr[48:58].decode("ascii").strip())
        if hdr[58:60] != b"`\n":
            raise ArchiveError(f"{path}: corrupt ar header at offset {pos}")
        pos += 60
        yield name, data[pos:pos + size]
        pos += size + (size & 1)


def _deb_data_tar(path):
    for name, payload in _ar_members(path):
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise ArchiveError(f"{path}: {name} is zstd-compressed; Python's tarfile cannot read it")
            return tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")
    raise ArchiveError(f"{path}: no data.tar member")


def _norm(name):
    name = name[2:] if name.startswith("./") else name
    return name.lstrip("/")


def _tar_collect(tf, predicate):
    """Return {name: bytes} for regular files (and symlinks to them) whose name matches."""
    regular, links = {}, {}
    for m in tf:
        name = _norm(m.name)
        if not predicate(name):
            continue
        if m.isfile():
            regular[name] = tf.extractfile(m).read()
        elif m.issym():
            links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
    return regular, links


def deb_files(path, predicate, follow_links=False):
    """Sorted list of (name, bytes) for files inside a .deb's data archive.

    Names are relative (no leading './'). Symlinks are skipped unless follow_links, in which
    case a link to a regular file that also matched `predicate` is returned with its target's
    bytes.
    """
    with _deb_data_tar(path) as tf:
        regular, links = _tar_collect(tf, predicate)
    out = dict(regular)
    if follow_links:
        for name, target in links.items():
            if target in regular:
                out[name] = regular[target]
    return sorted(out.items())


def tar_files(path, predicate):
    """Sorted list of (name, bytes) for regular files in a tar/tar.gz/tgz archive."""
    with tarfile.open(path, mode="r:*") as tf:
        regular, _ = _tar_collect(tf, predicate)
    return sorted(regular.items())


def tar_member(path, name):
    files = tar_files(path, lambda n: n == name)
    if not files:
        raise ArchiveError(f"{path}: member {name} not found")
    return files[0][1]


def zip_member(path, name):
    with zipfile.ZipFile(path) as zf:
        try:
            return zf.read(name)
        except KeyError:
            raise ArchiveError(f"{path}: member {name} not found") from None
