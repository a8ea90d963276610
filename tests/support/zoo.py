"""The camera zoo: populations of real V4L2 nodes, built from the dumps in
``/work/shared/reference/zoo/`` (file numbers below are theirs).

Each population is a list of :class:`ZooNode`: the node's sysfs path, ``/dev`` node, its
udev properties *as udev makes them* (``ID_SERIAL`` is ``<vendor>_<model>[_<serial>]``,
by-id names carry no USB interface number and no serial when there is none, so
identical cameras and the RGB/IR functions of one camera share a by-id name; old udev
marks metadata nodes ``:capture:``), which node udev gave a contested link to
(``owns``), and the node's ``VIDIOC_QUERYCAP`` answer (driver, card, bus_info,
capabilities, device caps) and formats as the dump shows them.  Where a dump was cut
off, what is missing is filled in by udev's rule (``60-persistent-v4l.rules``) and
marked ``# rule``.

:func:`udev_devices` turns a population into :class:`camsvc.cameras.udev.UdevDevice`
records plus the QUERYCAP map and link owners for :class:`camsvc.testing.FakeUdev`;
tests/test_zoo.py replays every population (and replugs in every order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from camsvc.cameras.udev import UdevDevice
from camsvc.cameras.v4l2 import DeviceInfo

CAPTURE = 0x04200001  # Video Capture, Streaming, Extended Pix Format
METADATA = 0x04A00000  # Metadata Capture, Streaming, Extended Pix Format
M2M_MPLANE = 0x04204000  # Video Memory-to-Memory Multiplanar (bcm2835-codec, rpivid)
OUTPUT = 0x04200002  # Video Output (the bcm2835-isp input node)
DEVICE_CAPS = 0x80000000


def _fmt(fourcc: str, sizes: list[tuple[int, int, list]], compressed: bool = False) -> dict:
    return {
        "format": fourcc,
        "description": fourcc,
        "compressed": compressed,
        "sizes": [{"width": w, "height": h, "fps": fps} for w, h, fps in sizes],
    }


YUYV_MJPG = [
    _fmt("YUYV", [(640, 480, [30]), (1280, 720, [10])]),
    _fmt("MJPG", [(1280, 720, [30]), (640, 480, [30])], compressed=True),
]
GREY_IR = [_fmt("GREY", [(640, 360, [15]), (340, 340, [15])])]


@dataclass
class ZooNode:
    sys_path: str
    devnode: str
    properties: dict
    index: int = 0
    driver: str = "uvcvideo"
    card: str = ""
    bus_info: str = ""
    device_caps: int = CAPTURE
    formats: list = field(default_factory=list)
    #: the contested /dev/v4l links udev pointed at this node (the others point elsewhere)
    owns: tuple = ()

    @property
    def links(self) -> list[str]:
        return self.properties.get("DEVLINKS", "").split()

    def querycap(self) -> DeviceInfo:
        return DeviceInfo(
            driver=self.driver,
            card=self.card,
            bus_info=self.bus_info,
            version=0x060115,
            capabilities=self.device_caps | DEVICE_CAPS | CAPTURE,
            device_caps=self.device_caps,
        )


def _uvc(
    sys_path: str,
    video: int,
    *,
    index: int,
    id_serial: str,
    id_path: str,
    card: str,
    bus_info: str,
    interface: str = "00",
    serial: str | None = None,
    vendor: str = "046d",
    model_id: str = "0825",
    capabilities: str | None = None,
    device_caps: int | None = None,
    formats: list | None = None,
    owns: tuple = (),
    by_path_first: bool = False,
) -> ZooNode:
    """A UVC node with the properties udev's usb_id, path_id and v4l_id builtins give it."""
    meta = index % 2 == 1 if device_caps is None else device_caps == METADATA
    by_id = f"/dev/v4l/by-id/usb-{id_serial}-video-index{index}"
    by_path = f"/dev/v4l/by-path/{id_path}-video-index{index}"
    props = {
        "DEVPATH": sys_path[len("/sys") :],
        "DEVNAME": f"/dev/video{video}",
        "SUBSYSTEM": "video4linux",
        "ID_V4L_VERSION": "2",
        "ID_V4L_PRODUCT": card,
        "ID_V4L_CAPABILITIES": capabilities if capabilities is not None else (":" if meta else ":capture:"),
        "ID_BUS": "usb",
        "ID_VENDOR_ID": vendor,
        "ID_MODEL_ID": model_id,
        "ID_SERIAL": id_serial,
        "ID_USB_INTERFACE_NUM": interface,
        "ID_USB_DRIVER": "uvcvideo",
        "ID_PATH": id_path,
        "ID_PATH_TAG": id_path.replace(":", "_").replace(".", "_").replace("-", "_"),
        "DEVLINKS": f"{by_path} {by_id}" if by_path_first else f"{by_id} {by_path}",
    }
    if serial:
        props["ID_SERIAL_SHORT"] = serial
    return ZooNode(
        sys_path=sys_path,
        devnode=f"/dev/video{video}",
        properties=props,
        index=index,
        card=card,
        bus_info=bus_info,
        device_caps=device_caps if device_caps is not None else (METADATA if meta else CAPTURE),
        formats=formats if formats is not None else ([] if meta else YUYV_MJPG),
        owns=owns,
    )


