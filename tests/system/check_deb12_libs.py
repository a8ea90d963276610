"""make test-deb12-libs: fail unless camsvc's runtime libraries are Debian 12's own.

Run by the venv's interpreter before the suite, so a pip upgrade that slipped
in (a dependency pulled by a test tool) cannot turn the stage into a second
PyPI run without anyone noticing.
"""

import importlib
import sys

DEBIAN = "/usr/lib/python3/dist-packages/"
MODULES = (
    "twisted",
    "autobahn",
    "treq",
    "pyudev",
    "yaml",
    "jwt",
    "prometheus_client",
    "service_identity",
    "paho.mqtt",
)


def main():
    bad = []
    for name in MODULES:
        mod = importlib.import_module(name)
        version = getattr(mod, "__version__", "")
        where = mod.__file__
        print(f"{name:18} {version:10} {where}")
        if not where.startswith(DEBIAN):
            bad.append(name)
    if bad:
        sys.exit(f"not Debian's: {', '.join(bad)}")


if __name__ == "__main__":
    main()
