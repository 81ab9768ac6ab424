"""The demo served by `roomcast serve --demo`: an annotation workspace in the browser.

`add_demo_routes` mounts it; `DemoConfig` names its rooms and bounds its worker.
"""

from .config import DemoConfig
from .routes import add_demo_routes

__all__ = ["DemoConfig", "add_demo_routes"]
