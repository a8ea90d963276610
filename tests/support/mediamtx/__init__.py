"""A faithful stand-in for MediaMTX v1.20.1's control API (test support).

Owns everything camsvc's tests need from a MediaMTX they cannot install:

* the ``/v3`` control API on a real loopback port (twisted.web), with the real
  server's routes, status codes, bodies and traps, taken from MediaMTX's source
  (``internal/api``, ``internal/conf``): ``{"status":"ok"}`` on success,
  ``{"status":"error","error":...}`` on failure, duplicate add -> 400
  ``path already exists``, missing patch/delete -> 404 ``path not found``,
  missing config get -> 404 ``path configuration not found``, replace upserts,
  strict Go-style body decoding (unknown field, wrong type, bad duration),
  path-name rules, 0-based pagination, gin's plain-text ``404 page not found``
  for unknown routes *and* for a known route with the wrong method, gin's
  trailing-slash redirects, Basic auth (``authInternalUsers`` / ``api``);
* an in-memory configuration (``pathDefaults`` and global settings derived from
  MediaMTX's default ``mediamtx.yml``), forgotten on :meth:`MediaMTXStandIn.restart`
  like the real process forgets API-made paths;
* simulated streams: a path with ``source: publisher`` and ``runOnDemand``
  becomes ready while a reader is attached, through a fake RTSP port or the
  Python API, and stops ``runOnDemandCloseAfter`` after the last one leaves;
* recording: real fMP4 segment files named by ``recordPath`` while a recording
  path is ready, built from a small H.264 clip that ffmpeg generates once per
  process (:func:`ensure_clip`), and ``/v3/recordings/*`` reading them back;
* publish mode (off by default; ``publishers=True``, ``--publishers``): the
  path's real ``runOnDemand`` command is run, its RTSP session spliced to an
  ffmpeg RTSP server, and what it sends is what gets recorded; when it dies the
  path goes not ready and the segment ends whole (:mod:`.publish`);
* a log of every request received (:attr:`MediaMTXStandIn.requests`) and the
  list of requests the OpenAPI document does not allow
  (:attr:`MediaMTXStandIn.violations`, see :mod:`tests.support.openapi`).

Modules: :mod:`.gojson` (Go formats), :mod:`.schema` (configuration model),
:mod:`.clip` (the fMP4 clip), :mod:`.recordpath` (recordPath), :mod:`.runtime`
(readers, publisher, recorder), :mod:`.rtsp`, :mod:`.publish` (publish mode), :mod:`.http` (resource, routes),
:mod:`.standin` (:class:`MediaMTXStandIn`), ``__main__`` (standalone).

Run it on its own::

    python -m tests.support.mediamtx --port 9997 --rtsp-port 8554 \
        [--record-root DIR] [--user U --password P] [--delay 0.2] [--config mediamtx.yml] [--publishers]

It prints ``READY <port>`` (plus `` rtsp=<port>`` when RTSP is on) once listening.
"""

from tests.support.mediamtx.clip import ensure_clip, split_fmp4
from tests.support.mediamtx.gojson import GoError, go_json, go_json_loads, go_time, parse_go_duration
from tests.support.mediamtx.http import RecordedRequest, _APIResource
from tests.support.mediamtx.recordpath import common_path, render_record_path
from tests.support.mediamtx.runtime import PathNotServed, Reader
from tests.support.mediamtx.schema import DEFAULTS_PATH, VERSION, path_name_error, validate_path_conf
from tests.support.mediamtx.standin import AUTH_PAUSE_AFTER_ERROR, MediaMTXStandIn

__all__ = [
    "AUTH_PAUSE_AFTER_ERROR",
    "DEFAULTS_PATH",
    "VERSION",
    "GoError",
    "MediaMTXStandIn",
    "PathNotServed",
    "Reader",
    "RecordedRequest",
    "_APIResource",
    "common_path",
    "ensure_clip",
    "go_json",
    "go_json_loads",
    "go_time",
    "parse_go_duration",
    "path_name_error",
    "render_record_path",
    "split_fmp4",
    "validate_path_conf",
]
