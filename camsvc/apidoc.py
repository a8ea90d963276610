"""The API documents of the fully wired service: ``python -m camsvc.apidoc > docs/openrpc.json``.

``make openrpc`` runs it.  Part of the composition root: it builds the whole
service (:func:`camsvc.tap.full_registry`, nothing started) and renders its
method registry with :func:`camsvc.server.openrpc.build_document`, so the
server layer never needs to import the root.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from camsvc.server.openrpc import build_document
    from camsvc.tap import full_registry

    json.dump(build_document(full_registry()), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
