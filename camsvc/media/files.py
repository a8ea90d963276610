"""Media files on disk: file names, lookups confined to the storage dirs, listing, deletion.

This module owns the two storage directories (``storage.recordings_dir`` for MediaMTX's
fMP4 segments, ``storage.snapshots_dir`` for snapshots) as seen by the API:

* :func:`check_name` refuses any client-given name that is not a plain file name of the
  right kind (NUL bytes, directories, ``..``, hidden names, control characters, names
  longer than ``NAME_MAX``) with -32602, before the file system is touched;
* :func:`sanitise_name` turns a client's wish for a new file name into a safe one;
* :class:`FileStore` looks names up (a symbolic link pointing outside its directory is
  refused), lists, describes, deletes and creates files without ever overwriting one.

Files are named ``<camera_id>_<YYYY-MM-DD_HH-MM-SS-ffffff>.<ext>`` (MediaMTX's
``recordPath`` for recordings, the same pattern for snapshots); the camera id prefix
is what the ``device`` filter of the listings matches.  No I/O happens at import; all
of it is synchronous and short (directory scans, ``stat``, small reads).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.logger import Logger

from camsvc.common.errors import FileNotFound, InternalError, InvalidParams

log = Logger()

RECORDINGS = "recordings"
SNAPSHOTS = "snapshots"
KINDS = (RECORDINGS, SNAPSHOTS)

#: Extensions each kind may have (lower case); the first is the canonical one.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    RECORDINGS: (".mp4",),
    SNAPSHOTS: (".jpg", ".jpeg", ".png"),
}
CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
#: Snapshot format -> extension.
FORMAT_EXTENSIONS = {"jpg": ".jpg", "png": ".png"}
EXTENSION_FORMATS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png"}

#: Linux NAME_MAX: the longest file name, in bytes.
NAME_MAX = 255
#: Longest stem :func:`sanitise_name` keeps (room for a clash suffix and the extension).
STEM_MAX = 200

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
_STAMP = re.compile(r"_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})-(\d{6})(?:_\d+)?\.[A-Za-z0-9]+$")
_CAMERA_PREFIX = re.compile(r"^(camera\d+)_")


def _bad(message: str) -> InvalidParams:
    return InvalidParams(f"Invalid params: 'filename' {message}", data={"param": "filename"})


def check_name(kind: str, name: str) -> str:
    """Return ``name`` when it is a plain file name of ``kind``; else raise -32602.

    Refused: NUL bytes and control characters, ``/`` and ``\\`` (no directories, so no
    ``..`` traversal and no absolute paths), ``.``/``..`` and other names starting with
    a dot (hidden and temporary files), names longer than NAME_MAX bytes, names whose
    extension is not one of the kind's.
    """
    if not isinstance(name, str) or not name:
        raise _bad("must be a non-empty string")
    if "\x00" in name:
        raise _bad("must not contain NUL bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _bad("must not contain control characters")
    if "/" in name or "\\" in name:
        raise _bad("must be a plain file name, without directories")
    if name.startswith("."):
        raise _bad("must not start with a dot")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("is not valid Unicode text") from None
    if len(encoded) > NAME_MAX:
        raise _bad(f"is too long ({len(encoded)} bytes, at most {NAME_MAX})")
    ext = os.path.splitext(name)[1].lower()
    if ext not in EXTENSIONS[kind]:
        allowed = ", ".join(EXTENSIONS[kind])
        raise _bad(f"must name a {kind[:-1]} file ({allowed})")
    return name


def sanitise_name(wish: str, fmt: str | None) -> tuple[str, str]:
    """A safe ``(stem, format)`` for a new snapshot from a client's ``filename`` wish.

    Raises -32602 for what cannot be a file name at all (NUL bytes, directories,
    ``..``, nothing usable left) and when the wish's image extension contradicts
    ``fmt``.  Otherwise characters outside ``[A-Za-z0-9._-]`` become ``_``, runs of
    dots collapse, a leading dot is dropped and the stem is cut to STEM_MAX characters.
    ``fmt`` None takes the format from the wish's extension (``.png`` -> png), else
    None (the caller's default).  The extension is added by the caller.
    """
    if "\x00" in wish:
        raise _bad("must not contain NUL bytes")
    if "/" in wish or "\\" in wish:
        raise _bad("must be a plain file name, without directories")
    if wish.strip() in (".", "..") or wish.startswith(".."):
        raise _bad("must not be '.' or '..' or start with '..'")
    stem, ext = os.path.splitext(wish)
    wished_format = EXTENSION_FORMATS.get(ext.lower())
    if wished_format is None:
        stem = wish  # not an image extension: it is part of the name
    elif fmt is not None and wished_format != fmt:
        raise _bad(f"has the extension {ext!r}, which does not match the format {fmt!r}")
    stem = _UNSAFE.sub("_", stem)
    stem = _DOTS.sub(".", stem).strip(".")
    stem = stem[:STEM_MAX].rstrip(".")
    if not stem.strip("_"):
        raise _bad("has no usable characters (letters, digits, '.', '_', '-')")
    return stem, fmt or wished_format  # type: ignore[return-value]


def camera_of(name: str) -> str | None:
    """The camera id a file name starts with (``camera0_...`` -> ``camera0``), else None."""
    match = _CAMERA_PREFIX.match(name)
    return match.group(1) if match else None


def time_from_name(name: str, utc_offset: float | None = None) -> float | None:
    """The time encoded in a ``..._YYYY-MM-DD_HH-MM-SS-ffffff.ext`` name.

    The name carries the writer's wall clock without a zone.  ``utc_offset``
    (seconds east of UTC) is the writer's zone when known (MediaMTX's, learned
    by :func:`learn_utc_offset`); None reads it in camsvc's local zone.
    """
    naive = utc_fields_from_name(name)
    if naive is None:
        return None
    if utc_offset is not None:
        return naive - utc_offset
    match = _STAMP.search(name)
    y, mo, d, h, mi, s, us = (int(g) for g in match.groups())
    try:
        return datetime(y, mo, d, h, mi, s, us).timestamp()
    except (ValueError, OverflowError):
        return None


def utc_fields_from_name(name: str) -> float | None:
    """The name's date and time fields read as if they were UTC (seconds since the epoch)."""
    match = _STAMP.search(name)
    if not match:
        return None
    y, mo, d, h, mi, s, us = (int(g) for g in match.groups())
    try:
        return datetime(y, mo, d, h, mi, s, us, tzinfo=timezone.utc).timestamp()
    except (ValueError, OverflowError):
        return None


