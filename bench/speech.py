"""Embedded speech figures in one run: `python -m bench.speech` (issue 13).

- Word error rate of Moonshine (realtime/providers/local/moonshine_stt.py) beside
  PocketSphinx on real human speech (LibriVox and card-game clips from the Debian package
  pocketsphinx-testdata, the Beckett clip in the moonshine-cpp wheel) and on 20
  interview answers spoken by Piper and by eSpeak NG; real-time factor; memory per
  worker (the model) and per open stream.
- Turn-taking on 40 synthesized answers (Piper), half finished, half with a thinking
  pause of 0.6-1.5 s after "and", "because", "um" or mid-clause, each with the question
  it answers (the tuning set), and on 20 more written after the rules (held out): false
  cut-offs and the silence from the end of speech to the final transcript (the turn's
  end), with the adaptive policy (realtime/turn_taking.py) and with the fixed 700 ms
  rule, through the same Moonshine stream. Speech is fed faster than real time, silences
  at real time, so decode latency counts.
- Capacity: how many candidates can speak at once into one worker's recogniser (one
  model, its decode pool, a stream each, all in real time) with the final transcript
  within 500 ms (p90) of the end of their speech; memory per live speaker.
- Voice to voice through a real daphne worker on the defaults (Moonshine, scripted
  interviewer, Piper): last voiced chunk sent -> first chunk of the reply received,
  adaptive beside fixed 700 ms, and adaptive with Piper's line cache off (every reply's first
  sentence synthesized afresh, as a language model's would be); Piper's first audio for a
  new line and a line said before.

`python -m bench.speech [recognition,turns,capacity,voice]` runs some parts only (written
to bench/results/speech-partial.json). Writes bench/results/speech.json and prints a table.
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

# The tuning set: (question, answer), finished answers ...
ANSWERS = [
    ("Tell me about a recent project.", "I built the payment service in Python and moved it to Kubernetes last year."),
    ("What was your role on that team?", "My team had four engineers and I was responsible for the data pipeline."),
    ("What result are you most proud of?", "We reduced the page load time from three seconds to under one second."),
    ("How do you like code reviews to work?", "I prefer code reviews that focus on design rather than style."),
    ("Describe a hard bug you fixed.", "The hardest bug I fixed was a race condition in our cache layer."),
    ("What did legacy code teach you?", "I learned to write tests before changing legacy code."),
    ("Who were your users?", "Our users were mostly small businesses that needed simple invoicing."),
    ("How would you find the cause of a slow endpoint?", "I would start by measuring where the time actually goes."),
    ("Tell me about a disagreement in your team.", "When we disagreed on the design, we wrote down the trade-offs and picked one."),
    ("Have you mentored anyone?", "I mentored two junior developers during my last project."),
    ("Which databases have you used?", "We used PostgreSQL for the main data and Redis for caching."),
    ("What are you most proud of?", "I am most proud of the monitoring dashboard that our support team still uses."),
    ("Why was the project late?", "The project was late because the requirements changed twice."),
    ("What matters most in a team?", "I think clear communication matters more than any single tool."),
    ("Describe an improvement you made.", "I automated the deployment so that a release took ten minutes instead of a day."),
    ("What was your biggest mistake?", "My biggest mistake was not asking for help sooner."),
    ("What do you enjoy about your work?", "I enjoy working close to customers and hearing their feedback."),
    ("How did you handle the migration?", "We split the monolith into three services over six months."),
    ("How do you organise your day?", "I keep a short list of priorities and review it every morning."),
    ("Where do you see yourself in five years?", "I would like to grow into a role where I lead technical decisions."),
]
# ... and unfinished starts (a thinking pause follows), each with how the answer goes on.
THINKING = [
    ("Tell me about your last job.", "I worked mostly on the backend and", "later I took over the deployment scripts."),
    ("Why did you choose Python?", "I chose Python because", "the team already knew it well."),
    ("What is your strongest skill?", "Um", "I think my strongest skill is debugging."),
    ("What did that project teach you?", "The most important thing I learned was", "to ask questions early."),
    ("How did you meet the deadline?", "We had a tight deadline and", "we cut two features to make it."),
    ("Why did you leave that job?", "I left that job because", "I wanted to work on larger systems."),
    ("How would you debug a crash in production?", "Um, so", "the first thing I would do is read the logs."),
    ("What was your role in that project?", "My role in that project was to", "design the database schema."),
    ("How do you approach a new feature?", "I usually start by", "writing a small prototype."),
    ("How did you test the product?", "We tested it with", "about fifty real customers."),
    ("What was hard about that project?", "I think the hardest part was", "getting everyone to agree."),
    ("Do you prefer small or large teams?", "I like working in small teams because", "decisions are made quickly."),
    ("What matters most in a system?", "Uh", "I would say reliability comes first."),
    ("Who were your customers?", "Our main customers were", "hospitals in three countries."),
    ("Tell me about a memory problem you solved.", "I fixed the memory leak and", "then wrote a test so it would not come back."),
    ("Why did you switch libraries?", "The reason we switched was", "that the old library was unmaintained."),
    ("Which teams have you worked in?", "I spent two years on", "the search team."),
    ("How would you handle a traffic spike?", "Um, let me think, I", "would probably use a queue for that."),
    ("What happened after the launch?", "After the launch we", "measured the error rate every day."),
    ("What would you improve first?", "I would improve the onboarding because", "new people took weeks to ship anything."),
]
# A held-out set, written after the rules in realtime/turn_taking.py and never tuned on:
# other phrasings, short replies to closed questions, a thinking phrase, a lone filler.
HELD_OUT_FINISHED = [
    ("Can you start next month?", "Yes, I can start next month."),
    ("Which language do you use most?", "Mostly Go, and some Python."),
    ("Did you lead that project?", "Yes, I did."),
    ("Tell me about your last role.", "I was a backend engineer at a logistics company for three years."),
    ("How do you handle incidents on call?", "We follow a runbook and write a short review after every incident."),
    ("Why do you want this job?", "I want to work on products that many people use every day."),
    ("What is your notice period?", "It is four weeks."),
    ("Describe your testing approach.", "I write unit tests for the logic and a few end to end tests for the main flows."),
    ("How would you scale a read heavy service?", "I would add caching and read replicas before anything else."),
    ("What do you do when you disagree with your manager?", "I explain my reasons and then commit to the decision we make."),
]
HELD_OUT_THINKING = [
    ("Tell me about a challenge you faced.", "Well, the biggest challenge was", "moving our data without downtime."),
    ("Why did you choose that design?", "Mostly because", "it was simpler to operate."),
    ("How do you prioritise work?", "Hmm, good question.", "I look at impact first and effort second."),
    ("What did you do next?", "Then we", "rewrote the scheduler in Rust."),
    ("Describe your ideal team.", "A team where people", "review each other's work kindly."),
    ("How did you measure success?", "We looked at the conversion rate and", "the number of support tickets."),
    ("What would you change about your last job?", "I would have", "pushed for better documentation."),
    ("Tell me about your experience with cloud platforms.", "I have used AWS for", "about five years."),
    ("Why are you leaving your current job?", "Uh, honestly,", "I want to learn new things."),
    ("How do you keep your skills up to date?", "I read a lot of", "engineering blogs and I build side projects."),
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


async def run_answer(stream, parts: list[bytes], pauses_ms: list[int]) -> dict:
    """Feed speech parts (fast) with real-time pauses between them.

    A final before the last part is a cut-off; the turn's end is the audio time from the
    last voiced frame (the final's end_ms) to the chunk that brought the final.
    """
    from realtime.audio import silence, split_into_chunks

    finals, fed_ms, dead_air, early, text = [], 0.0, None, 0, ""
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
                dead_air, text = fed_ms - new[-1].end_ms, new[-1].text
                break
            await asyncio.sleep(0.04)
    await stream.close()
    cut = [e.text for e in finals[:early]]
    return {"finals": len(finals), "cut_off": early > 0, "cut_at": cut, "dead_air_ms": dead_air, "final": text}


def _answer_cases(finished, thinking, rng) -> list[tuple[str, list[bytes], list[int], str]]:
    from realtime.providers.local.piper_tts import synthesize_to_pcm

    cases = [(q, [synthesize_to_pcm(a, RATE)], [], a) for q, a in finished]
    for q, start, rest in thinking:
        cases.append((q, [synthesize_to_pcm(start, RATE), synthesize_to_pcm(rest, RATE)], [rng.randint(600, 1500)],
                      f"{start} ... {rest}"))
    return cases


async def turn_taking(stt, seed: int = 7) -> dict:
    from realtime.turn_taking import FixedTurnPolicy, TurnPolicy

    rng = random.Random(seed)
    sets = {"tuning": _answer_cases(ANSWERS, THINKING, rng),
            "held_out": _answer_cases(HELD_OUT_FINISHED, HELD_OUT_THINKING, rng)}
    results = {}
    for set_name, cases in sets.items():
        for label, policy in (("adaptive", TurnPolicy()), ("fixed_700ms", FixedTurnPolicy(700))):
            finished, thinking, cut = [], [], []
            for question, parts, pauses, said in cases:
                stream = stt.open_stream(sample_rate=RATE)
                stream._policy = policy
                stream.set_question(question)
                r = await run_answer(stream, parts, pauses)
                (thinking if pauses else finished).append(r)
                if r["cut_off"]:
                    cut.append({"said": said, "ended_on": r["cut_at"]})
            dead = sorted(r["dead_air_ms"] for r in finished if r["dead_air_ms"] is not None)
            results[f"{set_name}/{label}"] = {
                "answers": len(cases), "finished": len(finished), "thinking": len(thinking),
                "false_cut_offs": len(cut), "cut_offs": cut,
                "answers_missing_a_final": sum(1 for r in thinking + finished if r["dead_air_ms"] is None),
                "speech_end_to_final_p50_ms": dead[len(dead) // 2] if dead else None,
                "speech_end_to_final_p90_ms": dead[min(len(dead) - 1, int(len(dead) * 0.9))] if dead else None,
            }
    return results


def _last_voiced_index(pieces: list[bytes], min_dbfs: float = -50.0) -> int:
    import numpy as np

    floor = 32768.0 * 10 ** (min_dbfs / 20)
    last = 0
    for i, pcm in enumerate(pieces):
        x = np.frombuffer(pcm, np.int16).astype(np.float32)
        if x.size and float(np.sqrt(np.mean(x * x))) >= floor:
            last = i
    return last


async def capacity(stt, steps=(1, 2, 4, 6, 8, 10, 12, 16), seconds: float = 20.0, bound_ms: float = 500.0,
                   min_answers: int = 16) -> dict:
    """Candidates speaking at once into one process (one worker's recogniser: one model,
    its decode pool, one stream each), each in real time: an answer, silence until its
    final, 0.6 s, the next answer. Per answer: wall time from sending its last voiced
    40 ms chunk to the final transcript (the turn policy's wait included). A step lasts
    `seconds`, and longer until it has `min_answers` answers (one speaker gives about
    four in 20 s: a p90 of four is their worst); it passes when the p90 is within
    `bound_ms` and every answer got its final."""
    from realtime.audio import silence, split_into_chunks
    from realtime.providers.local.piper_tts import synthesize_to_pcm

    answers = []
    for _, text in ANSWERS[:8]:
        pieces = split_into_chunks(silence(200, RATE) + synthesize_to_pcm(text, RATE), CHUNK)
        answers.append((pieces, _last_voiced_index(pieces)))
    quiet = silence(40, RATE)
    out = {"bound_ms": bound_ms, "steps": []}
    base_rss = rss_mb()

    async def speaker(index: int, until: float, latencies: list, missing: list, peak: list):
        stream = stt.open_stream(sample_rate=RATE)
        stream.set_question("Tell me about a recent project.")
        k = index  # speakers start on different answers
        start = time.perf_counter() + (index % 25) * 0.04  # and on different 40 ms phases
        sent = 0
        try:
            while time.perf_counter() < until or len(latencies) + len(missing) < min_answers:
                pieces, last = answers[k % len(answers)]
                k += 1
                last_at, got = None, False
                for i, piece in enumerate(pieces):
                    await asyncio.sleep(max(0.0, start + sent * 0.04 - time.perf_counter()))
                    sent += 1
                    events = await stream.feed(piece)
                    if i == last:
                        last_at = time.perf_counter()
                for _ in range(75):  # up to 3 s of silence
                    await asyncio.sleep(max(0.0, start + sent * 0.04 - time.perf_counter()))
                    sent += 1
                    events = await stream.feed(quiet)
                    if any(e.is_final for e in events):
                        latencies.append((time.perf_counter() - last_at) * 1000)
                        got = True
                        break
                if not got:
                    missing.append(1)
                peak.append(rss_mb())
                for _ in range(15):
                    await asyncio.sleep(max(0.0, start + sent * 0.04 - time.perf_counter()))
                    sent += 1
                    await stream.feed(quiet)
        finally:
            await stream.close()

    for n in steps:
        latencies, missing, peak = [], [], []
        until = time.perf_counter() + seconds
        await asyncio.gather(*(speaker(i, until, latencies, missing, peak) for i in range(n)))
        lat = sorted(latencies)
        p50 = lat[len(lat) // 2] if lat else None
        p90 = lat[min(len(lat) - 1, int(len(lat) * 0.9))] if lat else None
        ok = bool(lat) and not missing and p90 <= bound_ms
        out["steps"].append({"speakers": n, "answers": len(lat), "missing_finals": len(missing),
                             "final_p50_ms": round(p50) if p50 else None, "final_p90_ms": round(p90) if p90 else None,
                             "peak_rss_mb": round(max(peak, default=base_rss)),
                             "machine_load_1min": round(os.getloadavg()[0], 2), "ok": ok})
        print(f"  capacity {n:>2} speakers: p50 {p50 and round(p50)} ms, p90 {p90 and round(p90)} ms, "
              f"{len(missing)} without a final", file=sys.stderr)
        if not ok:
            break
    passing = [s["speakers"] for s in out["steps"] if s["ok"]]
    out["speakers_within_bound"] = max(passing, default=0)
    # Memory a live speaker adds: the slope of the worker's peak RSS from 1 speaker to the most
    # (decoder activations, buffers, Silero state); the model and the pool are counted once.
    first, last = out["steps"][0], out["steps"][-1]
    out["rss_base_mb"] = round(base_rss)
    out["rss_per_live_speaker_mb"] = round((last["peak_rss_mb"] - first["peak_rss_mb"]) / max(1, last["speakers"] - first["speakers"]), 1)
    return out


async def voice_to_voice(turn_taking_mode: str, turns: int = 12, tts_cache_mb: float = 16,
                         speculative: bool = True) -> dict:
    """Through a real daphne worker on the default providers (Moonshine, scripted
    interviewer, Piper): Piper answers streamed in real time, then silence in real time;
    from sending the last voiced 40 ms chunk to the first chunk of the interviewer's reply
    arriving (the issue's "voice to voice"). The reply is then interrupted so the next
    answer starts at once; a new session every 4 answers."""
    from realtime.providers.local.piper_tts import synthesize_to_pcm

    from .clients import _audio_message, message, open_session
    from .figures import speak_until_reply
    from .servers import Cluster

    answers = []
    for _, text in ANSWERS[:turns]:
        pieces = split_pcm(synthesize_to_pcm(text, RATE))
        answers.append(([_audio_message(p) for p in pieces], _last_voiced_index(pieces)))
    quiet = _audio_message(bytes(CHUNK))
    out = {"voice_to_voice_ms": [], "speech_end_to_final_ms": [], "final_to_audio_ms": [], "missing": 0}
    env = {"REALTIME_TURN_TAKING": turn_taking_mode, "REALTIME_TTS_CACHE_MB": str(tts_cache_mb), "LOG_LEVEL": "WARNING",
           "REALTIME_SPECULATIVE_REPLY": "1" if speculative else "0"}
    with Cluster(providers="local", extra_env=env) as cluster:
        pool = cluster.prepare((turns + 3) // 4)["sessions"]
        url = cluster.url("/api/interview-socket")
        conn = None
        try:
            for t, (texts, last) in enumerate(answers):
                if t % 4 == 0:
                    if conn is not None:
                        await conn.close()
                    conn = await open_session(url, pool[t // 4], wait_opening=False)
                    await conn.expect("server-ai-speech-chunk", timeout=60)
                    await conn.send(message("client-interrupt"))
                    await conn.expect("server-ai-interrupted")
                await asyncio.sleep(0.5)
                conn.clear()
                last_voiced_at, final_at, first_at = await speak_until_reply(conn, texts, last, quiet)
                if first_at is None:
                    out["missing"] += 1
                    continue
                out["voice_to_voice_ms"].append(round((first_at - last_voiced_at) * 1000))
                out["speech_end_to_final_ms"].append(round((final_at - last_voiced_at) * 1000))
                out["final_to_audio_ms"].append(round((first_at - final_at) * 1000))
                await conn.send(message("client-interrupt"))
                await conn.expect("server-ai-interrupted")
        finally:
            if conn is not None:
                await conn.close()
    for key in ("voice_to_voice_ms", "speech_end_to_final_ms", "final_to_audio_ms"):
        values = sorted(out[key])
        out[key.replace("_ms", "_p50_ms")] = values[len(values) // 2] if values else None
    return out


def split_pcm(pcm: bytes) -> list[bytes]:
    from realtime.audio import silence, split_into_chunks

    return split_into_chunks(silence(200, RATE) + pcm, CHUNK)


async def piper_first_audio_ms() -> dict:
    """First audio of a sentence: new sentences, and sentences the worker has said before."""
    from realtime.providers.local.piper_tts import PiperTextToSpeech

    async def first(tts, text):
        started = time.perf_counter()
        stream = tts.synthesize(text).__aiter__()
        await stream.__anext__()
        elapsed = (time.perf_counter() - started) * 1000
        await stream.aclose()
        return elapsed

    tts = PiperTextToSpeech(output_sample_rate=24000)
    lines = [q for q, _ in ANSWERS[:8]] + ["Thanks for sharing that.", "Great, I appreciate the detail."]
    new = [await first(tts, t) for t in lines]
    for t in lines:  # said in full once (as a reply the candidate heard to the end)
        async for _ in tts.synthesize(t):
            pass
    again = [await first(tts, t) for t in lines]
    return {"new_sentence_median_ms": round(statistics.median(new)),
            "said_before_median_ms": round(statistics.median(again), 1)}


async def main(only: set[str] | None = None) -> dict:
    import django

    django.setup()
    from realtime.providers.local.espeak_tts import synthesize_to_pcm as espeak
    from realtime.providers.local.moonshine_model import shared_model
    from realtime.providers.local.moonshine_stt import MoonshineSpeechToText
    from realtime.providers.local.piper_tts import synthesize_to_pcm as piper

    want = (lambda part: only is None or part in only)
    figures: dict = {"machine": {"nproc": os.cpu_count(), "load_1min_at_start": round(os.getloadavg()[0], 2)}}
    before = rss_mb()
    model = shared_model()
    model.transcribe(__import__("numpy").zeros(RATE, "float32"))
    loaded = rss_mb()
    stt = MoonshineSpeechToText(model=model)
    if want("recognition"):
        sets = {"real human speech": real_set(),
                "interview answers, Piper": [(a, piper(a, RATE)) for _, a in ANSWERS],
                "interview answers, eSpeak": [(a, espeak(a, RATE)) for _, a in ANSWERS]}
        figures["recognition"] = await recognition(model, sets)
    streams = [stt.open_stream(sample_rate=RATE) for _ in range(50)]
    per_stream = (rss_mb() - loaded) / 50
    figures["memory_mb"] = {"model_per_worker": round(loaded - before), "per_open_stream": round(per_stream, 2)}
    for s in streams:
        await s.close()
    if want("turns"):
        figures["turn_taking"] = await turn_taking(stt)
    if want("capacity"):
        figures["capacity"] = await capacity(stt)
    figures["memory_mb"]["peak_rss"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if want("voice"):
        figures["piper_first_audio"] = await piper_first_audio_ms()
        figures["machine"]["load_1min_before_voice"] = round(os.getloadavg()[0], 2)
        figures["voice_to_voice"] = {
            "adaptive": await voice_to_voice("adaptive"),
            "fixed": await voice_to_voice("fixed"),
            # Every line synthesized afresh: what a language model's new first sentence costs.
            "adaptive, no line cache": await voice_to_voice("adaptive", tts_cache_mb=0),
            # ... and the reply started only at the final (before the speculative reply).
            "adaptive, no line cache, reply after the final": await voice_to_voice(
                "adaptive", tts_cache_mb=0, speculative=False),
        }
    return figures


def print_table(f: dict) -> None:
    if "recognition" in f:
        print(f"{'set':32} {'clips':>5} {'words':>5} {'Moonshine WER':>14} {'PocketSphinx WER':>17} {'RTF':>6}")
        for name, r in f["recognition"].items():
            print(f"{name:32} {r['clips']:>5} {r['words']:>5} {r['moonshine_wer']:>13.1f}% "
                  f"{r['pocketsphinx_wer']:>16.1f}% {r['moonshine_rtf_median']:>6.3f}")
    m = f["memory_mb"]
    print(f"memory: model {m['model_per_worker']} MB per worker, {m['per_open_stream']} MB per open stream")
    if "turn_taking" in f:
        print(f"{'turn-taking':24} {'answers':>7} {'false cut-offs':>15} {'end->final p50':>15} {'p90':>6}")
        for name, r in f["turn_taking"].items():
            print(f"{name:24} {r['answers']:>7} {r['false_cut_offs']:>15} {r['speech_end_to_final_p50_ms']:>12} ms "
                  f"{r['speech_end_to_final_p90_ms']:>6}")
            for cut in r["cut_offs"]:
                print(f"    cut off: {cut['said']!r} at {cut['ended_on']}")
    if "capacity" in f:
        c = f["capacity"]
        for step in c["steps"]:
            print(f"  {step['speakers']:>2} speakers: final p50 {step['final_p50_ms']} ms, p90 {step['final_p90_ms']} ms, "
                  f"{step['missing_finals']} missing, peak RSS {step['peak_rss_mb']} MB")
        print(f"memory per live speaker (RSS slope): {c['rss_per_live_speaker_mb']} MB")
        print(f"speakers at once with the final within {c['bound_ms']:.0f} ms (p90): {c['speakers_within_bound']}")
    if "voice_to_voice" in f:
        p = f["piper_first_audio"]
        print(f"Piper first audio: new sentence {p['new_sentence_median_ms']} ms, said before {p['said_before_median_ms']} ms")
        for mode, r in f["voice_to_voice"].items():
            print(f"voice to voice ({mode}): p50 {r['voice_to_voice_p50_ms']} ms (end->final {r['speech_end_to_final_p50_ms']}, "
                  f"final->audio {r['final_to_audio_p50_ms']}), {r['missing']} missing, n={len(r['voice_to_voice_ms'])}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    only = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None
    figures = asyncio.run(main(only))
    RESULTS.mkdir(exist_ok=True)
    name = "speech.json" if only is None else "speech-partial.json"
    (RESULTS / name).write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
