// Gapless playback of the interviewer's speech: PCM16 chunks scheduled back to back.
//
// Each chunk becomes an AudioBuffer at the announced output rate (the browser resamples
// to the context's rate) and an AudioBufferSourceNode started exactly where the previous
// one ends. flush() stops every scheduled source at once; chunks of a response that was
// interrupted are dropped on arrival, so nothing of it is heard afterwards.

const START_LEAD_S = 0.06; // jitter margin when playback (re)starts from silence
const MAX_REMEMBERED = 64;

export function base64ToInt16(data) {
  const binary = atob(data);
  const length = binary.length >> 1;
  const samples = new Int16Array(length);
  for (let i = 0, j = 0; i < length; i++, j += 2) {
    const value = binary.charCodeAt(j) | (binary.charCodeAt(j + 1) << 8);
    samples[i] = value >= 0x8000 ? value - 0x10000 : value;
  }
  return samples;
}

export class SpeechPlayer {
  constructor(context, { sampleRate = 24000, onActivity = () => {} } = {}) {
    this.context = context;
    this.sampleRate = sampleRate;
    this.onActivity = onActivity;
    this.output = context.createGain();
    this.output.connect(context.destination);
    this.sources = new Set();
    this.nextTime = 0;
    this.stale = new Set(); // responseIds never to be played again
    this.lastSeq = new Map(); // responseId -> last scheduled seq
    this.activeResponse = null;
    this.speaking = false;
    this.stats = {
      chunksReceived: 0,
      chunksScheduled: 0,
      chunksPlayed: 0,
      secondsPlayed: 0,
      chunksDropped: 0,
      flushes: 0,
      sourcesStopped: 0,
      underruns: 0,
      playedByResponse: {},
    };
  }

  configure({ sampleRate }) {
    if (sampleRate) this.sampleRate = sampleRate;
  }

  isStale(responseId) {
    return this.stale.has(responseId);
  }

  markStale(responseId) {
    if (!responseId) return;
    this.stale.add(responseId);
    if (this.stale.size > MAX_REMEMBERED) this.stale.delete(this.stale.values().next().value);
  }

  /** Queue one chunk; false if it was dropped (stale response, duplicate or bad data). */
  enqueue(responseId, seq, data) {
    this.stats.chunksReceived++;
    if (this.isStale(responseId)) {
      this.stats.chunksDropped++;
      return false;
    }
    const last = this.lastSeq.get(responseId);
    if (typeof seq === "number" && last !== undefined && seq <= last) {
      this.stats.chunksDropped++;
      return false;
    }
    let samples;
    try {
      samples = base64ToInt16(data);
    } catch {
      this.stats.chunksDropped++;
      return false;
    }
    if (samples.length === 0) return false;
    this.lastSeq.set(responseId, typeof seq === "number" ? seq : (last ?? -1) + 1);
    if (this.lastSeq.size > MAX_REMEMBERED) this.lastSeq.delete(this.lastSeq.keys().next().value);

    const buffer = this.context.createBuffer(1, samples.length, this.sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;

    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const now = this.context.currentTime;
    if (this.nextTime < now) {
      if (this.sources.size > 0 || (this.nextTime > 0 && this.activeResponse === responseId)) this.stats.underruns++;
      this.nextTime = now + START_LEAD_S;
    }
    source.responseId = responseId;
    source.flushed = false;
    source.onended = () => this.ended(source);
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.sources.add(source);
    this.activeResponse = responseId;
    this.stats.chunksScheduled++;
    this.setSpeaking(true);
    return true;
  }

  ended(source) {
    this.sources.delete(source);
    if (!source.flushed) {
      this.stats.chunksPlayed++;
      this.stats.secondsPlayed += source.buffer.duration;
      const id = source.responseId;
      this.stats.playedByResponse[id] = (this.stats.playedByResponse[id] || 0) + 1;
    }
    if (this.sources.size === 0) this.setSpeaking(false);
  }

  /** Stop everything scheduled now. With a responseId, its late chunks are dropped too. */
  flush(responseId = null) {
    if (responseId) this.markStale(responseId);
    if (this.activeResponse && this.sources.size > 0) this.markStale(this.activeResponse);
    const stopped = this.sources.size;
    for (const source of this.sources) {
      source.flushed = true;
      try {
        source.stop();
      } catch {
        // never started or already stopped
      }
      source.disconnect();
    }
    this.sources.clear();
    this.nextTime = 0;
    if (stopped > 0) {
      this.stats.flushes++;
      this.stats.sourcesStopped += stopped;
    }
    this.setSpeaking(false);
    return stopped;
  }

  /** Seconds of audio queued but not yet heard. */
  pendingSeconds() {
    return Math.max(0, this.nextTime - this.context.currentTime);
  }

  setSpeaking(value) {
    if (this.speaking !== value) {
      this.speaking = value;
      this.onActivity(value);
    }
  }
}
