"""camsvc.media.files and camsvc.media.mp4: names, confinement, listing, durations."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from datetime import datetime

import pytest

from camsvc.common.errors import FileNotFound, InvalidParams
from camsvc.common.timefmt import iso
from camsvc.media import mp4
from camsvc.media.files import (
    NAME_MAX,
    RECORDINGS,
    SNAPSHOTS,
    FileStore,
    camera_of,
    check_name,
    sanitise_name,
    stamp,
    time_from_name,
)


@pytest.fixture
def store(tmp_path):
    rec = tmp_path / "recordings"
    snap = tmp_path / "snapshots"
    rec.mkdir()
    snap.mkdir()
    return FileStore(str(rec), str(snap), duration_reader=mp4.duration)


def put(store, kind, name, data=b"x", mtime=None):
    path = os.path.join(store.dirs[kind], name)
    with open(path, "wb") as fh:
        fh.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd.mp4",
        "../../camera0_x.mp4",
        "/etc/passwd.mp4",
        "a/b.mp4",
        "a\\b.mp4",
        "..",
        ".",
        ".hidden.mp4",
        "camera0\x00.mp4",
        "nul\x00",
        "tab\t.mp4",
        "x" * 252 + ".mp4",
        "é" * 126 + ".mp4",  # 256 bytes in UTF-8
        "camera0.txt",
        "camera0",
        "",
        "\ud800.mp4",
    ],
)
def test_check_name_refuses(name):
    with pytest.raises(InvalidParams) as err:
        check_name(RECORDINGS, name)
    assert err.value.code == -32602 and err.value.data == {"param": "filename"}


@pytest.mark.parametrize("name", ["camera0_2024-01-02_03-04-05-000006.mp4", "a.MP4", "x" * 251 + ".mp4", "ü.mp4"])
def test_check_name_accepts(name):
    assert check_name(RECORDINGS, name) == name
    assert len(name.encode()) <= NAME_MAX


def test_check_name_is_per_kind():
    assert check_name(SNAPSHOTS, "a.png") == "a.png"
    assert check_name(SNAPSHOTS, "a.jpeg") == "a.jpeg"
    with pytest.raises(InvalidParams):
        check_name(SNAPSHOTS, "a.mp4")
    with pytest.raises(InvalidParams):
        check_name(RECORDINGS, "a.jpg")


@pytest.mark.parametrize(
    "wish, fmt, expected",
    [
        ("front door", None, ("front_door", None)),
        ("front door.png", None, ("front_door", "png")),
        ("shot.JPG", "jpg", ("shot", "jpg")),
        ("shot.jpeg", None, ("shot", "jpg")),
        ("report.txt", "jpg", ("report.txt", "jpg")),
        ("a...b", None, ("a.b", None)),
        ("  héllo wörld ", "png", ("_h_llo_w_rld_", "png")),
        ("-x-", None, ("-x-", None)),
        (".profile", None, ("profile", None)),
        ("x" * 300, None, ("x" * 200, None)),
    ],
)
def test_sanitise_name(wish, fmt, expected):
    assert sanitise_name(wish, fmt) == expected


@pytest.mark.parametrize(
    "wish, fmt",
    [
        ("../x", None),
        ("a/b", None),
        ("a\\b", None),
        ("..", None),
        ("...", None),
        ("..x", None),
        ("x\x00.jpg", None),
        ("shot.png", "jpg"),
        ("shot.jpg", "png"),
        ("???", None),
        ("___", None),
    ],
)
def test_sanitise_name_refuses(wish, fmt):
    with pytest.raises(InvalidParams):
        sanitise_name(wish, fmt)


def test_names_and_times():
    ts = datetime(2024, 5, 6, 7, 8, 9, 123456).timestamp()
    name = f"camera3_{stamp(ts)}.mp4"
    assert name == "camera3_2024-05-06_07-08-09-123456.mp4"
    assert time_from_name(name) == pytest.approx(ts)
    assert time_from_name("camera3_2024-05-06_07-08-09-123456_2.jpg") == pytest.approx(ts)
    assert time_from_name("holiday.jpg") is None
    assert time_from_name("camera3_2024-13-06_07-08-09-123456.mp4") is None
    assert camera_of(name) == "camera3"
    assert camera_of("cameraX_1.mp4") is None
    assert iso(0.5) == "1970-01-01T00:00:00.500Z"


# -- lookups -------------------------------------------------------------------------


def test_lookup_finds_a_file(store):
    put(store, RECORDINGS, "camera0_2024-01-01_00-00-00-000000.mp4", b"abc")
    media = store.lookup(RECORDINGS, "camera0_2024-01-01_00-00-00-000000.mp4")
    assert media.size == 3 and media.camera_id == "camera0" and media.content_type == "video/mp4"
    assert media.created == pytest.approx(datetime(2024, 1, 1).timestamp())


def test_lookup_missing_is_file_not_found(store):
    with pytest.raises(FileNotFound) as err:
        store.lookup(RECORDINGS, "camera0_nothing.mp4")
    assert err.value.code == -32009


def test_lookup_refuses_links_out_of_the_directory(store, tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"secret")
    os.symlink(secret, os.path.join(store.dirs[RECORDINGS], "evil.mp4"))
    os.symlink("../snapshots/x.jpg", os.path.join(store.dirs[RECORDINGS], "sideways.mp4"))
    put(store, SNAPSHOTS, "x.jpg")
    for name in ("evil.mp4", "sideways.mp4"):
        with pytest.raises(InvalidParams):
            store.lookup(RECORDINGS, name)
        with pytest.raises(InvalidParams):
            store.delete(RECORDINGS, name)
    assert secret.read_bytes() == b"secret"
    assert [f.filename for f in store.list(RECORDINGS)] == []  # links are not listed


def test_lookup_follows_a_link_that_stays_inside(store):
    put(store, RECORDINGS, "real.mp4", b"12345")
    os.symlink("real.mp4", os.path.join(store.dirs[RECORDINGS], "alias.mp4"))
    assert store.lookup(RECORDINGS, "alias.mp4").size == 5


def test_lookup_of_a_directory_is_not_found(store):
    os.mkdir(os.path.join(store.dirs[RECORDINGS], "dir.mp4"))
    with pytest.raises(FileNotFound):
        store.lookup(RECORDINGS, "dir.mp4")


def test_storage_dir_behind_a_link(tmp_path):
    real = tmp_path / "disk"
    real.mkdir()
    (tmp_path / "snapshots").mkdir()
    os.symlink(real, tmp_path / "recordings")
    store = FileStore(str(tmp_path / "recordings"), str(tmp_path / "snapshots"))
    (real / "a.mp4").write_bytes(b"1")
    os.symlink(real / "a.mp4", real / "b.mp4")
    assert store.lookup(RECORDINGS, "a.mp4").size == 1
    assert store.lookup(RECORDINGS, "b.mp4").size == 1


# -- listing --------------------------------------------------------------------------


def test_list_newest_first_filtered_and_clean(store):
    base = datetime(2024, 1, 1).timestamp()
    for i, cam in enumerate(["camera0", "camera1", "camera0", "camera10"]):
        put(store, RECORDINGS, f"{cam}_{stamp(base + i * 60)}.mp4", mtime=base + i * 60 + 30)
    put(store, RECORDINGS, "notes.txt")
    put(store, RECORDINGS, ".camera0_tmp.mp4")
    os.mkdir(os.path.join(store.dirs[RECORDINGS], "camera0_dir.mp4"))
    names = [f.filename for f in store.list(RECORDINGS)]
    assert names == [
        f"camera10_{stamp(base + 180)}.mp4",
        f"camera0_{stamp(base + 120)}.mp4",
        f"camera1_{stamp(base + 60)}.mp4",
        f"camera0_{stamp(base)}.mp4",
    ]
    assert [f.filename for f in store.list(RECORDINGS, "camera0")] == [names[1], names[3]]
    assert store.usage(RECORDINGS) == (4, 4)


def test_list_of_a_missing_directory_is_empty(tmp_path):
    assert FileStore(str(tmp_path / "no"), str(tmp_path / "nope")).list(RECORDINGS) == []


# -- changes ---------------------------------------------------------------------------


def test_delete(store):
    put(store, SNAPSHOTS, "camera0_a.jpg", b"jpeg")
    assert store.delete(SNAPSHOTS, "camera0_a.jpg").size == 4
    assert not store.exists(SNAPSHOTS, "camera0_a.jpg")
    with pytest.raises(FileNotFound):
        store.delete(SNAPSHOTS, "camera0_a.jpg")


def test_delete_removes_the_link_not_its_target(store):
    put(store, RECORDINGS, "real.mp4", b"12345")
    os.symlink("real.mp4", os.path.join(store.dirs[RECORDINGS], "alias.mp4"))
    store.delete(RECORDINGS, "alias.mp4")
    assert store.exists(RECORDINGS, "real.mp4") and not store.exists(RECORDINGS, "alias.mp4")


def test_create_never_overwrites(store, tmp_path):
    assert store.create(SNAPSHOTS, "shot", ".jpg", b"one") == "shot.jpg"
    assert store.create(SNAPSHOTS, "shot", ".jpg", b"two") == "shot_1.jpg"
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    os.symlink(target, os.path.join(store.dirs[SNAPSHOTS], "shot_2.jpg"))  # a planted link
    assert store.create(SNAPSHOTS, "shot", ".jpg", b"three") == "shot_3.jpg"
    snap = store.dirs[SNAPSHOTS]
    assert [open(os.path.join(snap, n), "rb").read() for n in ("shot.jpg", "shot_1.jpg", "shot_3.jpg")] == [
        b"one",
        b"two",
        b"three",
    ]
    assert target.read_bytes() == b"keep"


# -- durations ---------------------------------------------------------------------------


def _ffmpeg(out, *args):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)], check=True, timeout=60
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    video = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"]
    frag = ["-movflags", "frag_keyframe+empty_moov+default_base_moof"]
    _ffmpeg(d / "frag.mp4", *video, *h264, "-t", "3", *frag)
    _ffmpeg(d / "av.mp4", *video, "-f", "lavfi", "-i", "sine=frequency=440", *h264, "-c:a", "aac", "-t", "2.5", *frag)
    _ffmpeg(d / "plain.mp4", *video, *h264, "-t", "1.5")
    return d


def test_fmp4_duration_from_fragments(clips):
    assert mp4.duration(str(clips / "frag.mp4")) == pytest.approx(3.0, abs=0.05)
    assert mp4.duration(str(clips / "av.mp4")) == pytest.approx(2.5, abs=0.1)


def test_regular_mp4_duration(clips):
    assert mp4.duration(str(clips / "plain.mp4")) == pytest.approx(1.5, abs=0.05)


def test_duration_of_a_file_being_written(clips, tmp_path):
    data = (clips / "frag.mp4").read_bytes()
    cut = tmp_path / "growing.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    seconds = mp4.duration(str(cut))
    assert seconds is not None and 0 < seconds < 3.0


def test_duration_of_garbage_is_none(tmp_path):
    (tmp_path / "g.mp4").write_bytes(b"\x00\x00\x00\x08free" + os.urandom(100))
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert mp4.duration(str(tmp_path / "g.mp4")) is None
    assert mp4.duration(str(tmp_path / "empty.mp4")) is None


# Hand-built boxes: the layouts ffmpeg does not write (64-bit sizes, version-1 boxes,
# tfhd/trex default durations, a box running to the end of the file) and corrupt files.


def _box(typ: bytes, *parts: bytes, large: bool = False) -> bytes:
    payload = b"".join(parts)
    if large:  # size 1: a 64-bit size follows the type
        return struct.pack(">I4sQ", 1, typ, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def _full(version: int, flags: int = 0) -> bytes:
    return bytes([version]) + flags.to_bytes(3, "big")


def _moov(scale: int = 1000, duration: int = 0, *, mehd: int | None = None, trex: int = 0, v1: bool = True) -> bytes:
    if v1:
        mvhd = _box(b"mvhd", _full(1), struct.pack(">QQIQ", 0, 0, scale, duration))
        tkhd = _box(b"tkhd", _full(1), struct.pack(">QQI", 0, 0, 1))
        mdhd = _box(b"mdhd", _full(1), struct.pack(">QQI", 0, 0, 90000))
    else:
        mvhd = _box(b"mvhd", _full(0), struct.pack(">IIII", 0, 0, scale, duration))
        tkhd = _box(b"tkhd", _full(0), struct.pack(">III", 0, 0, 1))
        mdhd = _box(b"mdhd", _full(0), struct.pack(">III", 0, 0, 90000))
    mvex = [_box(b"trex", _full(0), struct.pack(">IIIII", 1, 1, trex, 0, 0))]
    if mehd is not None:
        mvex.insert(0, _box(b"mehd", _full(1), struct.pack(">Q", mehd)))
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd))
    return _box(b"moov", mvhd, trak, _box(b"mvex", *mvex), large=True)


def _moof(base: int, samples: int, *, tfhd_default: int | None = None, per_sample: int | None = None) -> bytes:
    flags = 0x01 | 0x02 | (0x08 if tfhd_default is not None else 0)
    tfhd = _full(0, flags) + struct.pack(">I", 1) + struct.pack(">Q", 0) + struct.pack(">I", 1)
    if tfhd_default is not None:
        tfhd += struct.pack(">I", tfhd_default)
    tfdt = _box(b"tfdt", _full(1), struct.pack(">Q", base))
    if per_sample is None:  # data offset and first-sample flags, no per-sample fields
        trun = _box(b"trun", _full(0, 0x001 | 0x004), struct.pack(">Iii", samples, 0, 0))
    else:  # duration and size per sample
        trun = _box(
            b"trun", _full(0, 0x100 | 0x200), struct.pack(">I", samples), struct.pack(">II", per_sample, 9) * samples
        )
    return _box(b"moof", _box(b"traf", _box(b"tfhd", tfhd), tfdt, trun))


def _mp4(tmp_path, *boxes: bytes) -> str:
    path = tmp_path / "hand.mp4"
    path.write_bytes(b"".join(boxes))
    return str(path)


def test_fragment_durations_from_tfhd_and_trex_defaults(tmp_path):
    mdat = _box(b"mdat", b"\0" * 16)
    # tfhd's default sample duration: fragments at 0 and 90000 ticks, 30 samples of 3000 each
    by_tfhd = _mp4(tmp_path, _moov(), _moof(0, 30, tfhd_default=3000), mdat, _moof(90000, 30, tfhd_default=3000), mdat)
    assert mp4.duration(by_tfhd) == pytest.approx(2.0)
    # no tfhd default: the trex default (version-0 boxes, 64-bit mdat size)
    big_mdat = _box(b"mdat", b"\0" * 16, large=True)
    by_trex = _mp4(tmp_path, _moov(trex=1500, v1=False), _moof(0, 60, per_sample=None), big_mdat)
    assert mp4.duration(by_trex) == pytest.approx(1.0)
    # per-sample durations in trun; the last mdat runs to the end of the file (size 0)
    open_mdat = struct.pack(">I4s", 0, b"mdat") + b"\0" * 32
    per_sample = _mp4(tmp_path, _moov(), _moof(0, 10, per_sample=900), mdat, _moof(9000, 10, per_sample=900), open_mdat)
    assert mp4.duration(per_sample) == pytest.approx(0.2)


def test_declared_durations_win_or_fill_in(tmp_path):
    mdat = _box(b"mdat", b"\0" * 8)
    # mehd (the fragmented movie's declared duration) is used as is
    assert mp4.duration(_mp4(tmp_path, _moov(mehd=4500), _moof(0, 1, tfhd_default=1), mdat)) == pytest.approx(4.5)
    # a moof whose mdat never completed: no fragment counts, mvhd's duration does
    assert mp4.duration(_mp4(tmp_path, _moov(duration=2500), _moof(0, 30, tfhd_default=3000))) == pytest.approx(2.5)
    # nothing declared and no complete fragment: unknown
    assert mp4.duration(_mp4(tmp_path, _moov(), _moof(0, 30, tfhd_default=3000))) is None


@pytest.mark.parametrize(
    "data",
    [
        _box(b"moov", _box(b"mvhd", _full(0), b"\0" * 4)),  # mvhd shorter than its fields
        _moov() + _box(b"moof", _box(b"traf", _box(b"tfhd", _full(0, 0x08)))) + _box(b"mdat"),  # truncated tfhd
        _moov() + _box(b"moof", _box(b"traf", _box(b"trun", _full(0, 0x100), struct.pack(">I", 1000)))) + _box(b"mdat"),
        struct.pack(">I4s", 4, b"moov") + b"\0" * 32,  # a box smaller than its own header
        _box(b"free") + struct.pack(">I4s", 1, b"moov") + b"\0\0",  # a 64-bit size cut off by the end of the file
        _box(b"moov", struct.pack(">I4s", 1, b"mvhd")),  # a child's 64-bit size cut off by its parent
        _box(b"moov", struct.pack(">I4s", 0, b"mvhd") + _full(0) + b"\0" * 4),  # child box "to the end", too short
    ],
    ids=[
        "short-mvhd",
        "short-tfhd",
        "short-trun",
        "tiny-box",
        "cut-largesize",
        "cut-child-largesize",
        "short-open-child",
    ],
)
def test_corrupt_files_have_no_duration(tmp_path, data):
    assert mp4.duration(_mp4(tmp_path, data)) is None


def test_unreadable_recording_has_no_duration_and_is_still_listed(store, tmp_path):
    """A recording whose duration cannot be read (corrupt, or gone between listing and
    reading) is listed without one."""
    rec = tmp_path / "recordings"
    (rec / "corrupt.mp4").write_bytes(_box(b"moov", _box(b"mvhd", _full(0), b"\0" * 4)))
    media = store.lookup(RECORDINGS, "corrupt.mp4")
    assert store.duration(media) is None
    (rec / "corrupt.mp4").unlink()
    store._durations.clear()
    assert store.duration(media) is None  # FileNotFoundError from the reader: logged, None


def test_standin_segment_duration(mediamtx_clip, store):
    """The stand-in writes init + fragments of its clip, like MediaMTX's parts."""
    from tests.support.mediamtx import split_fmp4

    init, frags = split_fmp4(mediamtx_clip.read_bytes())
    put(store, RECORDINGS, "camera0_2024-01-01_00-00-00-000000.mp4", init + b"".join(frags[:3]))
    media = store.lookup(RECORDINGS, "camera0_2024-01-01_00-00-00-000000.mp4")
    assert store.duration(media) == pytest.approx(3.0, abs=0.1)
    assert store.duration(media) == store.duration(media)  # cached


