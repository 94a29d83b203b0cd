// AudioWorklet: microphone audio -> PCM16 little-endian mono at the server's input rate.
//
// Runs on the audio thread. Each render quantum (128 frames at the context's rate) is
// mixed to mono, low-passed below the target Nyquist frequency (two biquads, 4th order)
// and resampled by linear interpolation. Every `chunkMs` of output is posted to the
// main thread as an Int16Array (transferred, not copied) with its RMS level in dBFS,
// which the page uses for the level meter and barge-in detection.

function lowpassCoefficients(cutoff, rate) {
  // RBJ audio EQ cookbook, Butterworth Q.
  const w0 = (2 * Math.PI * Math.min(cutoff, rate * 0.45)) / rate;
  const alpha = Math.sin(w0) / (2 * Math.SQRT1_2);
  const cos = Math.cos(w0);
  const a0 = 1 + alpha;
  return {
    b0: (1 - cos) / 2 / a0,
    b1: (1 - cos) / a0,
    b2: (1 - cos) / 2 / a0,
    a1: (-2 * cos) / a0,
    a2: (1 - alpha) / a0,
  };
}

class Biquad {
  constructor(c) {
    this.c = c;
    this.x1 = this.x2 = this.y1 = this.y2 = 0;
  }

  step(x) {
    const c = this.c;
    const y = c.b0 * x + c.b1 * this.x1 + c.b2 * this.x2 - c.a1 * this.y1 - c.a2 * this.y2;
    this.x2 = this.x1;
    this.x1 = x;
    this.y2 = this.y1;
    this.y1 = y;
    return y;
  }
}

class Pcm16CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const config = (options && options.processorOptions) || {};
    this.configure(config.targetRate || 16000, config.chunkMs || 40);
    this.port.onmessage = (event) => {
      const message = event.data || {};
      if (message.type === "configure") this.configure(message.targetRate || this.targetRate, message.chunkMs || this.chunkMs);
    };
  }

  configure(targetRate, chunkMs) {
    this.targetRate = targetRate;
    this.chunkMs = chunkMs;
    this.step = sampleRate / targetRate; // input samples per output sample
    const resampling = Math.abs(this.step - 1) > 1e-6;
    const cutoff = targetRate * 0.45;
    this.filters = resampling && this.step > 1
      ? [new Biquad(lowpassCoefficients(cutoff, sampleRate)), new Biquad(lowpassCoefficients(cutoff, sampleRate))]
      : [];
    this.position = 1; // where the next output sample lies, in input samples after `previous`
    this.previous = 0;
    this.chunkSamples = Math.max(1, Math.round((targetRate * chunkMs) / 1000));
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }

  emit(value) {
    const s = value > 1 ? 1 : value < -1 ? -1 : value;
    this.chunk[this.filled++] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
    this.sumSquares += s * s;
    if (this.filled === this.chunkSamples) {
      const rms = Math.sqrt(this.sumSquares / this.chunkSamples);
      const level = rms > 0 ? 20 * Math.log10(rms) : -120;
      const pcm = this.chunk;
      this.port.postMessage({ type: "chunk", pcm, level, sampleRate: this.targetRate }, [pcm.buffer]);
      this.chunk = new Int16Array(this.chunkSamples);
      this.filled = 0;
      this.sumSquares = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const channels = input.length;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      let x = input[0][i];
      if (channels > 1) {
        for (let c = 1; c < channels; c++) x += input[c][i];
        x /= channels;
      }
      for (let f = 0; f < this.filters.length; f++) x = this.filters[f].step(x);
      while (this.position <= 1) {
        this.emit(this.previous + (x - this.previous) * this.position);
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = x;
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16CaptureProcessor);
