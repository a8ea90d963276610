"""The fault-injection suite (``make test-faults``, a ``make test`` stage of its own).

Kept out of ``tests/`` so the main pytest stage does not run it twice; it uses the
same support code (``tests.support``) and fixtures.
"""

from tests.conftest import *  # noqa: F401,F403 - the CI rules (a skip under CI=true fails)
from tests.support.fixtures import mediamtx_clip, mediamtx_standin  # noqa: F401
