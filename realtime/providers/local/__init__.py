"""Embedded, offline speech providers (no keys, no downloads)."""

__all__ = ["EspeakTextToSpeech", "PocketsphinxSpeechToText"]


def __getattr__(name):
    # Lazy: importing the package must not load eSpeak or PocketSphinx.
    if name == "EspeakTextToSpeech":
        from .espeak_tts import EspeakTextToSpeech

        return EspeakTextToSpeech
    if name == "PocketsphinxSpeechToText":
        from .pocketsphinx_stt import PocketsphinxSpeechToText

        return PocketsphinxSpeechToText
    raise AttributeError(name)