# -- 01: two Logitech C270 on a Raspberry Pi 5, both with serial 200901010001 --------


def two_c270_bogus_serial() -> list[ZooNode]:
    """File 01: both report iSerial 200901010001; the by-id name of their capture nodes
    collides (udev: the last one processed wins, here webcam 2); by-path differs."""
    c270 = "046d_C270_HD_WEBCAM_200901010001"
    card = "C270 HD WEBCAM"
    base1 = "/sys/devices/platform/axi/1000120000.pcie/1f00300000.usb/xhci-hcd.1/usb3/3-1/3-1:1.0/video4linux"
    base2 = "/sys/devices/platform/axi/1000120000.pcie/1f00200000.usb/xhci-hcd.0/usb1/1-1/1-1:1.0/video4linux"
    common = {"id_serial": c270, "serial": "200901010001", "card": card}
    by_id0 = f"/dev/v4l/by-id/usb-{c270}-video-index0"
    by_id1 = f"/dev/v4l/by-id/usb-{c270}-video-index1"  # rule
    return [
        _uvc(
            f"{base1}/video0",
            0,
            index=0,
            id_path="platform-xhci-hcd.1-usb-0:1:1.0",
            bus_info="usb-xhci-hcd.1-1",
            **common,
        ),
        _uvc(
            f"{base1}/video1",
            1,
            index=1,
            id_path="platform-xhci-hcd.1-usb-0:1:1.0",
            bus_info="usb-xhci-hcd.1-1",
            **common,
        ),
        _uvc(
            f"{base2}/video2",
            2,
            index=0,
            id_path="platform-xhci-hcd.0-usb-0:1:1.0",
            bus_info="usb-xhci-hcd.0-1",
            owns=(by_id0,),
            **common,
        ),
        _uvc(
            f"{base2}/video3",
            3,
            index=1,
            id_path="platform-xhci-hcd.0-usb-0:1:1.0",
            bus_info="usb-xhci-hcd.0-1",
            owns=(by_id1,),
            **common,
        ),
    ]


# -- 07: two ELP-style "HD USB Camera" without a serial, on a Jetson ----------------


def two_hd_usb_camera_no_serial() -> list[ZooNode]:
    """File 07: ID_SERIAL is just vendor_model, no ID_SERIAL_SHORT; metadata ``:``."""
    out = []
    for n, port in enumerate(("2.1", "2.2")):
        base = f"/sys/devices/platform/3610000.xhci/usb1/1-{port}/1-{port}:1.0/video4linux"
        id_path = f"platform-3610000.xhci-usb-0:{port}:1.0"
        for index in (0, 1):
            video = 2 * n + index
            out.append(
                _uvc(
                    f"{base}/video{video}",
                    video,
                    index=index,
                    id_serial="HD_USB_Camera_HD_USB_Camera",
                    id_path=id_path,
                    card="HD USB Camera: HD USB Camera",
                    bus_info=f"usb-3610000.xhci-{port}",
                    vendor="32e4",
                    model_id="9230",
                    owns=(f"/dev/v4l/by-id/usb-HD_USB_Camera_HD_USB_Camera-video-index{index}",) if n == 0 else (),
                )
            )
    return out


# -- 10 + 04: Raspberry Pi 4: unicam (IMX219), bcm2835-codec, bcm2835-isp, rpivid ---


