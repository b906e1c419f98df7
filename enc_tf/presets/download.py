"""Downloading weight files the way a careful package manager does.

A file is fetched only when a user asks for a preset or a URL, from the publisher's
URL (or the mirror named by `ENC_TF_MIRROR`), into the cache `$ENC_TF_HOME`
(default `~/.cache/enc_tf`):

- the bytes go to a temporary name next to the target and are hashed as they
  arrive; only a file whose digest matches is renamed into place, so the cache
  never holds a partial or wrong file under its final name;
- connect and read timeouts (`ENC_TF_TIMEOUT`, seconds) end a stalled transfer;
  transient failures (connection errors, timeouts, HTTP 5xx/429, a truncated
  body) are retried with a pause, permanent ones (HTTP 4xx) move on to the next
  URL at once;
- an advisory lock per file makes two processes fetching the same file at once
  end with one good copy (the second finds the first one's file and checks it);
- `ENC_TF_OFFLINE=1` uses the cache only.

Every failure is one `DownloadError` line naming the URL and saying where to put
the file by hand.
"""

import dataclasses
import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional, Sequence

from enc_tf.errors import EncTfError
from enc_tf.files import (
    HOME_VARIABLE,
    TEMP_PREFIX,
    cache_home,
    file_lock,
    remove_stale_temporaries,
    temporary_path,
)

logger = logging.getLogger(__name__)

OFFLINE_VARIABLE = "ENC_TF_OFFLINE"
MIRROR_VARIABLE = "ENC_TF_MIRROR"
TIMEOUT_VARIABLE = "ENC_TF_TIMEOUT"
DEFAULT_TIMEOUT = 15.0  # seconds, for the connection and for each read
ATTEMPTS = 3  # per URL, for transient failures
CHUNK = 1 << 20
USER_AGENT = "enc_tf"
# torch.hub's convention: `name-<first 8+ hex digits of the SHA-256>.ext`.
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9.]+$")
DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


class DownloadError(EncTfError):
    """A file could not be fetched or verified; the message names the URL and the cache path."""

    exit_code = 1


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, 5xx, truncated body)."""


def offline() -> bool:
    """True when `ENC_TF_OFFLINE` is set to a true value (1, true, yes)."""
    return os.environ.get(OFFLINE_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def timeout() -> float:
    """The connect and read timeout in seconds (`ENC_TF_TIMEOUT`, default 15)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DownloadError(
            f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}."
        )
    return value


