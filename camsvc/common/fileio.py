"""Atomic file writes: the one way camsvc persists a file.

:func:`atomic_write` writes to a temporary file in the same directory,
fsyncs it, renames it over the target and fsyncs the directory, so a crash
or a full disk leaves either the old content or the new one, never a torn
file.  Every persisted state file (API keys, the JWT secret, the camera-id
map, the MediaMTX ownership ledger, recording state, storage state, stored
camera settings) goes through it.  It blocks on fsync: callers on the
reactor defer it (see the component that owns the file).
"""

from __future__ import annotations

import os
import tempfile


def atomic_write(
    path: str,
    data: bytes,
    *,
    mode: int = 0o600,
    exclusive: bool = False,
    chown_to_directory: bool = False,
    dir_mode: int = 0o700,
) -> None:
    """Write ``data`` to ``path`` atomically with permission ``mode``.

    ``exclusive``: the temporary file is hard-linked to ``path`` instead of
    renamed over it, which raises :class:`FileExistsError` if ``path``
    exists, so two processes creating the same file never overwrite each
    other.  ``chown_to_directory``: when running as root, the file gets the
    owner of its directory (``sudo camsvc-admin`` leaves files the service can
    read).  Missing parent directories are created with ``dir_mode``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=dir_mode, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)  # mode 0600, O_EXCL
    try:
        if chown_to_directory and os.geteuid() == 0:
            st = os.stat(directory)
            os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # FileExistsError if someone else won
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """fsync a directory so a rename in it survives a crash (best effort)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
