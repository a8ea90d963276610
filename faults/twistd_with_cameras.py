"""``twistd -n camsvc`` with cameras put straight into the registry (fault-suite support).

``python -m faults.twistd_with_cameras [twistd args]`` runs Twisted's twistd exactly as
``tests.support.server.ServiceProcess`` does, the production :func:`camsvc.tap.makeService`
included; only :func:`camsvc.tap.build` is wrapped so that, once the reactor runs,
``FAULT_CAMERAS`` (default 1) connected MJPG cameras are in ``app.cameras`` (discovery
off).  For processes that cannot have the umockdev preload: umockdev's preload and
libfaketime's deadlock at start when both are in ``LD_PRELOAD`` (libfaketime 0.9.10,
``FAKETIME_NO_CACHE`` or ``FAKETIME_DONT_FAKE_MONOTONIC`` set).
"""

from __future__ import annotations

import os

from camsvc import tap
from tests.support.cameras import acme_camera as camera


def main() -> None:
    real_build = tap.build

    def build(config, reactor, **kwargs):
        app = real_build(config, reactor, **kwargs)
        count = int(os.environ.get("FAULT_CAMERAS", "1"))
        reactor.callWhenRunning(lambda: [app.cameras.put(camera(n)) for n in range(count)])
        return app

    tap.build = build
    from twisted.scripts.twistd import run

    run()


if __name__ == "__main__":
    main()
