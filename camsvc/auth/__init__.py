"""Authentication: who a client is, for the WebSocket API and the HTTP surface.

What a role may call is decided elsewhere (:func:`camsvc.server.session.authorize`);
this package decides *who* the client is:

- :mod:`.keystore`: the credential files (the JWT secret, the API key file);
- :mod:`.tokens`: API JWTs and download tokens (PyJWT, HS256 only);
- :mod:`.limiter`: failed attempts per connection and per client address;
- :mod:`.authenticator`: :class:`~.authenticator.Authenticator`, the service that
  checks credentials, signs downloads and ends sessions whose credential was
  revoked (its ``revalidate`` is an engine guard);
- :mod:`.http`: the HTTP guard (:class:`~.http.Protected`) for ``/metrics`` and ``/files``.

Client addresses (``X-Forwarded-For`` from trusted proxies) live in
:mod:`camsvc.common.addresses`, shared with the WebSocket transport.

May import: camsvc.server (roles, the JSON encoder), camsvc.ops, camsvc.config,
camsvc.common.  ``camsvc-admin`` (camsvc.tools) uses :mod:`.keystore` and :mod:`.tokens`.
"""
