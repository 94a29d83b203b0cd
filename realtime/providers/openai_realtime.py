"""OpenAI Realtime API (GA) providers: streaming transcription, and speech to speech.

- `OpenAIRealtimeTranscription`: a SpeechToText whose streams each hold one realtime
  connection in transcription mode (`?intent=transcription`, session type
  "transcription"), opened at the first audio.
- `build_session_factory(...)`: for `Providers.session_factory`; each interview session
  gets its own realtime connection (session type "realtime") that listens, answers and
  speaks (see openai_realtime_session.py).

Both go through the openai SDK's `client.realtime.connect(...)` (an `openai.AsyncOpenAI`
with `max_retries=0`; `websocket_base_url` points it elsewhere, e.g. at a test fake).
"""

from __future__ import annotations

from typing import Callable

from .openai_realtime_input import InputTranscription, input_audio_config, turn_detection_config
from .openai_realtime_link import RealtimeError, RealtimeLink
from .openai_realtime_session import OpenAIRealtimeSession

__all__ = ["OpenAIRealtimeTranscription", "OpenAIRealtimeSession", "RealtimeError", "build_session_factory"]


class OpenAIRealtimeTranscription:
    """SpeechToText on OpenAI Realtime transcription sessions, one connection per stream."""

    def __init__(self, client, *, model: str = "gpt-4o-transcribe", turn_detection: str = "server_vad",
                 silence_ms: int = 500, connect_timeout_s: float = 10.0, flush_timeout_s: float = 2.0):
        turn_detection_config(turn_detection, silence_ms=silence_ms, conversational=False)  # refuse a bad name now
        self._client = client
        self._session = {
            "type": "transcription",
            "audio": {"input": input_audio_config(transcription_model=model, turn_detection=turn_detection,
                                                  silence_ms=silence_ms, conversational=False)},
        }
        self._connect_timeout_s = connect_timeout_s
        self._flush_timeout_s = flush_timeout_s

    def open_stream(self, *, sample_rate: int) -> InputTranscription:
        link = RealtimeLink(self._client, connect_kwargs={"extra_query": {"intent": "transcription"}},
                            session=self._session, connect_timeout_s=self._connect_timeout_s)
        stream = InputTranscription(link, sample_rate=sample_rate, flush_timeout_s=self._flush_timeout_s)
        link.on_event = stream.handle
        link.on_failure = lambda _failure: stream.connection_lost()
        return stream


def build_session_factory(client, *, model: str = "gpt-realtime", voice: str = "marin",
                          transcription_model: str = "gpt-4o-transcribe", turn_detection: str = "server_vad",
                          output_sample_rate: int, silence_ms: int = 500, connect_timeout_s: float = 10.0,
                          idle_timeout_s: float = 15.0) -> Callable[..., OpenAIRealtimeSession]:
    """`Providers.session_factory`: `(sample_rate=...) -> ProviderSession`, one connection each."""
    turn_detection_config(turn_detection, silence_ms=silence_ms, conversational=True)  # refuse a bad name now

    def open_session(*, sample_rate: int) -> OpenAIRealtimeSession:
        return OpenAIRealtimeSession(client, model=model, voice=voice, transcription_model=transcription_model,
                                     turn_detection=turn_detection, sample_rate=sample_rate,
                                     output_sample_rate=output_sample_rate, silence_ms=silence_ms,
                                     connect_timeout_s=connect_timeout_s, idle_timeout_s=idle_timeout_s)

    return open_session
