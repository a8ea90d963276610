"""Packaging for camsvc.

``package_dir={"": "."}`` and listing ``twisted.plugins`` in ``packages`` make
the twistd plugin visible from editable installs and from wheels alike; the
plugin directory itself has no ``__init__.py`` (Twisted's convention).
"""

from setuptools import find_packages, setup

setup(
    name="camsvc",
    version="0.1.0",
    description="USB camera hotplug service with a JSON-RPC 2.0 WebSocket API around MediaMTX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir={"": "."},
    packages=find_packages(include=["camsvc", "camsvc.*"]) + ["twisted.plugins"],
    package_data={"camsvc": ["data/*", "server/static/*"], "twisted.plugins": ["camsvc_plugin.py"]},
    include_package_data=True,
    install_requires=[
        # Lower bounds are the oldest supported distribution's versions (Ubuntu
        # 22.04, tests/distros/ubuntu-22.04.txt; make test-jammy-libs runs on them).
        "Twisted>=22.1",
        "autobahn>=21.11",
        "treq>=22.1",
        "pyudev>=0.22",
        "PyYAML>=5.4",
        "service-identity>=18.1",
        "PyJWT>=2.3",
        "prometheus-client>=0.9",
        "paho-mqtt>=1.6.1",
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-twisted",
            "websockets",
            "hypothesis",
            "jsonschema",
            "selenium",
            # `patch = subprocess` (7.10) measures the children tests start (.coveragerc).
            "coverage>=7.10",
        ],
        "dev": ["ruff"],
    },
    entry_points={
        "console_scripts": [
            "camsvc-admin = camsvc.tools.admin:run",
            "camsvc-cli = camsvc.tools.cli:entry_point",
        ],
    },
    zip_safe=False,
)
