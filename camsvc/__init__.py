"""camsvc: USB camera hotplug service with a JSON-RPC 2.0 WebSocket API around MediaMTX."""

__version__ = "0.1.0"
