"""The interviewer's lines as audio files, at signed URLs that expire.

The text-era socket sends each interviewer message with `audioUrl`: a URL of that
line's speech which only its session can use, for `QUESTION_AUDIO_URL_SECONDS`. The
URL carries the words, signed (django.core.signing, salted) together with the session
id and the time, so any worker can serve it with nothing stored beforehand.

The first request renders the line with the configured voice (the provider set's text
to speech; for a speech-to-speech set, which has none, the local eSpeak NG voice) and
keeps it on disk, keyed by the voice and the words: a line is rendered once however
often, or by however many sessions, it is fetched. Files are WAV (PCM16 mono), served
with range requests, an ETag and caching headers, so an `<audio>` element can play and
seek them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import re
import tempfile
import time
import wave
import weakref
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from . import metrics

log = logging.getLogger(__name__)

SALT = "realtime.question-audio"
CONTENT_TYPE = "audio/wav"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_render_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()
renders = 0  # lines rendered by this process (the tests count them)


class LinkRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- links ------------------------------------------------------------------------------

def audio_url(session_id: str, text: str) -> str:
    """The path (on this server) of `text` spoken, usable by `session_id` only, for a while."""
    token = signing.dumps({"s": str(session_id), "t": text}, salt=SALT, compress=True)
    return reverse("question-audio", kwargs={"session_id": session_id, "token": token})


def text_for(session_id: str, token: str) -> tuple[str, int]:
    """The words a link stands for, and how many seconds it stays valid; or LinkRefused."""
    max_age = settings.REALTIME["QUESTION_AUDIO_URL_SECONDS"]
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkRefused(410, "This audio link has expired.") from None
    except signing.BadSignature:
        raise LinkRefused(403, "This audio link is not valid.") from None
    if not isinstance(data, dict) or data.get("s") != str(session_id) or not isinstance(data.get("t"), str):
        raise LinkRefused(403, "This audio link belongs to another session.")
    signed_at = signing.b62_decode(token.split(":")[-2])
    return data["t"], max(0, int(signed_at + max_age - time.time()))


# --- the voice and the cache -------------------------------------------------------------

@lru_cache(maxsize=1)
def voice():
    """The text to speech that renders lines, and a key naming the voice it speaks with."""
    from .providers.registry import get_providers

    tts = get_providers().tts
    if tts is None:  # speech-to-speech: it only speaks inside its own sessions
        from .providers.local import EspeakTextToSpeech

        tts = EspeakTextToSpeech(output_sample_rate=settings.REALTIME["OUTPUT_SAMPLE_RATE"])
    traits = [f"{type(tts).__module__}.{type(tts).__qualname__}"]
    for name in ("model", "model_id", "voice", "voice_id", "rate_wpm", "sample_rate"):
        value = getattr(tts, name, None)
        if isinstance(value, (str, int, float)):
            traits.append(f"{name}={value}")
    return tts, ";".join(traits)


def cache_dir() -> Path:
    configured = settings.REALTIME["QUESTION_AUDIO_DIR"]
    return Path(configured) if configured else Path(settings.VAR_DIR) / "question-audio"


def cache_path(text: str, voice_key: str) -> Path:
    key = hashlib.sha256(f"{voice_key}\n{text}".encode()).hexdigest()
    return cache_dir() / f"{key}.wav"


async def rendered(text: str) -> Path:
    """The WAV file of `text` spoken, rendered now unless the cache has it."""
    global renders
    tts, voice_key = voice()
    path = cache_path(text, voice_key)
    if path.exists():
        return path
    lock = _render_locks.get(path.name)
    if lock is None:
        lock = _render_locks[path.name] = asyncio.Lock()
    async with lock:  # two requests for a line being rendered wait for the one rendering
        if path.exists():
            return path
        started = time.monotonic()
        pieces: list[bytes] = []
        stream = tts.synthesize(text).__aiter__()
        try:
            async with asyncio.timeout(settings.REALTIME["QUESTION_AUDIO_RENDER_SECONDS"]):
                async for piece in stream:
                    pieces.append(piece)
        except TimeoutError:
            metrics.PROVIDER_FAILURES.labels("tts", "deadline").inc()
            raise
        finally:
            await stream.aclose()
        pcm = b"".join(pieces)
        await asyncio.to_thread(_write_wav, path, pcm, tts.sample_rate)
        renders += 1
        log.info("question audio rendered: %d chars, %.1f s of speech in %.0f ms (%s)", len(text),
                 len(pcm) / 2 / tts.sample_rate, (time.monotonic() - started) * 1000, path.stem[:12])
    return path


def _write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    # Written aside and renamed: a reader (another worker sharing the directory) never
    # sees half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(handle, "wb") as file:
        file.write(buffer.getvalue())
    os.replace(temporary, path)
    _prune(path.parent)


def _prune(directory: Path) -> None:
    """Keep at most QUESTION_AUDIO_CACHE_FILES files: the least recently written go first."""
    limit = settings.REALTIME["QUESTION_AUDIO_CACHE_FILES"]
    files = list(directory.glob("*.wav"))
    if len(files) <= limit:
        return
    files.sort(key=lambda f: f.stat().st_mtime)
    for old in files[: len(files) - limit + limit // 10]:
        old.unlink(missing_ok=True)


# --- the HTTP view -----------------------------------------------------------------------

@require_safe
async def question_audio(request, session_id, token):
    try:
        text, valid_s = text_for(str(session_id), token)
    except LinkRefused as refused:
        return HttpResponse(refused.reason, status=refused.status, content_type="text/plain; charset=utf-8")
    if not text.strip():
        return HttpResponse("This line has no words to speak.", status=404, content_type="text/plain; charset=utf-8")
    try:
        path = await rendered(text)
    except Exception as error:
        log.warning("question audio for session %s not rendered: %s", session_id, type(error).__name__)
        return HttpResponse("The audio could not be made right now; try again.", status=503,
                            content_type="text/plain; charset=utf-8", headers={"Retry-After": "2"})
    body = await asyncio.to_thread(path.read_bytes)
    etag = f'"{path.stem[:32]}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        # The bytes at a URL never change; a browser may keep them as long as the link is good.
        "Cache-Control": f"private, max-age={valid_s}, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": 'inline; filename="question.wav"',
    }
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return HttpResponse(status=304, headers=headers)
    size = len(body)
    status, part = 200, body
    requested = _byte_range(request.headers.get("Range", ""), size)
    if requested == "unsatisfiable":
        return HttpResponse(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if requested is not None and _if_range_allows(request, etag):
        start, end = requested
        status, part = 206, body[start : end + 1]
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = HttpResponse(b"" if request.method == "HEAD" else part, status=status, content_type=CONTENT_TYPE,
                            headers=headers)
    response["Content-Length"] = str(len(part))
    return response


def _byte_range(header: str, size: int):
    """(first, last) for one `bytes=` range; None to send everything; or "unsatisfiable"."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or not (match[1] or match[2]):
        return None  # no range, several ranges, or another unit: the whole file (RFC 9110 allows it)
    if not match[1]:  # the last N bytes
        length = int(match[2])
        return (max(0, size - length), size - 1) if length and size else "unsatisfiable"
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, last


def _if_range_allows(request, etag: str) -> bool:
    condition = request.headers.get("If-Range")
    return condition is None or condition.strip() == etag