def mirrored(url: str) -> str:
    """`url` with its scheme and host replaced by `ENC_TF_MIRROR` (`http://host:port[/prefix]`)
    when that is set; the path and query are kept."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise DownloadError(
            f"{MIRROR_VARIABLE} must be an http(s)://host[:port][/prefix] URL, got {mirror!r}."
        )
    parts = urllib.parse.urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


@dataclasses.dataclass(frozen=True)
class Digest:
    """What a downloaded file must hash to.

    Attributes:
        algorithm: `sha256` or `md5`.
        value: lower-case hex; shorter than the full digest means a prefix (torch.hub's
            filename convention publishes the first 8 hex digits of the SHA-256).
    """

    algorithm: str
    value: str

    def __post_init__(self):
        full = DIGEST_LENGTHS.get(self.algorithm)
        if full is None:
            raise ValueError(f"Unknown digest algorithm {self.algorithm!r}; use sha256 or md5.")
        if not re.fullmatch(r"[0-9a-f]+", self.value) or not 8 <= len(self.value) <= full:
            raise ValueError(
                f"A {self.algorithm} digest is 8 to {full} lower-case hex digits, "
                f"got {self.value!r}."
            )

    @classmethod
    def parse(cls, text: str) -> "Digest":
        """`sha256:<hex>` or `md5:<hex>`."""
        algorithm, _, value = text.partition(":")
        return cls(algorithm.strip().lower(), value.strip().lower())

    def matches(self, hexdigest: str) -> bool:
        return hexdigest.startswith(self.value)

    def __str__(self):
        return f"{self.algorithm}:{self.value}"


def digest_from_url(url: str) -> Optional[Digest]:
    """The digest a URL states: a `#sha256=<hex>` fragment (pip's convention), else a
    torch.hub-style `-<hex>` filename suffix (a SHA-256 prefix; one of only decimal digits
    is taken for a date or version); None if neither."""
    fragment = urllib.parse.urlsplit(url).fragment
    for algorithm in DIGEST_LENGTHS:
        if fragment.startswith(algorithm + "="):
            return Digest(algorithm, fragment.split("=", 1)[1].lower())
    match = _HASH_SUFFIX.search(urllib.parse.urlsplit(url).path)
    if match is None or match[1].isdigit():  # all digits: a date or a version, not a digest
        return None
    return Digest("sha256", match[1])


def file_digest(path: str, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _by_hand(url: str, target: str) -> str:
    return (
        f"download it yourself and put it at {target} (the cache, ${HOME_VARIABLE}), "
        "or pass a local file instead"
    )


def _stream(url: str, tmp: str, digest: Optional[Digest], progress) -> str:
    """Writes the body at `url` to `tmp`; returns its hex digest. Raises `_Transient` for
    what is worth retrying, `urllib.error.HTTPError` (4xx) for what is not."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    h = hashlib.new(digest.algorithm if digest is not None else "sha256")
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout()) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with open(tmp, "wb") as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    received += len(block)
                    if progress is not None:
                        progress(received, total)
                f.flush()
                os.fsync(f.fileno())
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise _Transient(f"HTTP {err.code} {err.reason}") from err
        raise
    except (urllib.error.URLError, socket.timeout, TimeoutError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise _Transient(f"{type(err).__name__}: {reason}") from err
    except ConnectionError as err:
        raise _Transient(f"{type(err).__name__}: {err}") from err
    if total is not None and received != total:
        raise _Transient(f"truncated transfer: {received} of {total} bytes")
    return h.hexdigest()


def _no_space(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def _fetch_one(url: str, target: str, digest: Optional[Digest], progress, attempts: int):
    """Fetches `url` into `target` (atomically, verified unless `digest` is None).

    Raises `DownloadError` for a wrong digest or a full disk, `_Transient` or
    `HTTPError` when the URL fails."""
    last = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(float(attempt))  # 1 s, then 2 s
            logger.info("Retrying %s (%s)", url, last)
        tmp = temporary_path(target)
        try:
            actual = _stream(url, tmp, digest, progress)
            if digest is not None and not digest.matches(actual):
                raise DownloadError(
                    f"{url}: the downloaded file's {digest.algorithm} is {actual}, expected "
                    f"{digest.value}; it was deleted (a corrupt transfer, a wrong mirror, or the "
                    f"publisher replaced the file); {_by_hand(url, target)}."
                )
            os.replace(tmp, target)
            return
        except _Transient as err:
            last = err
        except OSError as err:
            if _no_space(err):
                raise DownloadError(
                    f"No space left on the device while writing {target} from {url}: free "
                    f"space or point {HOME_VARIABLE} at a larger disk."
                ) from err
            raise
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)
    raise last


def fetch(
    urls: Sequence[str],
    digest: Optional[Digest],
    filename: Optional[str] = None,
    subdir: str = "downloads",
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
    attempts: int = ATTEMPTS,
) -> str:
    """The local path of a verified copy of the file at `urls` (the first that works).

    Args:
        urls: the publisher's URL, then fallbacks holding the same bytes. `ENC_TF_MIRROR`
            rewrites each (`mirrored`).
        digest: what the file must hash to; None only for a URL the user gave without one
            (its SHA-256 is then logged, and the file is cached under it).
        filename: the name in the cache (default: the first URL's file name).
        subdir: the cache's sub-directory.
        progress: called as `progress(bytes_so_far, total_or_None)` while downloading.
        attempts: tries per URL for transient failures.

    Raises:
        DownloadError: offline with an empty cache, every URL failed, the digest is
            wrong, or the disk is full; the message names the URL and the cache path.
    """
    if not urls:
        raise ValueError("fetch needs at least one URL.")
    filename = filename or os.path.basename(urllib.parse.urlsplit(urls[0]).path)
    if not filename or filename.startswith((".", TEMP_PREFIX)):
        raise DownloadError(f"{urls[0]}: cannot tell a file name from this URL.")
    directory = os.path.join(cache_home(), subdir)
    target = os.path.join(directory, filename)
    if os.path.isfile(target) and _verified(target, digest):
        return target
    if offline():
        raise DownloadError(
            f"{OFFLINE_VARIABLE} is set and {filename} is not in the cache: {urls[0]} was not "
            f"fetched; {_by_hand(urls[0], target)}."
        )
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"Cannot create the cache directory {directory}: {err.strerror}.")
    with file_lock(target + ".lock"):
        if os.path.isfile(target) and _verified(target, digest):  # another process fetched it
            return target
        remove_stale_temporaries(directory)  # of killed downloads
        failures = []
        for url in urls:
            url = mirrored(url)
            logger.info("Downloading %s to %s", url, target)
            try:
                _fetch_one(url, target, digest, progress, attempts)
                if digest is None:
                    logger.warning(
                        "%s states no digest; its sha256 is %s (append #sha256=<hex> to the URL "
                        "to pin it)",
                        url,
                        file_digest(target, "sha256"),
                    )
                return target
            except urllib.error.HTTPError as err:
                failures.append(f"{url}: HTTP {err.code} {err.reason}")
            except _Transient as err:
                failures.append(f"{url}: {err}")
        raise DownloadError(
            f"Could not download {filename} ({'; '.join(failures)}); {_by_hand(urls[0], target)}."
        )


def _verified(path: str, digest: Optional[Digest]) -> bool:
    """True when the cached `path` has the expected digest; a wrong file is deleted."""
    if digest is None:
        return True
    actual = file_digest(path, digest.algorithm)
    if digest.matches(actual):
        return True
    logger.warning("Deleting %s: its %s is %s, expected %s", path, digest.algorithm, actual, digest)
    try:
        os.remove(path)
    except FileNotFoundError:  # another process deleted it first
        pass
    return False