def _platform(
    sys_path: str, video: int, *, driver: str, card: str, device_caps: int, id_path: str, index: int = 0
) -> ZooNode:
    capture = device_caps & 0x1
    props = {
        "DEVPATH": sys_path[len("/sys") :],
        "DEVNAME": f"/dev/video{video}",
        "SUBSYSTEM": "video4linux",
        "ID_V4L_VERSION": "2",
        "ID_V4L_PRODUCT": card,
        "ID_V4L_CAPABILITIES": ":capture:" if capture else (":video_output:" if device_caps & 0x2 else ":"),
        "ID_PATH": id_path,
        "ID_PATH_TAG": id_path.replace(":", "_").replace(".", "_").replace("-", "_"),
        "DEVLINKS": f"/dev/v4l/by-path/{id_path}-video-index{index}",
    }
    return ZooNode(
        sys_path=sys_path,
        devnode=f"/dev/video{video}",
        properties=props,
        index=index,
        driver=driver,
        card=card,
        bus_info=f"platform:{driver}",
        device_caps=device_caps,
        formats=[_fmt("pRAA", [(3280, 2464, [15])])] if driver == "unicam" else YUYV_MJPG,
    )


def rpi4_soc_nodes() -> list[ZooNode]:
    """Files 04 and 10: only video0 (unicam, raw Bayer) is a sensor; the codec and rpivid
    are M2M; the ISP's capture nodes are 0x04200001 like a webcam (udev ``:capture:``)."""
    soc = "/sys/devices/platform/soc"
    nodes = [
        _platform(
            f"{soc}/fe801000.csi/video4linux/video0",
            0,
            driver="unicam",
            card="unicam",
            device_caps=0x25200001,
            id_path="platform-fe801000.csi",
        )
    ]
    for video, card in ((10, "bcm2835-codec-decode"), (11, "bcm2835-codec-encode"), (12, "bcm2835-codec-isp")):
        nodes.append(
            _platform(
                f"{soc}/soc:bcm2835-codec/video4linux/video{video}",  # rule: path not shown in the dump
                video,
                driver="bcm2835-codec",
                card=card,
                device_caps=M2M_MPLANE,
                id_path="platform-bcm2835-codec",
                index=video - 10,
            )
        )
    isp = f"{soc}/fe00b840.mailbox/bcm2835-isp/video4linux"
    nodes.append(
        _platform(
            f"{isp}/video13",
            13,
            driver="bcm2835-isp",
            card="bcm2835-isp",
            device_caps=OUTPUT,
            id_path="platform-bcm2835-isp",
        )
    )
    for i, video in enumerate((14, 15, 22)):
        nodes.append(
            _platform(
                f"{isp}/video{video}",
                video,
                driver="bcm2835-isp",
                card="bcm2835-isp",
                device_caps=CAPTURE,
                id_path="platform-bcm2835-isp",
                index=i + 1,
            )
        )
    nodes.append(
        _platform(
            f"{soc}/fdb10000.codec/video4linux/video19",
            19,
            driver="rpivid",
            card="rpivid",
            device_caps=M2M_MPLANE,
            id_path="platform-fdb10000.codec",
        )
    )
    return nodes


# -- 13 B: one laptop module with RGB and IR functions -------------------------------


def laptop_rgb_ir_one_device() -> list[ZooNode]:
    """File 13 (B): ``Integrated_Webcam_HD`` with four nodes: RGB (interface 00), its
    metadata, IR (interface 02, GREY), its metadata.  Same ID_SERIAL and card; both
    capture nodes are ``-video-index0`` of the same by-id name."""
    id_serial = "CN0HK3J6LOG0012AGDA1A00_Integrated_Webcam_HD"  # rule: vendor part as udev builds it
    card = "Integrated_Webcam_HD: Integrate"
    base = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-6"
    nodes = []
    for video, interface, index in ((0, "00", 0), (1, "00", 1), (2, "02", 0), (3, "02", 1)):
        iface = int(interface)
        nodes.append(
            _uvc(
                f"{base}/1-6:1.{iface}/video4linux/video{video}",
                video,
                index=index,
                id_serial=id_serial,
                id_path=f"pci-0000:00:14.0-usb-0:6:1.{iface}",
                card=card,
                bus_info="usb-0000:00:14.0-6",
                interface=interface,
                vendor="0c45",
                model_id="6a09",
                device_caps=METADATA if index else CAPTURE,
                formats=[] if index else (GREY_IR if interface == "02" else YUYV_MJPG),
                owns=(f"/dev/v4l/by-id/usb-{id_serial}-video-index{index}",) if interface == "02" else (),
            )
        )
    return nodes


# -- 25: Logitech BRIO, four nodes ------------------------------------------------------


