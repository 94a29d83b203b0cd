"""Builds the providers that settings name, once per process.

A choice is a preset (`REALTIME_PROVIDERS`: local, openai, synthetic) whose roles
`REALTIME_STT`, `REALTIME_LLM` and `REALTIME_TTS` may replace one by one, or a
speech-to-speech provider (openai-realtime, gemini-live) that takes all three roles.
A missing key or an unknown name is refused when the worker starts
(`interview_site/asgi.py`, `manage.py check`), never at the first candidate.
Vendor modules are imported only when chosen.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Callable, Mapping

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .base import Providers

PRESETS = {  # preset -> (stt, llm, tts)
    "local": ("moonshine", "local", "piper"),
    "openai": ("openai", "openai", "openai"),
    "synthetic": ("synthetic", "synthetic", "synthetic"),
}


class ProviderConfigError(ImproperlyConfigured):
    pass


@lru_cache(maxsize=None)
def get_providers(name: str | None = None) -> Providers:
    config = dict(settings.REALTIME)
    if name is not None:
        config.update(PROVIDERS=name, STT="", LLM="", TTS="")
    return build_providers(config, os.environ)


def warm_up_providers() -> Providers:
    """The worker's providers with their models loaded now (Moonshine ~5 s and ~0.3 GB,
    Piper ~1 s and ~0.34 GB, once per worker), not at the first candidate. `manage.py`
    commands only build them (cheap: models load on first use)."""
    providers = get_providers()
    for part in (providers.stt, providers.tts, providers.fallback_tts):
        warm_up = getattr(part, "warm_up", None)
        if warm_up is not None:
            warm_up()
    return providers


def build_providers(config: Mapping, env: Mapping[str, str]) -> Providers:
    preset = config["PROVIDERS"]
    vendor = _Vendors(env, config)
    if preset in SPEECH_TO_SPEECH:
        chosen = [f"REALTIME_{role}" for role in ("STT", "LLM", "TTS") if config.get(role)]
        if chosen:
            raise ProviderConfigError(f"REALTIME_PROVIDERS={preset} speaks, listens and answers by itself; "
                                      f"unset {', '.join(chosen)}.")
        return SPEECH_TO_SPEECH[preset](vendor)
    if preset not in PRESETS:
        raise ProviderConfigError(f"Unknown REALTIME_PROVIDERS={preset!r}; choose one of "
                                  f"{sorted([*PRESETS, *SPEECH_TO_SPEECH])}.")
    names = [config.get(role) or default for role, default in zip(("STT", "LLM", "TTS"), PRESETS[preset])]
    for role, name, builders in zip(("STT", "LLM", "TTS"), names, (STT, LLM, TTS)):
        if name not in builders:
            raise ProviderConfigError(f"Unknown REALTIME_{role}={name!r}; choose one of {sorted(builders)}.")
    stt, (interviewer, evaluator), tts = STT[names[0]](vendor), LLM[names[1]](vendor), TTS[names[2]](vendor)
    defaults = [builders[name] for builders, name in zip((STT, LLM, TTS), PRESETS[preset])]
    label = preset if [b[n] for b, n in zip((STT, LLM, TTS), names)] == defaults else "+".join(names)
    return Providers(stt=stt, interviewer=interviewer, tts=tts, evaluator=evaluator, name=label)


class _Vendors:
    """Keys and clients from the environment: one client per vendor and process."""

    def __init__(self, env: Mapping[str, str], config: Mapping):
        self.env = env
        self.config = config
        self._openai = None
        self._gemini = None

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, "") or default

    def key(self, name: str, needed_by: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise ProviderConfigError(f"{needed_by} needs {name} in the environment.")
        return value

    def openai(self, needed_by: str):
        if self._openai is None:
            import openai

            self._openai = openai.AsyncOpenAI(
                api_key=self.key("OPENAI_API_KEY", needed_by),
                base_url=self.get("OPENAI_BASE_URL") or None,
                websocket_base_url=self.get("OPENAI_WEBSOCKET_BASE_URL") or None,
                timeout=self.config["LLM_DEADLINE_SECONDS"],
                max_retries=0,  # a failed call gets the fallback line; a retry would only be later
            )
        return self._openai

    def gemini(self, needed_by: str):
        if self._gemini is None:
            api_key = self.key("GEMINI_API_KEY", needed_by)
            from .gemini_chat import make_client

            self._gemini = make_client(api_key=api_key,
                                       base_url=self.get("GEMINI_BASE_URL") or None,
                                       timeout_s=self.config["LLM_DEADLINE_SECONDS"])
        return self._gemini


# --- speech to text ---------------------------------------------------------------------

def _pocketsphinx_stt(vendor: _Vendors):
    from realtime.turn_taking import from_config

    from .local import PocketsphinxSpeechToText

    return PocketsphinxSpeechToText(end_of_utterance_silence_ms=vendor.config["END_OF_UTTERANCE_SILENCE_MS"],
                                    vad_mode=vendor.config["VAD_MODE"],
                                    turn_policy=from_config(vendor.config, punctuates=False))


def _moonshine_stt(vendor: _Vendors):
    from realtime.turn_taking import from_config

    from .local.moonshine_stt import MoonshineSpeechToText

    from .local import moonshine_model

    try:
        moonshine_model.package_dir()  # the weights' package is installed (loaded later, once)
    except RuntimeError as error:
        raise ProviderConfigError(str(error)) from None
    return MoonshineSpeechToText(turn_policy=from_config(vendor.config))


def _openai_stt(vendor: _Vendors):
    client = vendor.openai("REALTIME_STT=openai")
    from .openai_realtime import OpenAIRealtimeTranscription

    return OpenAIRealtimeTranscription(client,
                                       model=vendor.get("OPENAI_STT_MODEL", "gpt-4o-transcribe"),
                                       turn_detection=vendor.get("OPENAI_TURN_DETECTION", "server_vad"),
                                       silence_ms=vendor.config["END_OF_UTTERANCE_SILENCE_MS"])


# --- the interviewer (and the evaluator that comes with it) -----------------------------

def _local_llm(vendor: _Vendors):
    from .scripted import ScriptedInterviewer

    return ScriptedInterviewer(), None


def _openai_llm(vendor: _Vendors, needed_by: str = "REALTIME_LLM=openai"):
    client = vendor.openai(needed_by)
    from .openai_chat import OpenAIEvaluator, OpenAIInterviewer

    model = vendor.get("OPENAI_LLM_MODEL", "gpt-4.1-mini")
    return OpenAIInterviewer(client, model=model), OpenAIEvaluator(client, model=model)


def _gemini_llm(vendor: _Vendors, needed_by: str = "REALTIME_LLM=gemini"):
    client = vendor.gemini(needed_by)
    from .gemini_chat import GeminiEvaluator, GeminiInterviewer

    model = vendor.get("GEMINI_LLM_MODEL", "gemini-2.5-flash")
    return GeminiInterviewer(client, model=model), GeminiEvaluator(client, model=model)


# --- the voice --------------------------------------------------------------------------

def _espeak_tts(vendor: _Vendors):
    from .local import EspeakTextToSpeech

    return EspeakTextToSpeech(output_sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"])


def _piper_tts(vendor: _Vendors):
    from .local.piper_tts import PiperTextToSpeech

    cache_mb = float(vendor.get("REALTIME_TTS_CACHE_MB", "16"))  # lines said before; 0: none
    return PiperTextToSpeech(output_sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"], cache_bytes=int(cache_mb * 1024 * 1024))


def _openai_tts(vendor: _Vendors):
    client = vendor.openai("REALTIME_TTS=openai")
    from .openai_speech import OpenAITextToSpeech

    return OpenAITextToSpeech(client,
                              model=vendor.get("OPENAI_TTS_MODEL", "gpt-4o-mini-tts"),
                              voice=vendor.get("OPENAI_TTS_VOICE", "alloy"),
                              sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"])


def _elevenlabs_tts(vendor: _Vendors):
    api_key = vendor.key("ELEVENLABS_API_KEY", "REALTIME_TTS=elevenlabs")
    from .elevenlabs_tts import ElevenLabsTextToSpeech

    return ElevenLabsTextToSpeech(api_key=api_key,
                                  voice_id=vendor.get("ELEVENLABS_VOICE_ID", "21m00Tcm4TlvDq8ikWAM"),
                                  model_id=vendor.get("ELEVENLABS_MODEL", "eleven_flash_v2_5"),
                                  base_url=vendor.get("ELEVENLABS_BASE_URL", "https://api.elevenlabs.io"),
                                  sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"],
                                  timeout_s=vendor.config["TTS_DEADLINE_SECONDS"])


def _synthetic(role: int) -> Callable:
    def build(vendor: _Vendors):
        from . import synthetic

        built = synthetic.build(vendor.config)
        return (built.stt, (built.interviewer, None), built.tts)[role]
    return build


# --- speech to speech -------------------------------------------------------------------

def _openai_realtime(vendor: _Vendors) -> Providers:
    client = vendor.openai("REALTIME_PROVIDERS=openai-realtime")
    interviewer, evaluator = _openai_llm(vendor, "REALTIME_PROVIDERS=openai-realtime")  # drafts questions and writes results
    from .openai_realtime import build_session_factory

    factory = build_session_factory(
        client,
        model=vendor.get("OPENAI_REALTIME_MODEL", "gpt-realtime"),
        voice=vendor.get("OPENAI_REALTIME_VOICE", "marin"),
        transcription_model=vendor.get("OPENAI_STT_MODEL", "gpt-4o-transcribe"),
        turn_detection=vendor.get("OPENAI_TURN_DETECTION", "server_vad"),
        output_sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"],
        silence_ms=vendor.config["END_OF_UTTERANCE_SILENCE_MS"],
    )
    return Providers(stt=None, interviewer=interviewer, tts=None, evaluator=evaluator,
                     session_factory=factory, fallback_tts=_espeak_tts(vendor), name="openai-realtime")


def _gemini_live(vendor: _Vendors) -> Providers:
    needed_by = "REALTIME_PROVIDERS=gemini-live"
    vendor.gemini(needed_by)  # the key is checked before anything is imported
    interviewer, evaluator = _gemini_llm(vendor, needed_by)  # drafts questions and writes results
    from .gemini_chat import make_client
    from .gemini_live import build_session_factory

    live_client = make_client(api_key=vendor.key("GEMINI_API_KEY", needed_by),
                              base_url=vendor.get("GEMINI_LIVE_BASE_URL") or vendor.get("GEMINI_BASE_URL") or None,
                              timeout_s=vendor.config["LLM_DEADLINE_SECONDS"])
    factory = build_session_factory(
        live_client,
        model=vendor.get("GEMINI_LIVE_MODEL", "gemini-live-2.5-flash-preview"),
        voice=vendor.get("GEMINI_VOICE", "Kore"),
        output_sample_rate=vendor.config["OUTPUT_SAMPLE_RATE"],
    )
    return Providers(stt=None, interviewer=interviewer, tts=None, evaluator=evaluator,
                     session_factory=factory, fallback_tts=_espeak_tts(vendor), name="gemini-live")


# "local" is the embedded default of each role (Moonshine, the scripted interviewer, Piper);
# PocketSphinx and eSpeak NG are the light options (fast to start, ~0.1 GB, far less accurate
# and harder to follow).
STT = {"local": _moonshine_stt, "moonshine": _moonshine_stt, "pocketsphinx": _pocketsphinx_stt,
       "openai": _openai_stt, "synthetic": _synthetic(0)}
LLM = {"local": _local_llm, "openai": _openai_llm, "gemini": _gemini_llm, "synthetic": _synthetic(1)}
TTS = {"local": _piper_tts, "piper": _piper_tts, "espeak": _espeak_tts, "openai": _openai_tts,
       "elevenlabs": _elevenlabs_tts, "synthetic": _synthetic(2)}
SPEECH_TO_SPEECH = {"openai-realtime": _openai_realtime, "gemini-live": _gemini_live}
