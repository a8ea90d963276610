"""Alias of :mod:`camsvc.tools.client`, kept so ``from camsvc.client import Client`` keeps working."""

from camsvc.tools.client import *  # noqa: F401,F403
from camsvc.tools.client import __all__  # noqa: F401
