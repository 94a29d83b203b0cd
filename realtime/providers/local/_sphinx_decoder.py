"""A minimal PocketSphinx decoder over the library's C API, through ctypes.

Why not `pocketsphinx.Decoder`: its Cython methods keep the GIL while decoding (~4 ms
per 40 ms chunk, measured: a busy decode thread cut a pure-Python thread to a third of
its speed and stalled it for up to 40 ms), which would stall the event loop that serves
every session. ctypes releases the GIL around each C call. The C library is the one
inside the pocketsphinx wheel's extension module, so nothing extra is installed.
"""

from __future__ import annotations

import ctypes
import json

import pocketsphinx

_P = ctypes.c_void_p
_lib = ctypes.CDLL(pocketsphinx._pocketsphinx.__file__)
_lib.ps_config_parse_json.argtypes = [_P, ctypes.c_char_p]
_lib.ps_config_parse_json.restype = _P
_lib.ps_config_free.argtypes = [_P]
_lib.ps_init.argtypes = [_P]
_lib.ps_init.restype = _P
_lib.ps_free.argtypes = [_P]
_lib.ps_start_utt.argtypes = [_P]
_lib.ps_end_utt.argtypes = [_P]
_lib.ps_process_raw.argtypes = [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
_lib.ps_get_hyp.argtypes = [_P, _P]
_lib.ps_get_hyp.restype = ctypes.c_char_p


class SphinxDecoder:
    """One recognizer (its own search state); not safe to use from two threads at once."""

    def __init__(self, **options):
        model = pocketsphinx.get_model_path()
        config = {
            "hmm": f"{model}/en-us/en-us",
            "lm": f"{model}/en-us/en-us.lm.bin",
            "dict": f"{model}/en-us/cmudict-en-us.dict",
            "loglevel": "FATAL",
            **options,
        }
        cfg = _lib.ps_config_parse_json(None, json.dumps(config).encode())
        if not cfg:
            raise ValueError(f"bad PocketSphinx options: {options}")
        self._ps = _lib.ps_init(cfg)
        _lib.ps_config_free(cfg)  # the decoder keeps its own reference
        if not self._ps:
            raise RuntimeError("PocketSphinx failed to load its model")

    def start_utt(self) -> None:
        if _lib.ps_start_utt(self._ps) < 0:
            raise RuntimeError("ps_start_utt failed")

    def process_raw(self, pcm16: bytes) -> None:
        if _lib.ps_process_raw(self._ps, pcm16, len(pcm16) // 2, 0, 0) < 0:
            raise RuntimeError("ps_process_raw failed")

    def end_utt(self) -> None:
        _lib.ps_end_utt(self._ps)

    def hyp(self) -> str:
        text = _lib.ps_get_hyp(self._ps, None)
        return text.decode("utf-8", "replace").strip() if text else ""

    def __del__(self):
        if getattr(self, "_ps", None):
            _lib.ps_free(self._ps)
            self._ps = None