def brio() -> list[ZooNode]:
    """File 25: RGB (1st node), metadata, IR (3rd node), metadata; one serial for both
    interfaces (the serial itself is not in the dumps: ``B2A1C3D4`` stands for it)."""
    serial = "B2A1C3D4"
    id_serial = f"046d_Logitech_BRIO_{serial}"
    base = "/sys/devices/pci0000:00/0000:03:00.3/usb3/3-1/3-1.1/3-1.1.4/3-1.1.4.1"
    nodes = []
    for video, interface, index in ((2, "00", 0), (3, "00", 1), (4, "02", 0), (5, "02", 1)):
        iface = int(interface)
        nodes.append(
            _uvc(
                f"{base}/3-1.1.4.1:1.{iface}/video4linux/video{video}",
                video,
                index=index,
                id_serial=id_serial,
                serial=serial,
                id_path=f"pci-0000:03:00.3-usb-0:1.1.4.1:1.{iface}",
                card="Logitech BRIO",
                bus_info="usb-0000:03:00.3-1.1.4.1",
                interface=interface,
                model_id="085e",
                device_caps=METADATA if index else CAPTURE,
                formats=[] if index else (GREY_IR if interface == "02" else YUYV_MJPG),
                owns=(f"/dev/v4l/by-id/usb-{id_serial}-video-index{index}",) if interface == "00" else (),
            )
        )
    return nodes


# -- 24: two genuine C920 with different serials, same card name -------------------------


def two_c920_with_serials() -> list[ZooNode]:
    """File 24: only bus_info (the port) differs in ``--list-devices``; by-id is unique."""
    nodes = []
    for n, (port, serial) in enumerate((("1.1", "B61DEDAF"), ("1.2", "5A3A22DF"))):  # serials: files 14 and 22
        base = (
            f"/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-{port}/1-{port}:1.0"
        )
        for index in (0, 1):
            video = 2 * n + index
            nodes.append(
                _uvc(
                    f"{base}/video4linux/video{video}",
                    video,
                    index=index,
                    id_serial=f"046d_HD_Pro_Webcam_C920_{serial}",
                    serial=serial,
                    id_path=f"platform-fd500000.pcie-pci-0000:01:00.0-usb-0:{port}:1.0",
                    card="HD Pro Webcam C920",
                    bus_info=f"usb-0000:01:00.0-{port}",
                    model_id="082d",
                )
            )
    return nodes


# -- 27: Guillemot camera on old systemd: the metadata node says :capture: -------------


def guillemot_old_udev() -> list[ZooNode]:
    """File 27 (systemd 241): ``ID_V4L_CAPABILITIES=:capture:`` on BOTH nodes; QUERYCAP of
    video1 says metadata.  DEVLINKS order differs between the nodes (verbatim)."""
    base = "/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/1-1.4/1-1.4:1.0"
    common = {
        "id_serial": "Guillemot_Corporation_USB_Camera",
        "id_path": "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4:1.0",
        "card": "USB Camera: USB Camera",
        "bus_info": "usb-0000:01:00.0-1.4",
        "vendor": "057e",
        "model_id": "030a",
        "capabilities": ":capture:",
    }
    return [
        _uvc(f"{base}/video4linux/video0", 0, index=0, device_caps=CAPTURE, **common),
        _uvc(f"{base}/video4linux/video1", 1, index=1, device_caps=METADATA, by_path_first=True, **common),
    ]


# -- 17: ELP dual capture node, an H.264-only camera, an MJPEG-only camera --------------

RATES = [30, 25, 20, 15, 10, 5]
ELP_MJPG = [
    _fmt("MJPG", [(1920, 1080, RATES), (1280, 720, RATES)], compressed=True),
    _fmt("YUYV", [(640, 480, [30])]),  # rule: "MJPG/YUYV..." (the YUYV list is cut off)
]
H264_ONLY = [_fmt("H264", [(640, 480, [30, 15, 10]), (1280, 720, [30, 15, 10]), (1920, 1080, [30, 15, 10])], True)]
MJPEG_ONLY_SQUARE = [_fmt("MJPG", [(2880, 2880, [30]), (2048, 2048, [30]), (1440, 1440, [30])], compressed=True)]


