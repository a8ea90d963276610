"""What runs outside the service: the client library, ``camsvc-cli`` and ``camsvc-admin``.

:mod:`.client` is a Twisted/Autobahn JSON-RPC client (``camsvc.client`` is an
alias kept for existing users), :mod:`.cli` the command-line client on it,
:mod:`.admin` the offline tool for API keys, tokens and secrets (it reads the
same configuration file and key store as the service).

May import: :mod:`camsvc.common`, :mod:`camsvc.config`, :mod:`camsvc.auth`
(the key store, for the admin tool).  The service never imports this package.
"""
