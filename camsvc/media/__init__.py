"""Media: snapshots, recordings, their files, downloads, storage levels and retention.

The component (``setup``, the ``Media`` facade) is :mod:`.component`; the
rest are its parts: :mod:`.files` (names, confinement, listing), :mod:`.mp4`
(fMP4 durations), :mod:`.process` (ffmpeg on the reactor),
:mod:`.snapshots`, :mod:`.recordings` (sessions, keep-alive reader,
recovery), :mod:`.storage` (free space, retention), :mod:`.http` (downloads).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`, :mod:`camsvc.cameras`.
Never the server, auth, API or ops layers.
"""