def elp_h264_two_capture_nodes() -> list[ZooNode]:
    """File 17 (A): "H264 USB Camera" on a Jetson TX2: video0 MJPG/YUYV, video1 H.264 only,
    both *capture* nodes (two streaming interfaces, no metadata node)."""
    base = "/sys/devices/3530000.xhci/usb1/1-2"
    nodes = []
    for video, iface, formats in ((0, 0, ELP_MJPG), (1, 2, H264_ONLY)):  # rule: interface numbers
        node = _uvc(
            f"{base}/1-2:1.{iface}/video4linux/video{video}",
            video,
            index=0,
            id_serial="HD_Camera_Manufacturer_H264_USB_Camera",  # rule: vendor/model strings not shown
            id_path=f"platform-3530000.xhci-usb-0:2:1.{iface}",
            card="H264 USB Camera",
            bus_info="usb-3530000.xhci-2",
            interface=f"{iface:02d}",
            vendor="05a3",
            model_id="9422",
            device_caps=CAPTURE,
            formats=formats,
            owns=("/dev/v4l/by-id/usb-HD_Camera_Manufacturer_H264_USB_Camera-video-index0",) if video == 0 else (),
        )
        nodes.append(node)
    return nodes


def single_format_cameras() -> list[ZooNode]:
    """File 17 (B) a VIA 040d:300a camera offering only H.264, (D) a Kodak PIXPRO 4K 360
    offering only MJPEG (square modes); plus a BRIO-like IR function offering only GREY."""
    out = []
    for n, (card, serial, formats) in enumerate(
        (
            ("USB Camera H264", "via", H264_ONLY),
            ("PIXPRO 4KVR360", "kodak", MJPEG_ONLY_SQUARE),
            ("IR Camera", "ir", GREY_IR),
        )
    ):
        port = str(n + 1)
        out.append(
            _uvc(
                f"/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-{port}/1-{port}:1.0/video4linux/video{2 * n}",
                2 * n,
                index=0,
                id_serial=f"{serial}_{card.replace(' ', '_')}",
                id_path=f"platform-fd500000.pcie-pci-0000:01:00.0-usb-0:{port}:1.0",
                card=card,
                bus_info=f"usb-0000:01:00.0-{port}",
                formats=formats,
            )
        )
    return out


# -- vivid n_devs=2 (the QEMU guest of /work/shared/reference/vm-camera.md) ------------------


def vivid_two_instances() -> list[ZooNode]:
    """``modprobe vivid n_devs=2``: two identical capture nodes under the one platform
    device ``vivid.0`` — same ``ID_PATH``, same card, no serial, both ``-video-index0``,
    so the by-path name is shared too (udev gives it to one of them)."""
    nodes = []
    for video in (0, 4):  # rule: each instance also makes output/VBI/radio/SDR/touch nodes
        node = _platform(
            f"/sys/devices/platform/vivid.0/video4linux/video{video}",
            video,
            driver="vivid",
            card="vivid",
            device_caps=0x05200001,  # Video Capture, Tuner?, Streaming, Read/Write (vivid's capture node)
            id_path="platform-vivid.0",
        )
        node.properties["ID_V4L_CAPABILITIES"] = ":capture:video_overlay:tuner:"  # vm-camera.md
        node.bus_info = f"platform:vivid-{len(nodes):03d}"  # vivid: "platform:" + v4l2_dev name "vivid-%03d"
        node.formats = YUYV_MJPG
        nodes.append(node)
    return nodes


def renumbered(node: ZooNode, video: int) -> ZooNode:
    """``node`` back on ``/dev/video<video>`` (the kernel frees a minor only at the last
    close: a camera replugged while a program still holds its node comes back on another
    one): same device, properties and QUERYCAP answer, another node number and sysfs name."""
    new = f"/dev/video{video}"
    sys_path = f"{node.sys_path.rsplit('/', 1)[0]}/video{video}"
    props = dict(node.properties)
    props["DEVNAME"] = new
    props["DEVPATH"] = sys_path[len("/sys") :]
    return replace(node, sys_path=sys_path, devnode=new, properties=props)


POPULATIONS = {
    "vivid_two_instances": vivid_two_instances,
    "elp_h264_two_capture_nodes": elp_h264_two_capture_nodes,
    "single_format_cameras": single_format_cameras,
    "two_c270_bogus_serial": two_c270_bogus_serial,
    "two_hd_usb_camera_no_serial": two_hd_usb_camera_no_serial,
    "rpi4_soc_nodes": rpi4_soc_nodes,
    "laptop_rgb_ir_one_device": laptop_rgb_ir_one_device,
    "brio": brio,
    "two_c920_with_serials": two_c920_with_serials,
    "guillemot_old_udev": guillemot_old_udev,
}


