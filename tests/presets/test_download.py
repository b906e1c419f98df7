"""Downloads: verified, cached, atomic, bounded in time, safe under concurrency; every failure
one `DownloadError` naming the URL. Served from 127.0.0.1 only."""

import hashlib
import os
import threading
import time

import pytest

from enc_tf.presets import download
from enc_tf.presets.download import Digest, DownloadError, fetch
from tests.support.http_server import Route, serve

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("ENC_TF_HOME", str(home))
    monkeypatch.setenv("ENC_TF_TIMEOUT", "0.5")
    for name in ("ENC_TF_OFFLINE", "ENC_TF_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    return home / "downloads"


def _leftovers(directory):
    return sorted(n for n in os.listdir(directory) if not n.endswith(".lock"))


def test_first_use_downloads_and_verifies_the_second_touches_no_network(cache):
    route = Route(BODY)
    with serve({"/w/file-abc.bin": route}) as base:
        path = fetch([base + "/w/file-abc.bin"], Digest("sha256", SHA))
        seen = []
        again = fetch([base + "/w/file-abc.bin"], Digest("sha256", SHA), progress=seen.append)
    assert path == again == str(cache / "file-abc.bin")
    assert open(path, "rb").read() == BODY
    assert route.requests == 1 and not seen
    assert _leftovers(cache) == ["file-abc.bin"]


def test_progress_is_reported_and_a_sha256_prefix_is_enough(cache):
    seen = []
    with serve({"/f.bin": Route(BODY)}) as base:
        fetch([base + "/f.bin"], Digest("sha256", SHA[:8]), progress=lambda d, t: seen.append(t))
    assert seen and set(seen) == {len(BODY)}


def test_a_wrong_hash_deletes_the_file_and_names_url_expected_and_actual(cache):
    with serve({"/f.bin": Route(BODY)}) as base:
        with pytest.raises(DownloadError) as err:
            fetch([base + "/f.bin"], Digest("sha256", "0" * 64))
    message = str(err.value)
    assert base + "/f.bin" in message and "0" * 64 in message and SHA in message
    assert f"put it at {cache / 'f.bin'}" in message
    assert _leftovers(cache) == []


def test_a_cached_file_with_the_wrong_hash_is_fetched_again(cache):
    cache.mkdir(parents=True)
    (cache / "f.bin").write_bytes(b"poisoned")
    route = Route(BODY)
    with serve({"/f.bin": route}) as base:
        path = fetch([base + "/f.bin"], Digest("sha256", SHA))
    assert open(path, "rb").read() == BODY and route.requests == 1


def test_a_truncated_transfer_is_retried_then_refused_and_nothing_is_kept(cache):
    route = Route(BODY, mode="truncate")
    with serve({"/f.bin": route}) as base:
        with pytest.raises(DownloadError, match="truncated transfer"):
            fetch([base + "/f.bin"], Digest("sha256", SHA))
    assert route.requests == download.ATTEMPTS
    assert _leftovers(cache) == []


@pytest.mark.parametrize("status", [404, 403])
def test_a_client_error_is_not_retried_and_names_the_url_and_where_to_put_the_file(cache, status):
    route = Route(status=status)
    with serve({"/f.bin": route}) as base:
        with pytest.raises(DownloadError) as err:
            fetch([base + "/f.bin"], Digest("sha256", SHA))
    message = str(err.value)
    assert f"{base}/f.bin: HTTP {status}" in message
    assert str(cache / "f.bin") in message and "\n" not in message
    assert route.requests == 1


def test_a_server_error_is_retried_and_a_fallback_url_is_tried(cache):
    broken, flaky = Route(status=500), Route(BODY, mode="fail_first")
    with serve({"/a/f.bin": broken, "/b/f.bin": flaky}) as base:
        path = fetch([base + "/a/f.bin", base + "/b/f.bin"], Digest("sha256", SHA))
    assert broken.requests == download.ATTEMPTS and flaky.requests == 2
    assert open(path, "rb").read() == BODY


def test_a_server_that_never_answers_ends_in_time(cache):
    route = Route(BODY, mode="hang")
    with serve({"/f.bin": route}) as base:
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            fetch([base + "/f.bin"], Digest("sha256", SHA))
        elapsed = time.monotonic() - start
    # 3 tries of 0.5 s and pauses of 1 s and 2 s; with the default 15 s timeout the same
    # schedule ends within a minute.
    assert route.requests == download.ATTEMPTS and elapsed < 10
    assert 3 * download.DEFAULT_TIMEOUT + 3 < 60


def test_offline_mode_uses_the_cache_only(cache, monkeypatch):
    route = Route(BODY)
    with serve({"/f.bin": route}) as base:
        monkeypatch.setenv("ENC_TF_OFFLINE", "1")
        with pytest.raises(DownloadError) as err:
            fetch([base + "/f.bin"], Digest("sha256", SHA))
        assert "ENC_TF_OFFLINE" in str(err.value) and str(cache / "f.bin") in str(err.value)
        assert route.requests == 0
        monkeypatch.delenv("ENC_TF_OFFLINE")
        fetch([base + "/f.bin"], Digest("sha256", SHA))
        monkeypatch.setenv("ENC_TF_OFFLINE", "1")
        assert open(fetch([base + "/f.bin"], Digest("sha256", SHA)), "rb").read() == BODY
    assert route.requests == 1


def test_the_mirror_replaces_scheme_and_host_and_keeps_the_path(cache, monkeypatch):
    route = Route(BODY)
    with serve({"/prefix/pretrain/f-1234abcd.bin": route}) as base:
        monkeypatch.setenv("ENC_TF_MIRROR", base + "/prefix")
        published = "https://download.example.org/pretrain/f-1234abcd.bin"
        assert download.mirrored(published) == base + "/prefix/pretrain/f-1234abcd.bin"
        path = fetch([published], Digest("sha256", SHA))
    assert route.requests == 1 and open(path, "rb").read() == BODY
    monkeypatch.setenv("ENC_TF_MIRROR", "ftp:/nowhere")
    with pytest.raises(DownloadError, match="ENC_TF_MIRROR"):
        download.mirrored(published)


def test_two_concurrent_fetches_end_with_one_good_copy(cache):
    route = Route(BODY, mode="slow")
    results, errors = [], []

    def one(url):
        try:
            results.append(fetch([url], Digest("sha256", SHA)))
        except Exception as err:  # reported below
            errors.append(err)

    with serve({"/f.bin": route}) as base:
        threads = [threading.Thread(target=one, args=(base + "/f.bin",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert route.requests == 1  # the second waited for the first one's file
    assert open(results[0], "rb").read() == BODY and _leftovers(cache) == ["f.bin"]


def test_a_full_disk_is_one_line_and_leaves_nothing(cache, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    # Every temporary the download writes is a link to /dev/full: each write fails
    # with the kernel's own ENOSPC.
    cache.mkdir(parents=True)
    link = str(cache / ".tmp-full")
    monkeypatch.setattr(download, "temporary_path", lambda path: link)
    os.symlink("/dev/full", link)
    with serve({"/f.bin": Route(BODY)}) as base:
        with pytest.raises(DownloadError, match="No space left") as err:
            fetch([base + "/f.bin"], Digest("sha256", SHA))
    assert str(cache / "f.bin") in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(cache) == []


def test_digests_from_urls_and_their_checks():
    assert download.digest_from_url("https://h/x/resnet50_v1c-2cccc1ad.pth") == Digest(
        "sha256", "2cccc1ad"
    )
    assert download.digest_from_url("https://h/x/m.keras#sha256=" + SHA) == Digest("sha256", SHA)
    assert download.digest_from_url("https://h/x/model.keras") is None
    assert download.digest_from_url("https://h/x/model-20240101.pth") is None  # a date
    for bad in ("sha1:abcdef12", "sha256:xyz", "md5:" + "a" * 40, "sha256:abc"):
        with pytest.raises(ValueError):
            Digest.parse(bad)


def test_no_server_at_all_ends_in_seconds_naming_the_url_and_the_place(cache):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w/f.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch([url], Digest("sha256", SHA))
    assert time.monotonic() - start < 10  # refused at once, retried twice after 1 s and 2 s
    message = str(err.value)
    assert url in message and "Connection refused" in message and str(cache / "f.bin") in message
