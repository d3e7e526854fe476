"""The download of a voicemail's media from Twilio (the phone provider's ``fetch_recording``).

The URL is never the ``RecordingUrl`` a callback sent: it is built from the checked RecordingSid
and our own account on the configured API base (intaked/hotline/recordings.py
``account_media_url``), so our Basic credentials only ever go to the API base; a redirect is
followed by ``requests``, which drops the credentials when the host changes.
"""

from __future__ import annotations

import time

import requests

from intaked.config import TwilioSettings
from intaked.hotline.recordings import MEDIA_TYPES, account_media_url
from intaked.ports.phone import PermanentFailure, RecordingNotFound, TemporaryFailure

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
#: A download may take at most this many times ``twilio.timeout_seconds`` in all (a slow trickle).
TOTAL_TIMEOUT_FACTOR = 6


def _error_code(response: requests.Response) -> int | None:
    try:
        data = response.json()
    except ValueError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return int(code) if isinstance(code, int) else None


def download_recording(twilio: TwilioSettings, recording_sid: str) -> tuple[bytes, str]:
    """GET the media of ``recording_sid`` (blocking): (bytes, content type).

    HTTP Basic auth with the account Sid and auth token, ``Accept: audio/*``,
    ``twilio.timeout_seconds`` per socket operation and six times that in all, at most
    ``twilio.recording_max_bytes``. Raises :class:`RecordingNotFound` (404),
    :class:`TemporaryFailure` (429, 5xx, timeouts, connection errors) or :class:`PermanentFailure`
    (401, 403, other 4xx, too large, not audio, a redirect to plain http)."""
    url = account_media_url(twilio, recording_sid)
    what = f"download recording {recording_sid}"
    deadline = time.monotonic() + twilio.timeout_seconds * TOTAL_TIMEOUT_FACTOR
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.trust_env = False  # no proxy or .netrc from the environment: credentials go to the base only
    try:
        with (
            session,
            session.get(
                url,
                auth=(twilio.account_sid, twilio.auth_token.get_secret_value()),
                headers={"Accept": "audio/*"},
                timeout=twilio.timeout_seconds,
                stream=True,
                allow_redirects=True,
            ) as response,
        ):
            content_type = _checked(response, url, what, twilio)
            return _body(response, what, twilio.recording_max_bytes, deadline), content_type
    except requests.exceptions.TooManyRedirects as exc:
        raise PermanentFailure(f"{what}: {exc}") from None
    except requests.exceptions.Timeout as exc:
        raise TemporaryFailure(f"{what}: no answer in time: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise TemporaryFailure(f"{what}: {exc}") from None


def _checked(response: requests.Response, url: str, what: str, twilio: TwilioSettings) -> str:
    """The media's content type, once the answer's status, scheme, length and type are acceptable."""
    status = response.status_code
    if url.startswith("https:") and not response.url.startswith("https:"):
        raise PermanentFailure(f"{what}: redirected to plain http ({response.url})", status=status)
    if status == 404:
        raise RecordingNotFound(f"{what}: HTTP 404 (not there yet?)", status=status)
    if status == 429 or status >= 500:
        raise TemporaryFailure(f"{what}: HTTP {status}", status=status)
    if status != 200:
        code = _error_code(response)
        raise PermanentFailure(
            f"{what}: HTTP {status}" + (f" error {code}" if code else ""), code=code, status=status
        )
    limit = twilio.recording_max_bytes
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise PermanentFailure(f"{what}: {length} bytes, more than twilio.recording_max_bytes ({limit})")
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type:
        content_type = MEDIA_TYPES[twilio.recording_format]
    if not content_type.startswith("audio/"):
        raise PermanentFailure(f"{what}: {content_type} is not audio", status=status)
    return content_type


def _body(response: requests.Response, what: str, limit: int, deadline: float) -> bytes:
    """The body, at most ``limit`` bytes, read before ``deadline`` (``time.monotonic``)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise PermanentFailure(f"{what}: more than twilio.recording_max_bytes ({limit})")
        if time.monotonic() > deadline:
            raise TemporaryFailure(f"{what}: still downloading after {TOTAL_TIMEOUT_FACTOR} timeouts")
        chunks.append(chunk)
    return b"".join(chunks)
