"""Embedded speech figures in one run: `python -m bench.speech` (issue 13).

- Word error rate of Moonshine (realtime/providers/local/moonshine_stt.py) beside
  PocketSphinx on real human speech (LibriVox and card-game clips from the Debian package
  pocketsphinx-testdata, the Beckett clip in the moonshine-cpp wheel) and on 20
  interview answers spoken by Piper and by eSpeak NG; real-time factor; memory.
- Turn-taking on 40 synthesized answers (Piper), half finished, half with a thinking
  pause of 0.6-1.5 s after "and", "because", "um" or mid-clause: false cut-offs and the
  silence from the end of speech to the final transcript (the turn's end), with the
  adaptive policy (realtime/turn_taking.py) and with the fixed 700 ms rule, through the
  same Moonshine stream. Speech is fed faster than real time, silences at real time, so
  decode latency counts in the dead air.

Writes bench/results/speech.json and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import resource
import statistics
import sys
import time
import wave
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")

RATE = 16000
CHUNK = 1280
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
RESULTS = Path(__file__).parent / "results"

ANSWERS = [
    "I built the payment service in Python and moved it to Kubernetes last year.",
    "My team had four engineers and I was responsible for the data pipeline.",
    "We reduced the page load time from three seconds to under one second.",
    "I prefer code reviews that focus on design rather than style.",
    "The hardest bug I fixed was a race condition in our cache layer.",
    "I learned to write tests before changing legacy code.",
    "Our users were mostly small businesses that needed simple invoicing.",
    "I would start by measuring where the time actually goes.",
    "When we disagreed on the design, we wrote down the trade-offs and picked one.",
    "I mentored two junior developers during my last project.",
    "We used PostgreSQL for the main data and Redis for caching.",
    "I am most proud of the monitoring dashboard that our support team still uses.",
    "The project was late because the requirements changed twice.",
    "I think clear communication matters more than any single tool.",
    "I automated the deployment so that a release took ten minutes instead of a day.",
    "My biggest mistake was not asking for help sooner.",
    "I enjoy working close to customers and hearing their feedback.",
    "We split the monolith into three services over six months.",
    "I keep a short list of priorities and review it every morning.",
    "I would like to grow into a role where I lead technical decisions.",
]
# Unfinished starts (a thinking pause follows), each with how the answer goes on.
THINKING = [
    ("I worked mostly on the backend and", "later I took over the deployment scripts."),
    ("I chose Python because", "the team already knew it well."),
    ("Um", "I think my strongest skill is debugging."),
    ("The most important thing I learned was", "to ask questions early."),
    ("We had a tight deadline and", "we cut two features to make it."),
    ("I left that job because", "I wanted to work on larger systems."),
    ("Um, so", "the first thing I would do is read the logs."),
    ("My role in that project was to", "design the database schema."),
    ("I usually start by", "writing a small prototype."),
    ("We tested it with", "about fifty real customers."),
    ("I think the hardest part was", "getting everyone to agree."),
    ("I like working in small teams because", "decisions are made quickly."),
    ("Uh", "I would say reliability comes first."),
    ("Our main customers were", "hospitals in three countries."),
    ("I fixed the memory leak and", "then wrote a test so it would not come back."),
    ("The reason we switched was", "that the old library was unmaintained."),
    ("I spent two years on", "the search team."),
    ("Um, let me think, I", "would probably use a queue for that."),
    ("After the launch we", "measured the error rate every day."),
    ("I would improve the onboarding because", "new people took weeks to ship anything."),
]


def norm_words(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    return re.findall(r"[a-z0-9']+", text)


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(pairs: list[tuple[str, str]]) -> float:
    errors = sum(edit_distance(norm_words(r), norm_words(h)) for r, h in pairs)
    return 100.0 * errors / max(1, sum(len(norm_words(r)) for r, _ in pairs))


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1, path
        return w.readframes(w.getnframes())


def real_set() -> list[tuple[str, bytes]]:
    from realtime.providers.local import moonshine_model

    clips = [("ever tried ever failed no matter try again fail again fail better",
              read_wav(moonshine_model.package_dir().parent.parent / "test-data" / "beckett.wav"))]
    for folder in ("librivox", "cards"):
        names = "transcription" if folder == "librivox" else "cards.transcription"
        path = TESTDATA / folder / names
        if not path.exists():
            print(f"(skipping {folder}: apt-get install pocketsphinx-testdata)", file=sys.stderr)
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
            if m:
                clips.append((m.group(1).strip(), read_wav(TESTDATA / folder / f"{m.group(2)}.wav")))
    return clips


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def sphinx_text(pcm: bytes) -> str:
    from realtime.audio import silence, split_into_chunks
    from realtime.providers.local import PocketsphinxSpeechToText

    stream = PocketsphinxSpeechToText(end_of_utterance_silence_ms=5000).open_stream(sample_rate=RATE)
    events = []
    for piece in split_into_chunks(pcm + silence(300, RATE), CHUNK):
        events += await stream.feed(piece)
    events += await stream.flush()
    await stream.close()
    return " ".join(e.text for e in events if e.is_final)


async def recognition(model, sets: dict) -> dict:
    import numpy as np

    out = {}
    for name, clips in sets.items():
        moon, sphinx, rtfs = [], [], []
        for ref, pcm in clips:
            audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
            started = time.perf_counter()
            text = model.transcribe(audio)
            rtfs.append((time.perf_counter() - started) / (len(audio) / RATE))
            moon.append((ref, text))
            sphinx.append((ref, await sphinx_text(pcm)))
        out[name] = {"clips": len(clips), "words": sum(len(norm_words(r)) for r, _ in clips),
                     "seconds": round(sum(len(p) for _, p in clips) / 2 / RATE, 1),
                     "moonshine_wer": round(wer(moon), 1), "pocketsphinx_wer": round(wer(sphinx), 1),
                     "moonshine_rtf_median": round(statistics.median(rtfs), 3)}
    return out


async def run_answer(stt_factory, parts: list[bytes], pauses_ms: list[int]) -> dict:
    """Feed speech parts (fast) with real-time pauses between them.

    A final before the last part is a cut-off; dead air is the audio time from the last
    voiced frame (the final's end_ms) to the chunk that brought the final.
    """
    from realtime.audio import silence, split_into_chunks

    stream = stt_factory()
    finals, fed_ms, dead_air, early = [], 0.0, None, 0
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        for piece in split_into_chunks(part, CHUNK):
            finals += [e for e in await stream.feed(piece) if e.is_final]
            fed_ms += 40
            await asyncio.sleep(0.002)
        if last:
            early = len(finals)
        wait = 4000 if last else pauses_ms[k]
        silent = 0
        while silent < wait:
            new = [e for e in await stream.feed(silence(40, RATE)) if e.is_final]
            fed_ms += 40
            silent += 40
            finals += new
            if new and last:
                dead_air = fed_ms - new[-1].end_ms
                break
            await asyncio.sleep(0.04)
    await stream.close()
    return {"finals": len(finals), "cut_off": early > 0, "dead_air_ms": dead_air}


async def turn_taking(stt, seed: int = 7) -> dict:
    from realtime.providers.local.piper_tts import synthesize_to_pcm
    from realtime.turn_taking import FixedTurnPolicy, TurnPolicy

    rng = random.Random(seed)
    cases = [([synthesize_to_pcm(a, RATE)], []) for a in ANSWERS]
    for start, rest in THINKING:
        cases.append(([synthesize_to_pcm(start, RATE), synthesize_to_pcm(rest, RATE)], [rng.randint(600, 1500)]))
    results = {}
    for label, policy in (("adaptive", TurnPolicy()), ("fixed_700ms", FixedTurnPolicy(700))):
        def factory(policy=policy):
            stream = stt.open_stream(sample_rate=RATE)
            stream._policy = policy
            return stream
        finished, thinking = [], []
        for parts, pauses in cases:
            (thinking if pauses else finished).append(await run_answer(factory, parts, pauses))
        dead = sorted(r["dead_air_ms"] for r in finished if r["dead_air_ms"] is not None)
        results[label] = {
            "answers": len(cases),
            "false_cut_offs": sum(1 for r in thinking + finished if r["cut_off"]),
            "answers_missing_a_final": sum(1 for r in thinking + finished if r["dead_air_ms"] is None),
            "dead_air_p50_ms": dead[len(dead) // 2] if dead else None,
            "dead_air_p90_ms": dead[int(len(dead) * 0.9)] if dead else None,
        }
    return results


def piper_first_audio_ms() -> float:
    from realtime.providers.local.piper_tts import _executor, _run
    import threading

    times = []
    for text in ANSWERS[:6]:
        first = []
        started = time.perf_counter()
        _executor.submit(_run, text, 24000, lambda p: first or first.append(time.perf_counter() - started),
                         threading.Event()).result()
        times.append(first[0] * 1000)
    return round(statistics.median(times), 0)


async def main() -> dict:
    import django

    django.setup()
    from realtime.providers.local.espeak_tts import synthesize_to_pcm as espeak
    from realtime.providers.local.moonshine_model import shared_model
    from realtime.providers.local.moonshine_stt import MoonshineSpeechToText
    from realtime.providers.local.piper_tts import synthesize_to_pcm as piper

    before = rss_mb()
    model = shared_model()
    model.transcribe(__import__("numpy").zeros(RATE, "float32"))
    loaded = rss_mb()
    sets = {"real human speech": real_set(),
            "interview answers, Piper": [(a, piper(a, RATE)) for a in ANSWERS],
            "interview answers, eSpeak": [(a, espeak(a, RATE)) for a in ANSWERS]}
    figures = {"recognition": await recognition(model, sets)}
    stt = MoonshineSpeechToText(model=model)
    streams = [stt.open_stream(sample_rate=RATE) for _ in range(50)]
    per_stream = (rss_mb() - loaded) / 50
    figures["memory_mb"] = {"model_per_worker": round(loaded - before), "per_live_speaker": round(per_stream, 2),
                            "peak_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    for s in streams:
        await s.close()
    figures["turn_taking"] = await turn_taking(stt)
    figures["piper_first_audio_ms_median"] = piper_first_audio_ms()
    return figures


def print_table(f: dict) -> None:
    print(f"{'set':32} {'clips':>5} {'words':>5} {'Moonshine WER':>14} {'PocketSphinx WER':>17} {'RTF':>6}")
    for name, r in f["recognition"].items():
        print(f"{name:32} {r['clips']:>5} {r['words']:>5} {r['moonshine_wer']:>13.1f}% {r['pocketsphinx_wer']:>16.1f}% "
              f"{r['moonshine_rtf_median']:>6.3f}")
    m = f["memory_mb"]
    print(f"memory: model {m['model_per_worker']} MB per worker, {m['per_live_speaker']} MB per open stream")
    print(f"{'turn-taking':14} {'answers':>7} {'false cut-offs':>15} {'dead air p50':>13} {'p90':>6}")
    for name, r in f["turn_taking"].items():
        print(f"{name:14} {r['answers']:>7} {r['false_cut_offs']:>15} {r['dead_air_p50_ms']:>11} ms {r['dead_air_p90_ms']:>6}")
    print(f"Piper first audio (median sentence): {f['piper_first_audio_ms_median']:.0f} ms")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    figures = asyncio.run(main())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speech.json").write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
