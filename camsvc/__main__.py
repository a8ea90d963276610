"""``python3 -m camsvc``: twistd running camsvc, without twistd's plugin scan.

Owns the start command of the shipped unit, ``make run`` and the test and benchmark
servers.  The command line is twistd's, ``python3 -m camsvc [twistd options] [camsvc
[--config FILE]]`` (the ``camsvc`` subcommand is the default), and twistd's own runner runs
it (:func:`twisted.scripts.twistd.runApp`): the same options, logging, signal handling and
exit statuses as ``twistd camsvc``, which keeps working.

The one difference: twistd finds its subcommands by scanning every module of
``twisted/plugins`` (loading ``dropin.cache`` imports each plugin's interfaces:
``twisted.trial`` with ``unittest``, ``twisted.words``, ``twisted.cred.strcred``, ... about
1.2 MiB resident that camsvc never uses).  Here the only subcommand is camsvc's own plugin,
imported directly.  Run it with ``-I`` (as the unit does) so that the working directory is
not put on ``sys.path``.
"""

from __future__ import annotations

from typing import Any

from twisted.scripts import twistd


def service_makers(interface: Any = None) -> list:
    """camsvc's twistd plugin, and nothing else: what twistd's scan would have found for it."""
    from twisted.plugins.camsvc_plugin import camsvc

    return [camsvc]


class ServerOptions(twistd.ServerOptions):
    """twistd's options, with camsvc's plugin as the only (and default) subcommand."""

    _getPlugins = staticmethod(service_makers)
    defaultSubCommand = "camsvc"


def main() -> None:
    twistd.app.run(twistd.runApp, ServerOptions)


if __name__ == "__main__":
    main()
