"""Media component: snapshots, recordings' files, download URLs, storage and retention.

``setup(app, sign_download=..., camera_changed=...)`` (called by :func:`camsvc.tap.build`
after MediaMTX) builds and returns :class:`Media`, with its
:class:`~camsvc.media.recordings.Recordings` as ``media.recordings``; it adds their
services (storage monitor, retention, process cleanup, recordings) and the ``storage`` /
``retention`` / ``recordings`` sections of ``get_status``.  The API methods live in
:mod:`camsvc.api.media`, the ``/files`` HTTP resource in :mod:`camsvc.api.http_files`.

Submodules: :mod:`.files` (names, lookups, listing), :mod:`.mp4` (durations),
:mod:`.process` (ffmpeg on the reactor), :mod:`.snapshots`, :mod:`.recordings`
(sessions, keep-alive reader, recovery), :mod:`.storage` (free space, retention).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twisted.application.service import Service
from twisted.logger import Logger

from camsvc.common.errors import InvalidState
from camsvc.common.hosts import valid_host_header
from camsvc.common.lazy import lazy_import
from camsvc.common.timefmt import iso
from camsvc.media.files import FileStore, MediaFile
from camsvc.media.process import ProcessGroup
from camsvc.media.recordings import Recordings
from camsvc.media.storage import OK, Retention, StorageMonitor

if TYPE_CHECKING:
    from camsvc.media import mp4
    from camsvc.media.snapshots import Snapshotter
else:
    # What an idle camsvc never runs loads at first use: the MP4 reader with the first
    # recording's duration, the snapshot code with the first snapshot (Media.snapshots).
    mp4 = lazy_import("camsvc.media.mp4")

log = Logger()


class _ProcessReaper(Service):
    """Kills the media component's children (ffmpeg) when the service stops."""

    name = "media-processes"

    def __init__(self, group: ProcessGroup) -> None:
        self.group = group

    def stopService(self) -> Any:
        super().stopService()
        return self.group.kill_all()