def test_duration_cache_follows_changes(store):
    calls = []

    def reader(path):
        calls.append(path)
        return float(os.path.getsize(path))

    store.duration_reader = reader
    put(store, RECORDINGS, "a.mp4", b"12")
    assert store.duration(store.lookup(RECORDINGS, "a.mp4")) == 2.0
    assert store.duration(store.lookup(RECORDINGS, "a.mp4")) == 2.0
    assert len(calls) == 1
    put(store, RECORDINGS, "a.mp4", b"1234", mtime=5)
    assert store.duration(store.lookup(RECORDINGS, "a.mp4")) == 4.0
    assert len(calls) == 2


# -- cached listings (issue 15) ---------------------------------------------------------------


def _settle(path):
    """Make the directory look settled (changed more than a second ago)."""
    past = time.time() - 10
    os.utime(path, (past, past))


def test_listing_is_cached_until_the_directory_changes(store, monkeypatch):
    """list_* used to stat every file on every call."""
    for i in range(5):
        put(store, RECORDINGS, f"camera0_{stamp(datetime(2024, 1, 1).timestamp() + i)}.mp4", mtime=1_000_000 + i)
    rec = store.dirs[RECORDINGS]
    _settle(rec)
    first = store.list(RECORDINGS)
    scans = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: scans.append(p) or real_scandir(p))
    for _ in range(3):
        assert [f.filename for f in store.list(RECORDINGS)] == [f.filename for f in first]
    assert [f.filename for f in store.list(RECORDINGS, "camera0")] == [f.filename for f in first]
    assert scans == []  # served from the cache
    put(store, RECORDINGS, "camera1_new.mp4", mtime=2_000_000)
    _settle(rec)
    assert "camera1_new.mp4" in [f.filename for f in store.list(RECORDINGS)]
    assert len(scans) == 1
    store.delete(RECORDINGS, "camera1_new.mp4")
    assert "camera1_new.mp4" not in [f.filename for f in store.list(RECORDINGS)]


