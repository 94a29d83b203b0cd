"""Choosing providers: a bad choice stops a worker at start-up with the reason, never at the first candidate."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from realtime.providers.registry import ProviderConfigError, build_providers


def choose(env=None, **roles):
    config = {**settings.REALTIME, "STT": "", "LLM": "", "TTS": "", **roles}
    return build_providers(config, env or {})


def test_the_default_is_the_embedded_set():
    providers = choose()
    assert providers.name == "local" and providers.evaluator is None
    assert type(providers.interviewer).__name__ == "ScriptedInterviewer"
    # Issue 13: the recogniser and the voice worth using are the defaults.
    assert (type(providers.stt).__name__, type(providers.tts).__name__) == ("MoonshineSpeechToText", "PiperTextToSpeech")
    assert choose(STT="local", TTS="local").name == "local"  # "local" names the defaults


@pytest.mark.parametrize("roles, message", [
    ({"PROVIDERS": "openia"}, "Unknown REALTIME_PROVIDERS='openia'"),
    ({"LLM": "gpt"}, "Unknown REALTIME_LLM='gpt'"),
    ({"TTS": "polly"}, "Unknown REALTIME_TTS='polly'"),
    ({"STT": "elevenlabs"}, "Unknown REALTIME_STT='elevenlabs'"),
    ({"LLM": "openai"}, "REALTIME_LLM=openai needs OPENAI_API_KEY"),
    ({"TTS": "elevenlabs"}, "REALTIME_TTS=elevenlabs needs ELEVENLABS_API_KEY"),
    ({"LLM": "gemini"}, "REALTIME_LLM=gemini needs GEMINI_API_KEY"),
    ({"PROVIDERS": "openai-realtime"}, "REALTIME_PROVIDERS=openai-realtime needs OPENAI_API_KEY"),
    ({"PROVIDERS": "gemini-live"}, "REALTIME_PROVIDERS=gemini-live needs GEMINI_API_KEY"),
    ({"PROVIDERS": "openai-realtime", "TTS": "local"}, "unset REALTIME_TTS"),
])
def test_a_bad_choice_is_refused_with_the_reason(roles, message):
    with pytest.raises(ProviderConfigError) as refused:
        choose(**roles)
    assert message in str(refused.value)


def test_roles_of_a_preset_are_replaced_one_by_one():
    providers = choose({"OPENAI_API_KEY": "sk-test"}, LLM="openai")
    assert providers.name == "moonshine+openai+piper"
    assert type(providers.interviewer).__name__ == "OpenAIInterviewer"
    assert providers.evaluator is not None  # results are analysed by the same model
    assert type(providers.stt).__name__ == "MoonshineSpeechToText"
    light = choose({}, STT="pocketsphinx", TTS="espeak")  # the light pair, by name
    assert (type(light.stt).__name__, type(light.tts).__name__) == ("PocketsphinxSpeechToText", "EspeakTextToSpeech")


def test_a_worker_with_a_missing_key_does_not_start(tmp_path):
    """The operator sees why at once, and the key's absence is named, not a stack of internals."""
    env = {**os.environ, "REALTIME_LLM": "openai", "OPENAI_API_KEY": "", "DJANGO_SETTINGS_MODULE": "interview_site.settings"}
    worker = subprocess.run(
        [sys.executable, "-m", "realtime.serve", "-b", "127.0.0.1", "-p", "0", "interview_site.asgi:application"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert worker.returncode != 0
    assert "REALTIME_LLM=openai needs OPENAI_API_KEY" in worker.stderr


def test_manage_check_reports_the_same():
    env = {**os.environ, "REALTIME_TTS": "elevenlabs", "ELEVENLABS_API_KEY": ""}
    check = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode != 0
    assert "realtime.E001" in check.stderr and "needs ELEVENLABS_API_KEY" in check.stderr
