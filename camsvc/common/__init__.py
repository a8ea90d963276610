"""Foundation shared by every layer: the JSON-RPC error vocabulary and small helpers.

Owns :mod:`.errors` (every error code camsvc answers with, in one place) and the
helpers every layer uses the same way (atomic file writes, ISO timestamps, the
Host header, imports deferred to their first use).

May import: the standard library and Twisted only — nothing else of camsvc.
"""
