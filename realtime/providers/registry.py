"""Builds the provider set named by settings.REALTIME["PROVIDERS"], once per process."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from .base import Providers


@lru_cache(maxsize=None)
def get_providers(name: str | None = None) -> Providers:
    name = name or settings.REALTIME["PROVIDERS"]
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"Unknown provider set {name!r}; choose one of {sorted(_BUILDERS)}.")
    return builder(settings.REALTIME)


def _local(config: dict) -> Providers:
    from .local import EspeakTextToSpeech, PocketsphinxSpeechToText
    from .scripted import ScriptedInterviewer

    return Providers(
        stt=PocketsphinxSpeechToText(
            end_of_utterance_silence_ms=config["END_OF_UTTERANCE_SILENCE_MS"], vad_mode=config["VAD_MODE"]
        ),
        interviewer=ScriptedInterviewer(),
        tts=EspeakTextToSpeech(output_sample_rate=config["OUTPUT_SAMPLE_RATE"]),
        name="local",
    )


_BUILDERS = {
    "local": _local,
    # Instant providers for load tests (bench/); imported only when selected.
    "synthetic": lambda config: __import__("realtime.providers.synthetic", fromlist=["build"]).build(config),
}