def udev_device(node: ZooNode) -> UdevDevice:
    return UdevDevice(
        sys_path=node.sys_path, device_node=node.devnode, properties=dict(node.properties), index=node.index
    )


def link_owners(nodes: list[ZooNode]) -> dict[str, str]:
    """/dev/v4l link -> sys_path of its owner: a node's uncontested links, and the
    contested ones where the population says (``owns``)."""
    claims: dict[str, list[ZooNode]] = {}
    for node in nodes:
        for link in node.links:
            claims.setdefault(link, []).append(node)
    owners = {}
    for link, claimants in claims.items():
        named = [n for n in claimants if link in n.owns]
        owners[link] = (named or claimants)[0].sys_path
    return owners


def probe_result(node: ZooNode) -> dict:
    """What ``python -m camsvc.cameras.v4l2 NODE`` prints for this node."""
    from camsvc.cameras.v4l2 import Capabilities, choose_default

    info = node.querycap()
    d = {
        "path": node.devnode,
        "driver": info.driver,
        "card": info.card,
        "bus_info": info.bus_info,
        "capabilities": info.capabilities,
        "device_caps": info.device_caps,
        "formats": node.formats,
    }
    default = choose_default(Capabilities.from_dict(d))
    d["default"] = (
        None
        if default is None
        else {
            "format": default.format,
            "width": default.width,
            "height": default.height,
            "fps": default.fps,
        }
    )
    return d


# -- the same populations on umockdev (tests/support/umockdev_bed.py add_zoo) ---------------


def _split_usb(sys_path: str) -> tuple[str, str, str] | None:
    """``(usb device path, interface name, node name)`` under /sys/devices, or None."""
    head, _, node = sys_path.partition("/video4linux/")
    parts = head.split("/")
    if len(parts) < 2 or not re.match(r"^\d+-[\d.]+$", parts[-2]) or not re.match(r"^\d+-[\d.]+:\d+\.\d+$", parts[-1]):
        return None
    return "/".join(parts[:-1])[len("/sys/devices/") :], parts[-1], node


def bed_plugs(nodes: list[ZooNode]) -> list[dict]:
    """One ``add_zoo`` command per physical device (what is plugged as one): its parent
    devices and its nodes, with properties, QUERYCAP answers and formats."""
    plugs: dict[str, dict] = {}
    for node in nodes:
        usb = _split_usb(node.sys_path)
        if usb is not None:
            top, interface, _ = usb
            plug = plugs.setdefault(
                top,
                {
                    "name": top.rsplit("/", 1)[-1],
                    "devices": [
                        {
                            "subsystem": "usb",
                            "name": top,
                            "parent": None,
                            "attrs": [
                                ["idVendor", node.properties.get("ID_VENDOR_ID", "0000")],
                                ["idProduct", node.properties.get("ID_MODEL_ID", "0000")],
                            ],
                            "props": [["DEVTYPE", "usb_device"]],
                        }
                    ],
                    "nodes": [],
                },
            )
            names = [dev["name"] for dev in plug["devices"]]
            if interface not in names:
                plug["devices"].append(
                    {
                        "subsystem": "usb",
                        "name": interface,
                        "parent": 0,
                        "attrs": [["bInterfaceClass", "0e"]],
                        "props": [["DEVTYPE", "usb_interface"]],
                    }
                )
                names.append(interface)
            parent = names.index(interface)
        else:
            top = node.sys_path.partition("/video4linux/")[0][len("/sys/devices/") :]
            plug = plugs.setdefault(
                top,
                {
                    "name": top.rsplit("/", 1)[-1],
                    "devices": [{"subsystem": "platform", "name": top, "parent": None, "attrs": [], "props": []}],
                    "nodes": [],
                },
            )
            parent = 0
        info = node.querycap()
        props = {k: v for k, v in node.properties.items() if k not in ("DEVPATH",)}
        plug["nodes"].append(
            {
                "parent": parent,
                "video": int(node.devnode.rsplit("video", 1)[1]),
                "props": [[k, v] for k, v in props.items()],
                "attrs": [["name", node.card], ["index", str(node.index)]],
                "driver": info.driver,
                "card": info.card,
                "bus_info": info.bus_info,
                "device_caps": info.device_caps,
                "formats": node.formats,
                "owns": list(node.owns),
            }
        )
    return list(plugs.values())
