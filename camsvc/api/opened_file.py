"""One already-opened file served over HTTP by twisted.web.static.

This module owns :class:`OpenedFile`, what :mod:`camsvc.api.http_files` serves a download
with.  It is imported at the first download, not at start: twisted.web.static reads the
system's MIME types when imported (0.4 MiB resident).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from twisted.web import static
from twisted.web.resource import Resource


class OpenedFile(static.File):
    """A static.File serving one already-open descriptor and nothing else.

    Twisted's File stats and opens by path; this one answers ``restat`` with
    ``fstat`` of the descriptor and hands that descriptor out in
    ``openForReading``, so the bytes served are those of the file that was
    checked (:meth:`FileStore.open_file`), whatever happens to the name.
    """

    isLeaf = True

    def __init__(self, fd: int, path: str, defaultType: str) -> None:
        self._fd: int | None = fd
        super().__init__(path, defaultType=defaultType)
        self.restat()

    def restat(self, reraise: bool = True) -> None:
        if self._fd is not None:
            self._statinfo = os.fstat(self._fd)

    def openForReading(self) -> Any:
        fd, self._fd = self._fd, None
        if fd is None:  # pragma: no cover - render opens once
            raise OSError(errno.EBADF, "already served")
        return os.fdopen(fd, "rb")

    def close(self) -> None:
        """Close the descriptor unless it was handed to a producer."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def directoryListing(self) -> Resource:  # pragma: no cover - only files are built
        return static.File.childNotFound
