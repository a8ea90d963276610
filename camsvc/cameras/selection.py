"""Which udev nodes are cameras.

This module owns the rule that picks camera nodes out of ``video4linux``, decided
*before* a node is announced (a node is never CONNECTED and then dropped, and never
gets an id unless it is a camera):

1. **Candidates** (:func:`udev_capture`, from udev alone): only ``videoN`` nodes (the
   V4L2 core names touch sensors ``v4l-touchN``, which report VIDEO_CAPTURE too, and
   VBI, radio, SDR and sub-device nodes have names of their own) whose
   ``ID_V4L_CAPABILITIES`` (udev's ``v4l_id``) contains ``:capture:``.  Old udev
   (systemd < 245) marks UVC *metadata* nodes ``:capture:`` as well (zoo file 27),
   so this is only a pre-filter.
2. **The node's own QUERYCAP** (:func:`decide`): ``device_caps`` (this node, not the
   device-wide ``capabilities``) must have VIDEO_CAPTURE or VIDEO_CAPTURE_MPLANE and
   not M2M or TOUCH (:attr:`camsvc.cameras.v4l2.DeviceInfo.is_capture`).  That drops
   metadata nodes (0x04a00000), codecs (bcm2835-codec 0x04204000) and scalers.
3. **SoC pipeline nodes** that do report plain video capture, by driver
   (:data:`SOC_DRIVERS`): Raspberry Pi ``bcm2835-isp`` (its capture nodes are
   0x04200001, exactly like a webcam), ``bcm2835-codec``, ``rpivid``, ``pispbe``;
   Rockchip ``rkisp1`` statistics/params, ``rockchip-rga``, ``rockchip-iep``,
   ``hantro-vpu``, ``rkvdec``; and by card name the non-image nodes of capture
   front ends (``*-stats``, ``*-params``, ``*-config``, ``*embedded*``: rp1-cfe).
4. **Raw sensor receivers** (:data:`RAW_SENSOR_DRIVERS`: ``unicam``, ``rp1-cfe``,
   Intel IPU6/IPU3 ``isys``/``ipu3-cio2``, ``tegra-video``, ``rkcif``): their image
   nodes deliver raw Bayer that needs libcamera or the SoC's ISP, which camsvc's
   ffmpeg publishing cannot use; they are not cameras unless the operator lists
   them in ``discovery.include`` (for a sensor that outputs YUV or a pipeline
   configured outside camsvc).
5. **v4l2loopback** virtual cameras (driver ``v4l2 loopback``) *are* cameras: on
   IPU6 laptops the only usable camera is a loopback fed by a userspace pipeline.

Operator override (``discovery.include`` / ``discovery.exclude``): entries are
``driver:GLOB``, ``card:GLOB`` (fnmatch, case-insensitive) or a ``/dev/...`` glob
matched against the node and its by-id/by-path links.  ``exclude`` wins over
``include``; ``include`` overrides rules 3 and 4 but not 2 (a node that cannot
capture cannot be published).  When QUERYCAP cannot be asked (permission denied)
udev's word (rule 1) stands and the capability probe reports the problem.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from typing import Any

#: Drivers whose video-capture nodes are stages of a SoC pipeline, not cameras.
SOC_DRIVERS = frozenset(
    {
        "bcm2835-codec",
        "bcm2835-isp",
        "rpivid",
        "pispbe",
        "rkisp1-stats",
        "rockchip-rga",
        "rga",
        "rockchip-iep",
        "iep",
        "hantro-vpu",
        "hantro",
        "rkvdec",
        "cedrus",
        "sun6i-isp",
    }
)
#: Card-name globs of non-image nodes of capture front ends (statistics, parameters,
#: embedded data), whatever their driver.
SOC_CARDS = ("*-stats*", "*_stats*", "*-params*", "*_params*", "*-config*", "*embedded*")
#: Drivers of raw sensor receivers (CSI-2 / ISYS): raw Bayer, needs an ISP.
RAW_SENSOR_DRIVERS = frozenset({"unicam", "rp1-cfe", "isys", "intel-ipu6-isys", "ipu3-cio2", "tegra-video", "rkcif"})


def is_video_node(device: Any) -> bool:
    """Only ``/dev/videoN`` nodes can be cameras."""
    return os.path.basename(device.device_node or device.sys_path).startswith("video")


def udev_capture(device: Any) -> bool | None:
    """True/False from ``ID_V4L_CAPABILITIES``; None when udev did not set it."""
    if not is_video_node(device):
        return False
    caps = device.properties.get("ID_V4L_CAPABILITIES")
    if caps is None:
        return None
    return ":capture:" in caps


def _match(patterns: Sequence[str], driver: str, card: str, paths: Iterable[str]) -> str | None:
    paths = list(paths)
    for pattern in patterns:
        kind, _, glob = pattern.partition(":")
        if pattern.startswith("/dev/"):
            if any(fnmatch.fnmatchcase(p, pattern) for p in paths):
                return pattern
        elif kind == "driver" and fnmatch.fnmatch(driver.lower(), glob.lower()):
            return pattern
        elif kind == "card" and fnmatch.fnmatch(card.lower(), glob.lower()):
            return pattern
    return None


def decide(
    device: Any,
    info: Any,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[bool, str]:
    """``(is_camera, why)`` for a candidate node; ``info`` is its QUERYCAP
    (:class:`camsvc.cameras.v4l2.DeviceInfo`) or None when it could not be asked."""
    driver = (info.driver if info is not None else device.properties.get("ID_USB_DRIVER", "")) or ""
    card = (info.card if info is not None else device.properties.get("ID_V4L_PRODUCT", "")) or ""
    paths = (device.device_node or "", *device.properties.get("DEVLINKS", "").split())
    excluded = _match(exclude, driver, card, paths)
    if excluded:
        return False, f"excluded by discovery.exclude {excluded!r}"
    if info is not None and not info.is_capture:
        return False, f"not a video capture node (device_caps=0x{info.node_caps:08x})"
    included = _match(include, driver, card, paths)
    if included:
        return True, f"included by discovery.include {included!r}"
    if info is None:
        return True, "capture node per udev (QUERYCAP not available)"
    if driver.lower() in SOC_DRIVERS:
        return False, f"a {driver} SoC pipeline node, not a camera"
    if any(fnmatch.fnmatch(card.lower(), g) for g in SOC_CARDS):
        return False, f"a non-image node ({card!r}) of a capture pipeline"
    if driver.lower() in RAW_SENSOR_DRIVERS:
        return False, f"a raw sensor receiver ({driver}) that needs an ISP; list it in discovery.include to use it"
    return True, "video capture node"


def node_number(devnode: str | None) -> tuple[int, str]:
    base = os.path.basename(devnode or "")
    digits = base[len(base.rstrip("0123456789")) :]
    return (int(digits) if digits else 1 << 30, base)
