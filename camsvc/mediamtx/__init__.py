"""MediaMTX integration: control-API client, desired paths, reconciler, reachability.

Modules: :mod:`.client` (the ``/v3`` HTTP client and its typed errors),
:mod:`.desired` (per-camera path configuration, semantic comparison),
:mod:`.monitor` (reachability, readiness, notifications, restart detection),
:mod:`.reconcile` (the reconciler and the path-ownership ledger) and
:mod:`.component` (wiring: ``setup(app)``, the :class:`~.component.MediaMTX`
facade other components use as ``app.mediamtx``).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`, :mod:`camsvc.cameras`
(the camera records it publishes); never the server, auth, API or ops layers.
"""
