"""The demo's own settings: its rooms, its user names and what its worker does.

They live here, not in `Settings`: the server core knows nothing of the demo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Names of the demo's rooms and the limits of its worker."""

    session_id: str = "demo"  # annotation_{session_id}
    test_session_id: str = "demo"  # detection_stream_{test_session_id}
    project_id: str = "demo"  # project_{project_id}
    model_name: str = "demo-detector"
    reviewer_id: str = "demo-reviewer"
    min_rate: int = 1  # frames/s the model run may be asked for
    max_rate: int = 200
    default_rate: int = 30
    test_set_frames: int = 3000  # frames one model run goes through
    review_delay_seconds: float = 0.6  # how long the simulated reviewer "looks"
    token_ttl_seconds: int = 3600

    @property
    def annotation_room(self) -> str:
        return f"annotation_{self.session_id}"

    @property
    def detection_room(self) -> str:
        return f"detection_stream_{self.test_session_id}"

    @property
    def project_room(self) -> str:
        return f"project_{self.project_id}"

    def clamp_rate(self, rate: float) -> int:
        return int(min(self.max_rate, max(self.min_rate, round(rate))))


def user_id_for(name: str) -> str:
    """A user id (`[A-Za-z0-9_-]{1,64}`, so that `user_{id}` is a room) from a display name."""
    slug = _NOT_ID.sub("-", name.strip().lower()).strip("-")[:64]
    return slug or "demo-user"
