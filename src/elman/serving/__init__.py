"""``elman serve``: a forecasting service over HTTP that learns from new observations.

:func:`serve` runs it; :func:`create_app` builds the ASGI application (for tests or another
ASGI server). See docs/serving.md for the routes, the durability and the security model.
"""

from elman.serving.app import ServeOptions, create_app
from elman.serving.server import serve
from elman.serving.tables import Limits

__all__ = ["Limits", "ServeOptions", "create_app", "serve"]