def learn_utc_offset(name: str, now: float) -> float | None:
    """The writer's UTC offset, from a file it named just now (``now``: camsvc's clock).

    Real zones are whole quarter hours from UTC, so the difference between the
    name read as UTC and the actual time, rounded to 15 minutes, is the writer's
    offset as long as the name is less than 7.5 minutes old.
    """
    naive = utc_fields_from_name(name)
    if naive is None:
        return None
    offset = round((naive - now) / 900.0) * 900.0
    if abs(offset) > 14 * 3600:
        return None
    return offset


def stamp(ts: float) -> str:
    """``YYYY-MM-DD_HH-MM-SS-ffffff`` in local time: MediaMTX's ``%Y-%m-%d_%H-%M-%S-%f``."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d_%H-%M-%S-%f")


@dataclass(frozen=True)
class MediaFile:
    """One file in a storage dir.  ``path`` is where its data is (a link's target)."""

    kind: str
    filename: str
    path: str
    size: int
    mtime: float
    mtime_ns: int
    created: float
    camera_id: str | None

    @property
    def extension(self) -> str:
        return os.path.splitext(self.filename)[1].lower()

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.extension, "application/octet-stream")


class FileStore:
    """The recordings and snapshots directories.

    Collaborators: ``duration_reader(path) -> seconds | None`` for recordings (the
    fMP4 reader, cached per file size and modification time).
    """

    def __init__(
        self,
        recordings_dir: str,
        snapshots_dir: str,
        *,
        duration_reader: Callable[[str], float | None] | None = None,
    ) -> None:
        self.dirs = {RECORDINGS: recordings_dir, SNAPSHOTS: snapshots_dir}
        self.duration_reader = duration_reader
        self._durations: dict[str, tuple[int, int, float | None]] = {}
        #: Seconds east of UTC of the zone the names of a kind are written in (None: local).
        self.name_offsets: dict[str, float | None] = {}
        self._listings: dict[str, tuple[tuple, list[MediaFile], list[int], dict[str, list[int]]]] = {}

    def real_dir(self, kind: str) -> str:
        """The directory of ``kind`` with every symbolic link resolved."""
        return os.path.realpath(self.dirs[kind])

    def ensure_dirs(self) -> None:
        for kind, path in self.dirs.items():
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                log.error("Cannot create the {kind} directory {path}: {err}", kind=kind, path=path, err=exc)

    # -- lookups ---------------------------------------------------------------

    def set_name_offset(self, kind: str, utc_offset: float | None) -> None:
        """The UTC offset the writer of ``kind``'s names uses (MediaMTX's zone, for recordings)."""
        if self.name_offsets.get(kind) != utc_offset:
            self.name_offsets[kind] = utc_offset
            self._listings.pop(kind, None)

    def _stat_file(self, kind: str, name: str, base: str, st: os.stat_result, path: str) -> MediaFile:
        created = time_from_name(name, self.name_offsets.get(kind))
        return MediaFile(
            kind=kind,
            filename=name,
            path=path,
            size=st.st_size,
            mtime=st.st_mtime,
            mtime_ns=st.st_mtime_ns,
            created=created if created is not None else min(st.st_mtime, st.st_ctime),
            camera_id=camera_of(name),
        )

    def lookup(self, kind: str, name: str) -> MediaFile:
        """The file ``name`` of ``kind``: -32602 for a bad or escaping name, -32009 if missing."""
        check_name(kind, name)
        base = self.real_dir(kind)
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                if os.path.dirname(target) != base:
                    log.warn(
                        "Refused {kind} file {name}: a symbolic link to {target}, outside {base}",
                        kind=kind,
                        name=name,
                        target=target,
                        base=base,
                    )
                    raise _bad("refers to a file outside the storage directory")
                st = os.stat(target)
                path = target
        except FileNotFoundError:
            raise FileNotFound(f"File not found: {name}", data={"filename": name}) from None
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
                raise _bad(f"cannot be used ({exc.strerror})") from None
            log.failure("Cannot read {kind} file {name}", kind=kind, name=name)
            raise InternalError(f"Cannot read {name}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFound(f"File not found: {name} is not a regular file", data={"filename": name})
        return self._stat_file(kind, name, base, st, path)

    def open_file(self, kind: str, name: str) -> tuple[int, MediaFile]:
        """Open ``name`` of ``kind`` for reading, race-free; return ``(fd, file)``.

        The directory is opened once and the name opened relative to it
        (``openat``) with ``O_NOFOLLOW``: a symbolic link is never followed,
        however late it was swapped in, and ``O_NONBLOCK`` keeps a FIFO from
        blocking.  Size, type and times come from ``fstat`` of the descriptor
        that will be served, never from the path.  The caller owns the fd.
        Errors as :meth:`lookup` (-32602 for a bad name or a link, -32009 when missing
        or not a regular file).
        """
        check_name(kind, name)
        base = self.real_dir(kind)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            dir_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise FileNotFound(f"File not found: {name}", data={"filename": name}) from None
        except OSError as exc:
            log.error("Cannot open the {kind} directory {base}: {err}", kind=kind, base=base, err=exc)
            raise InternalError(f"Cannot read {name}: {exc.strerror}") from None
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise FileNotFound(f"File not found: {name}", data={"filename": name}) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                log.warn(
                    "Refused {kind} file {name}: a symbolic link (downloads never follow links)", kind=kind, name=name
                )
                raise _bad("is a symbolic link; downloads never follow links") from None
            if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):
                raise _bad(f"cannot be used ({exc.strerror})") from None
            if exc.errno in (errno.ENXIO, errno.EISDIR):
                raise FileNotFound(f"File not found: {name} is not a regular file", data={"filename": name}) from None
            log.error("Cannot open {kind} file {name}: {err}", kind=kind, name=name, err=exc)
            raise InternalError(f"Cannot read {name}: {exc.strerror}") from None
        finally:
            os.close(dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFound(f"File not found: {name} is not a regular file", data={"filename": name})
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd, self._stat_file(kind, name, base, st, os.path.join(base, name))

    def exists(self, kind: str, name: str) -> bool:
        try:
            os.lstat(os.path.join(self.real_dir(kind), name))
        except OSError:
            return False
        return True

    # -- listing -----------------------------------------------------------------

    #: A file modified less than this many seconds before the directory was scanned may
    #: still be growing (a recording being written): it is stat'ed again on every listing.
    HOT_SECONDS = 120.0

    def list(self, kind: str, camera_id: str | None = None) -> list[MediaFile]:
        """Regular files of ``kind`` (optionally of one camera), newest first.

        Hidden files (temporary ones start with a dot), other extensions, directories
        and symbolic links are not listed.

        The listing is cached until the directory changes (its ``st_mtime_ns``,
        inode or ctime: a file added, removed or renamed), so a listing of 100,000
        files does not stat every one on every call.  Files that were recently
        modified when the directory was scanned (:attr:`HOT_SECONDS`, a recording
        still being written) are stat'ed again on each call, so their size is
        current.  :meth:`delete` and :meth:`create` drop the cache too.
        """
        base = self.real_dir(kind)
        try:
            dst = os.stat(base)
        except FileNotFoundError:
            self._listings.pop(kind, None)
            return []
        except OSError as exc:
            log.error("Cannot list {kind} in {base}: {err}", kind=kind, base=base, err=exc)
            raise InternalError(f"Cannot list the {kind} directory: {exc.strerror}") from None
        key = (base, dst.st_dev, dst.st_ino, dst.st_mtime_ns, dst.st_ctime_ns)
        cached = self._listings.get(kind)
        if cached is None or cached[0] != key:
            files, hot = self._scan(kind, base)
            cached = (key, files, hot, {})
            # A directory changed within the last second may change again within the
            # same timestamp tick (coarse file system clocks): not cached until it settles.
            if time.time() - dst.st_mtime > 1.0:
                self._listings[kind] = cached
            else:
                self._listings.pop(kind, None)
        else:
            files, hot = cached[1], cached[2]
            if hot:
                self._refresh_hot(kind, base, files, hot)
        if camera_id:
            # Per camera: the positions of its files, found once per listing.
            by_camera = cached[3]
            positions = by_camera.get(camera_id)
            if positions is None:
                prefix = f"{camera_id}_"
                positions = by_camera[camera_id] = [i for i, f in enumerate(files) if f.filename.startswith(prefix)]
            return [files[i] for i in positions]
        return list(files)

    def _scan(self, kind: str, base: str) -> tuple[list[MediaFile], list[int]]:
        allowed = EXTENSIONS[kind]
        files: list[MediaFile] = []
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            log.error("Cannot list {kind} in {base}: {err}", kind=kind, base=base, err=exc)
            raise InternalError(f"Cannot list the {kind} directory: {exc.strerror}") from None
        now = time.time()
        for entry in entries:
            name = entry.name
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in allowed:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # deleted meanwhile
            if not stat.S_ISREG(st.st_mode):
                continue
            files.append(self._stat_file(kind, name, base, st, entry.path))
        files.sort(key=lambda f: (f.created, f.filename), reverse=True)
        hot = [i for i, f in enumerate(files) if now - f.mtime < self.HOT_SECONDS]
        return files, hot

    def _refresh_hot(self, kind: str, base: str, files: list[MediaFile], hot: list[int]) -> None:
        now = time.time()
        still = []
        for i in hot:
            media = files[i]
            try:
                st = os.stat(media.path, follow_symlinks=False)
            except OSError:
                continue  # gone: the directory's mtime changes too, the next call rescans
            if st.st_mtime_ns != media.mtime_ns or st.st_size != media.size:
                files[i] = self._stat_file(kind, media.filename, base, st, media.path)
            if now - st.st_mtime < self.HOT_SECONDS:
                still.append(i)
        hot[:] = still

    def usage(self, kind: str) -> tuple[int, int]:
        """``(files, bytes)`` of ``kind``."""
        files = self.list(kind)
        return len(files), sum(f.size for f in files)

    # -- details -----------------------------------------------------------------

    def duration(self, media: MediaFile) -> float | None:
        """Seconds of media in a recording (cached per size and mtime); None if unknown."""
        if media.kind != RECORDINGS or self.duration_reader is None:
            return None
        cached = self._durations.get(media.path)
        if cached is not None and cached[0] == media.size and cached[1] == media.mtime_ns:
            return cached[2]
        try:
            seconds = self.duration_reader(media.path)
        except Exception:
            log.failure("Cannot read the duration of {name}", name=media.filename)
            seconds = None
        if len(self._durations) > 4096:
            self._durations.clear()
        self._durations[media.path] = (media.size, media.mtime_ns, seconds)
        return seconds

    # -- changes -----------------------------------------------------------------

    def delete(self, kind: str, name: str) -> MediaFile:
        """Delete ``name`` (the directory entry: a link, never its target)."""
        media = self.lookup(kind, name)
        try:
            os.unlink(os.path.join(self.real_dir(kind), name))
        except FileNotFoundError:
            raise FileNotFound(f"File not found: {name}", data={"filename": name}) from None
        except OSError as exc:
            log.error("Cannot delete {kind} file {name}: {err}", kind=kind, name=name, err=exc)
            raise InternalError(f"Cannot delete {name}: {exc.strerror}") from None
        self._durations.pop(media.path, None)
        self._listings.pop(kind, None)
        log.info("Deleted {kind} file {name} ({size} bytes)", kind=kind, name=name, size=media.size)
        return media

    def create(self, kind: str, stem: str, ext: str, data: bytes, *, max_tries: int = 1000) -> str:
        """Write ``data`` to a new file ``<stem><ext>`` and return its name; never overwrites.

        If the name is taken, ``<stem>_1<ext>``, ``<stem>_2<ext>``... are tried
        (O_CREAT|O_EXCL|O_NOFOLLOW, so a racing writer or a planted link cannot be
        overwritten or followed).  A write error removes the partial file and re-raises
        the OSError.
        """
        base = self.dirs[kind]
        os.makedirs(base, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        for n in range(max_tries):
            name = f"{stem}{ext}" if n == 0 else f"{stem}_{n}{ext}"
            path = os.path.join(base, name)
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:
                continue
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError:
                os.close(fd)
                try:
                    os.unlink(path)
                except OSError:
                    log.failure("Cannot remove the partial file {path}", path=path)
                raise
            os.close(fd)
            self._listings.pop(kind, None)
            return name
        raise InternalError(f"Cannot find a free file name for {stem}{ext}")
