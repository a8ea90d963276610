"""camsvc.media.storage: free-space levels and notifications, the retention policy."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from camsvc.common.errors import InsufficientStorage, InvalidParams, RpcError
from camsvc.config import parse_config_dict
from camsvc.media.files import RECORDINGS, SNAPSHOTS, FileStore, stamp
from camsvc.media.storage import CRITICAL, GB, LOW, OK, Retention, StorageMonitor, filesystem

NOW = 1_700_000_000.0
DAY = 86400


class FakeFS:
    """statvfs with a settable free fraction (blocks of 4 KiB, 1 000 000 blocks)."""

    def __init__(self, free_percent=50.0):
        self.free_percent = free_percent
        self.calls = []

    def __call__(self, path):
        self.calls.append(path)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        blocks = 1_000_000
        avail = int(blocks * self.free_percent / 100)
        return SimpleNamespace(f_blocks=blocks, f_bfree=avail + 1000, f_bavail=avail, f_frsize=4096)


@pytest.fixture
def store(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "snap").mkdir()
    return FileStore(str(tmp_path / "rec"), str(tmp_path / "snap"))


def put(store, kind, name, size, mtime):
    path = os.path.join(store.dirs[kind], name)
    with open(path, "wb") as fh:
        fh.write(b"\0" * size)
    os.utime(path, (mtime, mtime))


def test_filesystem_numbers_and_missing_dirs(tmp_path):
    fs = FakeFS(25.0)
    info = filesystem(str(tmp_path / "not" / "yet"), fs)
    assert fs.calls[-1] == str(tmp_path)
    assert info == {
        "total_bytes": 4096_000_000,
        "used_bytes": (1_000_000 - 251_000) * 4096,
        "free_bytes": 250_000 * 4096,
        "free_percent": 25.0,
    }
    real = filesystem(str(tmp_path))  # the real statvfs
    assert 0 < real["free_bytes"] <= real["total_bytes"]


def monitor(store, free=50.0, **storage):
    config = parse_config_dict({"storage": storage}).storage
    published = []
    fs = FakeFS(free)
    clock = Clock()
    mon = StorageMonitor(store, config, clock, lambda m, p: published.append((m, p)), statvfs=fs)
    return mon, fs, clock, published


def test_levels_and_notifications_on_the_clock(store):
    mon, fs, clock, published = monitor(store, 50.0, check_interval=10)
    seen = []
    mon.listeners.append(lambda level, prev: seen.append((level, prev)))
    mon.startService()
    assert mon.level == OK and published == []
    fs.free_percent = 8.0
    clock.advance(10)
    assert mon.level == LOW
    assert published[-1][0] == "system_status_update"
    assert published[-1][1]["component"] == "storage" and published[-1][1]["status"] == "low"
    fs.free_percent = 1.0
    clock.advance(10)
    clock.advance(10)  # no change: no second notification
    assert [p["status"] for _, p in published] == ["low", "critical"]
    assert "refused" in published[-1][1]["message"]
    fs.free_percent = 40.0
    clock.advance(10)
    assert [p["status"] for _, p in published] == ["low", "critical", "ok"]
    assert seen == [(LOW, OK), (CRITICAL, LOW), (OK, CRITICAL)]
    mon.stopService()
    assert clock.getDelayedCalls() == []


def test_require_space(store):
    mon, fs, clock, _ = monitor(store, 1.5)
    with pytest.raises(InsufficientStorage) as err:
        mon.require_space(RECORDINGS)
    assert err.value.code == -32007 and "below the critical threshold of 2%" in err.value.message
    fs.free_percent = 2.5
    mon.require_space(SNAPSHOTS)


def test_info(store):
    put(store, RECORDINGS, "camera0_a.mp4", 1000, NOW)
    put(store, RECORDINGS, "camera0_b.mp4", 500, NOW)
    put(store, SNAPSHOTS, "camera0_a.jpg", 20, NOW)
    mon, fs, clock, _ = monitor(store, 9.0)
    info = mon.info()
    assert info["status"] == "low" and info["low"] and not info["critical"]
    assert info["free_percent"] == 9.0 and info["total_bytes"] == 4096_000_000
    assert info["recordings"]["files"] == 2 and info["recordings"]["bytes"] == 1500
    assert info["snapshots"] == {
        "path": store.dirs[SNAPSHOTS],
        "files": 1,
        "bytes": 20,
        "total_bytes": 4096_000_000,
        "free_bytes": 90_000 * 4096,
        "free_percent": 9.0,
    }
    assert info["warn_free_percent"] == 10.0 and info["critical_free_percent"] == 2.0


# -- retention ----------------------------------------------------------------------------


def retention(store, tmp_path, protected=None, **cfg):
    config = parse_config_dict({"retention": cfg}).retention
    clock = Clock()
    clock.advance(NOW)
    return Retention(store, clock, str(tmp_path / "state"), config, protected=protected), clock


def test_policy_from_config_then_persisted(store, tmp_path):
    r, _ = retention(store, tmp_path, enabled=False, max_age_days=30)
    assert r.policy.to_dict() == {"enabled": False, "max_age_days": 30.0, "max_size_gb": 0.0} and r.source == "config"
    r.set_policy({"enabled": True, "max_size_gb": 2})
    assert r.policy.to_dict() == {"enabled": True, "max_age_days": 30.0, "max_size_gb": 2.0}
    saved = json.loads((tmp_path / "state" / "retention.json").read_text())
    assert saved == {"enabled": True, "max_age_days": 30.0, "max_size_gb": 2.0}
    again, _ = retention(store, tmp_path, enabled=False, max_age_days=5)  # a restart: the saved policy wins
    assert again.policy == r.policy and again.source == "state"
    assert os.listdir(tmp_path / "state") == ["retention.json"]


def test_bad_policy_changes_are_refused(store, tmp_path):
    r, _ = retention(store, tmp_path)
    with pytest.raises(InvalidParams):
        r.set_policy({"enabled": True, "max_age_days": -1})
    with pytest.raises(InvalidParams):
        r.set_policy({"enabled": "yes"})
    assert not (tmp_path / "state" / "retention.json").exists()


def test_corrupt_policy_file_falls_back_to_config(store, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "retention.json").write_text("{not json")
    r, _ = retention(store, tmp_path, enabled=True, max_age_days=7)
    assert r.policy.enabled and r.policy.max_age_days == 7 and r.source == "config"
    (tmp_path / "state" / "retention.json").write_text('{"enabled": true, "max_age_days": -3, "max_size_gb": 0}')
    r, _ = retention(store, tmp_path, enabled=False)
    assert not r.policy.enabled


def test_unwritable_state_dir(store, tmp_path):
    (tmp_path / "state").write_text("a file, not a directory")
    r, _ = retention(store, tmp_path)
    with pytest.raises(RpcError):
        r.set_policy({"enabled": True})
    assert not r.policy.enabled


def test_age_then_size_oldest_first_never_protected(store, tmp_path):
    put(store, RECORDINGS, f"camera0_{stamp(NOW - 40 * DAY)}.mp4", 100, NOW - 40 * DAY)  # too old
    put(store, SNAPSHOTS, "old.jpg", 10, NOW - 31 * DAY)  # too old
    put(store, RECORDINGS, f"camera0_{stamp(NOW - 9 * DAY)}.mp4", 400, NOW - 9 * DAY)
    put(store, RECORDINGS, f"camera1_{stamp(NOW - 8 * DAY)}.mp4", 400, NOW - 8 * DAY)  # protected
    put(store, SNAPSHOTS, "mid.jpg", 300, NOW - 7 * DAY)
    put(store, RECORDINGS, f"camera0_{stamp(NOW - 1 * DAY)}.mp4", 300, NOW - DAY)
    put(store, RECORDINGS, f"camera2_{stamp(NOW - 30)}.mp4", 300, NOW - 30)  # being written (recent)
    protected = {(RECORDINGS, f"camera1_{stamp(NOW - 8 * DAY)}.mp4")}
    r, _ = retention(store, tmp_path, protected=lambda: protected)
    result = r.run(r.policy.__class__(enabled=True, max_age_days=30, max_size_gb=1500 / GB))
    deleted = [(d["filename"], d["reason"]) for d in result["deleted"]]
    assert deleted == [
        (f"camera0_{stamp(NOW - 40 * DAY)}.mp4", "age"),
        ("old.jpg", "age"),
        (f"camera0_{stamp(NOW - 9 * DAY)}.mp4", "size"),
    ]
    assert result["freed_bytes"] == 510 and result["deleted_count"] == 3
    left = sorted(f.filename for k in (RECORDINGS, SNAPSHOTS) for f in store.list(k))
    assert left == sorted(
        [
            f"camera1_{stamp(NOW - 8 * DAY)}.mp4",
            "mid.jpg",
            f"camera0_{stamp(NOW - DAY)}.mp4",
            f"camera2_{stamp(NOW - 30)}.mp4",
        ]
    )
    assert sum(f.size for k in (RECORDINGS, SNAPSHOTS) for f in store.list(k)) == 1300


def test_zero_means_no_limit(store, tmp_path):
    put(store, RECORDINGS, "camera0_a.mp4", 100, NOW - 1000 * DAY)
    r, _ = retention(store, tmp_path, max_age_days=0, max_size_gb=0)
    assert r.run()["deleted"] == []


def test_periodic_only_while_enabled(store, tmp_path):
    put(store, SNAPSHOTS, "a.jpg", 1, NOW - 100 * DAY)
    r, clock = retention(store, tmp_path, enabled=False, max_age_days=30, interval=60)
    r.startService()
    clock.advance(120)
    assert store.exists(SNAPSHOTS, "a.jpg") and r.last_run is None
    r.set_policy({"enabled": True})
    clock.advance(60)
    assert not store.exists(SNAPSHOTS, "a.jpg") and r.last_run["deleted_count"] == 1
    r.stopService()
    assert clock.getDelayedCalls() == []


# -- failed I/O -----------------------------------------------------------------------------


class BrokenFS(FakeFS):
    """statvfs that fails (an unreadable or vanished mount) while ``broken``."""

    broken = False

    def __call__(self, path):
        if self.broken:
            raise OSError(5, "Input/output error", path)
        return super().__call__(path)


def test_unreadable_free_space_keeps_the_last_level_and_refuses_nothing(store):
    config = parse_config_dict({"storage": {"check_interval": 10}}).storage
    published, fs, clock = [], BrokenFS(1.0), Clock()
    mon = StorageMonitor(store, config, clock, lambda m, p: published.append((m, p)), statvfs=fs)
    calls = []

    def failing_listener(level, previous):
        raise RuntimeError("listener bug")

    mon.listeners += [failing_listener, lambda level, previous: calls.append(level)]
    mon.startService()
    assert mon.level == CRITICAL and calls == [CRITICAL]  # the failing listener did not stop the next
    fs.broken = True
    mon.require_space(RECORDINGS)  # cannot tell: not refused
    clock.advance(10)
    assert mon.check() == CRITICAL and len(published) == 1  # the last known level, nothing published
    fs.broken, fs.free_percent = False, 50.0
    clock.advance(10)  # the periodic check kept running
    assert mon.level == OK and [p["status"] for _, p in published] == ["critical", "ok"]
    mon.stopService()


def test_retention_survives_files_that_vanish_or_cannot_be_deleted(store, tmp_path, monkeypatch):
    from camsvc.media import files as files_module

    put(store, SNAPSHOTS, "gone.jpg", 10, NOW - 40 * DAY)
    put(store, SNAPSHOTS, "stuck.jpg", 10, NOW - 40 * DAY)
    put(store, SNAPSHOTS, "old.jpg", 10, NOW - 40 * DAY)
    real_unlink = os.unlink

    def unlink(path):
        name = os.path.basename(path)
        if name == "gone.jpg":  # someone else deleted it after the listing
            real_unlink(path)
            raise FileNotFoundError(2, "No such file or directory", path)
        if name == "stuck.jpg":  # a read-only remount, an immutable file...
            raise OSError(30, "Read-only file system", path)
        return real_unlink(path)

    monkeypatch.setattr(files_module.os, "unlink", unlink)
    r, _ = retention(store, tmp_path)
    result = r.run(r.policy.__class__(enabled=True, max_age_days=30, max_size_gb=0))
    assert [d["filename"] for d in result["deleted"]] == ["old.jpg"]
    assert sorted(f.filename for f in store.list(SNAPSHOTS)) == ["stuck.jpg"]


def test_a_failing_periodic_run_is_logged_and_the_next_one_runs(store, tmp_path):
    r, clock = retention(store, tmp_path, enabled=True, max_age_days=30, interval=60)
    runs = []

    def run(policy=None):
        runs.append(clock.seconds())
        if len(runs) == 1:
            raise OSError(5, "Input/output error")
        return {}

    r.run = run
    r.startService()
    clock.advance(60)
    clock.advance(60)
    assert len(runs) >= 2
    r.stopService()
