"""The topic layout of one camsvc host, and its Home Assistant discovery topics.

Everything lives under the base topic (``camsvc/<host id>`` by default)::

    <base>/availability                       online | offline (retained, Last Will)
    <base>/storage                            storage state JSON (retained)
    <base>/mediamtx                           MediaMTX state JSON (retained)
    <base>/events                             events JSON (not retained)
    <base>/command                            JSON-RPC requests in (commands on)
    <base>/response                           JSON-RPC responses out
    <base>/cameras/<camera_id>/state          the Camera object JSON (retained)
    <base>/cameras/<camera_id>/recording      ON | OFF (retained)
    <base>/cameras/<camera_id>/image          the latest snapshot, image bytes
    <base>/cameras/<camera_id>/recording/set  ON | OFF in (Home Assistant switch)
    <base>/cameras/<camera_id>/snapshot/take  PRESS in (Home Assistant button)

Discovery configurations go to ``<prefix>/<component>/<host id>/<object id>/config``
(Home Assistant's ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``).
"""

from __future__ import annotations

RECORDING_SET = "recording/set"
SNAPSHOT_TAKE = "snapshot/take"


class Topics:
    """Topic names for one host (``base``) and discovery (``prefix``, ``node_id``)."""

    def __init__(self, base: str, prefix: str, node_id: str) -> None:
        self.base = base
        self.prefix = prefix
        self.node_id = node_id
        self.availability = f"{base}/availability"
        self.storage = f"{base}/storage"
        self.mediamtx = f"{base}/mediamtx"
        self.events = f"{base}/events"
        self.command = f"{base}/command"
        self.response = f"{base}/response"

    def camera(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{camera_id}/state"

    def recording(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{camera_id}/recording"

    def image(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{camera_id}/image"

    def recording_set(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{camera_id}/{RECORDING_SET}"

    def snapshot_take(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{camera_id}/{SNAPSHOT_TAKE}"

    def command_subscriptions(self) -> list[str]:
        """What the bridge subscribes to when commands are on."""
        return [
            self.command,
            f"{self.base}/cameras/+/{RECORDING_SET}",
            f"{self.base}/cameras/+/{SNAPSHOT_TAKE}",
        ]

    def camera_command(self, topic: str) -> tuple[str, str] | None:
        """``(camera_id, "recording/set" | "snapshot/take")`` for a camera command topic, else None."""
        head = f"{self.base}/cameras/"
        if not topic.startswith(head):
            return None
        camera_id, _, action = topic[len(head) :].partition("/")
        if not camera_id or action not in (RECORDING_SET, SNAPSHOT_TAKE):
            return None
        return camera_id, action

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node_id}/{object_id}/config"
