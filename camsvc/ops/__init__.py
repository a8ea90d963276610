"""Operations plumbing: what keeps the process observable and well-behaved.

Owns readiness conditions (:mod:`.health`), Prometheus metrics
(:mod:`.metrics`), systemd notification and the watchdog (:mod:`.systemd`),
signals and the ordered shutdown (:mod:`.lifecycle`), SIGHUP reload
(:mod:`.reload`), the log observer (:mod:`.logs`), keeping the TLS stack
out of processes that do not use it (:mod:`.lean`) and the reactor's direct I/O
dispatch (:mod:`.dispatch`).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`.  Other layers are
reached only through what the composition root hands in.
"""
