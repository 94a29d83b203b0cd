"""Embedded, offline speech providers (no keys, no downloads)."""

__all__ = ["EspeakTextToSpeech", "MoonshineSpeechToText", "PiperTextToSpeech", "PocketsphinxSpeechToText"]


def __getattr__(name):
    # Lazy: importing the package must not load any engine.
    if name == "EspeakTextToSpeech":
        from .espeak_tts import EspeakTextToSpeech

        return EspeakTextToSpeech
    if name == "PocketsphinxSpeechToText":
        from .pocketsphinx_stt import PocketsphinxSpeechToText

        return PocketsphinxSpeechToText
    if name == "MoonshineSpeechToText":
        from .moonshine_stt import MoonshineSpeechToText

        return MoonshineSpeechToText
    if name == "PiperTextToSpeech":
        from .piper_tts import PiperTextToSpeech

        return PiperTextToSpeech
    raise AttributeError(name)