class Media:
    """The media component's parts, shared by the API and other components.

    ``store`` (:class:`FileStore`), ``snapshots`` (:class:`Snapshotter`),
    ``storage`` (:class:`StorageMonitor`), ``retention`` (:class:`Retention`),
    ``processes`` (:class:`ProcessGroup`), ``recordings`` (:class:`Recordings`, also
    ``app.recordings``).

    Injected collaborators:

    * ``sign_download(kind, filename) -> str | None``: a token appended to
      ``download_url`` as ``?token=`` (None, the default: URLs carry no token, as
      without authentication);
    * ``protected() -> set[(kind, filename)]``: files retention must not delete (the
      recordings' open segments, set by :func:`setup`).

    :meth:`path_ready` asks ``app.mediamtx`` (absent: never ready).
    """

    def __init__(self, app: Any, *, sign_download: Callable[[str, str], str | None] | None = None) -> None:
        self.app = app
        config = app.config
        self.config = config
        self.store = FileStore(
            config.storage.recordings_dir, config.storage.snapshots_dir, duration_reader=lambda path: mp4.duration(path)
        )
        self.processes = ProcessGroup(app.reactor, app.clock)
        self.storage = StorageMonitor(self.store, config.storage, app.clock, app.hub.publish)
        self.protected: Callable[[], set] = lambda: set()
        self.retention = Retention(
            self.store,
            app.clock,
            config.storage.state_dir,
            config.retention,
            protected=lambda: self.protected(),
            on_deleted=app.metrics.retention_deleted,
        )
        self.sign_download = sign_download
        self.recordings: Recordings | None = None
        self.storage.listeners.append(self._storage_changed)

    @cached_property
    def snapshots(self) -> Snapshotter:
        """The :class:`~camsvc.media.snapshots.Snapshotter`, made at the first snapshot."""
        from camsvc.media.snapshots import Snapshotter

        return Snapshotter(
            processes=self.processes,
            store=self.store,
            clock=self.app.clock,
            cameras=self.app.cameras,
            config=self.config,
            path_ready=lambda camera_id: self.path_ready(camera_id),
            require_space=self.storage.require_space,
            observe=self.app.metrics.snapshot,
        )

    # -- hooks with defaults ---------------------------------------------------------

    def path_ready(self, camera_id: str) -> bool:
        """Is the camera's MediaMTX path ready (publishing)?  From MediaMTX's cached path stats.

        The cache is at most ``mediamtx.health_interval`` old; a stale answer costs little
        (a busy device falls back to the stream; a stream read restarts the publisher).
        """
        mediamtx = self.app.mediamtx
        camera = self.app.cameras.get(camera_id)
        if mediamtx is None or camera is None:
            return False
        try:
            stream = mediamtx.camera_metrics(camera).get("stream") or {}
        except Exception:
            log.failure("Cannot tell whether the path of {camera_id} is ready", camera_id=camera_id)
            return False
        return bool(stream.get("mediamtx_available") and stream.get("ready"))

    # -- URLs and file descriptions ---------------------------------------------------

    def base_url(self, session: Any) -> str:
        """``scheme://host[:port]`` clients download from.

        ``storage.download_base_url`` when set (a reverse proxy); else the Host header
        the client connected with (so port forwards and NAT keep working); else the
        session's host and ``server.port``.
        """
        configured = self.config.storage.download_base_url
        if configured:
            return configured.rstrip("/")
        scheme = "https" if self.config.server.tls.cert else "http"
        extra = getattr(session, "extra", None) or {}
        header = str(extra.get("http_host", "")).strip()
        if header and valid_host_header(header):
            return f"{scheme}://{header}"
        host = getattr(session, "host", "") or self.config.server.host
        return f"{scheme}://{host}:{self.config.server.port}"

    def download_url(self, session: Any, kind: str, filename: str) -> str:
        url = f"{self.base_url(session)}/files/{kind}/{quote(filename)}"
        if self.sign_download is not None:
            try:
                token = self.sign_download(kind, filename)
            except Exception:
                log.failure("Cannot sign the download of {name}", name=filename)
                token = None
            if token:
                url += f"?token={quote(token)}"
        return url

    def check_deletable(self, kind: str, filename: str) -> None:
        """-32005 for a file that is being recorded."""
        if (kind, filename) in self.protected():
            raise InvalidState(f"{filename} is being recorded: stop the recording first", data={"filename": filename})

    def describe(self, session: Any, media: MediaFile, *, details: bool = False) -> dict:
        """A file as the API shows it (list entries; ``details`` adds the info fields)."""
        entry: dict[str, Any] = {
            "filename": media.filename,
            "file_size": media.size,
            "modified_time": iso(media.mtime),
            "download_url": self.download_url(session, media.kind, media.filename),
        }
        duration = self.store.duration(media)
        if media.kind == "recordings":
            entry["duration"] = None if duration is None else round(duration, 3)
        if details:
            entry.update(
                {
                    "created_time": iso(media.created),
                    "camera_id": media.camera_id,
                    "format": media.extension.lstrip("."),
                    "content_type": media.content_type,
                }
            )
            if media.kind == "recordings":
                entry["recording"] = (media.kind, media.filename) in self.protected()
        return entry

    def _storage_changed(self, level: str, previous: str) -> None:
        if level != OK and self.retention.policy.enabled:
            log.info("Storage is {level}: running retention now", level=level)
            self.retention._periodic()


def setup(
    app: Any,
    *,
    sign_download: Callable[[str, str], str | None] | None = None,
    camera_changed: Callable[[Any], None] = lambda camera: None,
) -> Media:
    """Component entry point: :class:`Media` and its recordings, services and status sections.

    ``camera_changed(camera)`` is called when a camera's recording state changes
    (the API republishes it); ``sign_download`` see :class:`Media`.
    """
    media = Media(app, sign_download=sign_download)
    media.storage.setServiceParent(app.service)
    media.retention.setServiceParent(app.service)
    app.on_reload(media.retention.config_reloaded, ("retention.",))
    _ProcessReaper(media.processes).setServiceParent(app.service)
    recordings = Recordings(
        mediamtx=app.mediamtx,
        cameras=app.cameras,
        reactor=app.reactor,
        clock=app.clock,
        config=app.config,
        store=media.store,
        require_space=media.storage.require_space,
        publish=app.hub.publish,
        camera_changed=camera_changed,
        metrics=app.metrics,
        # Emergency retention when the disk fills during a recording (if retention is on).
        on_storage_full=lambda: media.retention.run() if media.retention.policy.enabled else None,
    )
    # Added last: stopped first, while MediaMTX's client and reconciler still run.
    recordings.setServiceParent(app.service)
    media.recordings = recordings
    media.protected = recordings.protected
    app.status_providers["recordings"] = recordings.status
    app.status_providers["storage"] = media.storage.status
    app.status_providers["retention"] = media.retention.status
    return media