def test_a_file_being_written_shows_its_current_size(store):
    put(store, RECORDINGS, "camera0_growing.mp4", b"x")  # modified now: hot
    _settle(store.dirs[RECORDINGS])
    assert store.list(RECORDINGS)[0].size == 1
    with open(os.path.join(store.dirs[RECORDINGS], "camera0_growing.mp4"), "ab") as f:
        f.write(b"yyyy")
    assert store.list(RECORDINGS)[0].size == 5


def test_an_unsettled_directory_is_not_cached(store):
    put(store, RECORDINGS, "camera0_a.mp4")
    store.list(RECORDINGS)
    assert RECORDINGS not in store._listings


@pytest.mark.parametrize("offset_hours", [0, 1, -5, 5.5, 13.75, -9.5])
def test_the_writers_utc_offset_is_learned_from_a_fresh_name(offset_hours):
    from datetime import timedelta, timezone

    from camsvc.media.files import learn_utc_offset, time_from_name

    now = 1_700_000_000.25
    zone = timezone(timedelta(hours=offset_hours))
    written = datetime.fromtimestamp(now - 0.7, tz=zone)  # named 0.7 s ago in the writer's zone
    name = f"camera0_{written:%Y-%m-%d_%H-%M-%S-%f}.mp4"
    offset = learn_utc_offset(name, now)
    assert offset == offset_hours * 3600
    assert time_from_name(name, offset) == pytest.approx(now - 0.7, abs=1e-6)
