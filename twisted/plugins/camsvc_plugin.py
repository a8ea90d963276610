"""twistd plugin: ``twistd camsvc``.  Names camsvc.tap by string so plugin scans import nothing heavy."""

from twisted.application.service import ServiceMaker

camsvc = ServiceMaker(
    "camsvc",
    "camsvc.tap",
    "USB camera discovery and a JSON-RPC 2.0 WebSocket API around MediaMTX",
    "camsvc",
)
