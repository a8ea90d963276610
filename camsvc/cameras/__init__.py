"""Cameras: which V4L2 devices are cameras, their stable identities and their state.

Owns the camera registry (:mod:`.registry`: the Camera record and its
observers), udev discovery (:mod:`.discovery`; reading udev in :mod:`.udev`, which
nodes are cameras in :mod:`.selection`, the present set in :mod:`.presence`,
probe scheduling in :mod:`.scheduling`), stable ids (:mod:`.identity`,
``camera-ids.json``), capability probing in a child process
(:mod:`.probing`), the V4L2 ioctl binding (:mod:`.v4l2`) and the entry points that keep
an idle camsvc from loading camera code it does not run (:mod:`.component`).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`.  Knows nothing of
WebSockets, HTTP, JSON-RPC sessions, MediaMTX or media.
"""
