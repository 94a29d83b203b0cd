// The candidate's microphone: getUserMedia -> AudioWorklet -> PCM16 chunks at 16 kHz.

export const MIC_CONSTRAINTS = {
  audio: {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
    channelCount: 1,
  },
};

const loadedContexts = new WeakSet(); // a processor name can be registered once per context

export class Microphone {
  constructor(context, { targetRate = 16000, chunkMs = 40, onChunk = () => {} } = {}) {
    this.context = context;
    this.targetRate = targetRate;
    this.chunkMs = chunkMs;
    this.onChunk = onChunk;
    this.stream = null;
    this.node = null;
    this.source = null;
  }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This browser cannot record audio here (a secure https page is needed).");
    }
    this.stream = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
    if (!loadedContexts.has(this.context)) {
      await this.context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
      loadedContexts.add(this.context);
    }
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "pcm16-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: this.targetRate, chunkMs: this.chunkMs },
    });
    this.node.port.onmessage = (event) => {
      const message = event.data;
      if (message && message.type === "chunk") this.onChunk(message.pcm, message.level);
    };
    this.source.connect(this.node);
    // The node writes no output (silence); connecting it keeps the graph pulling it.
    this.node.connect(this.context.destination);
    for (const track of this.stream.getAudioTracks()) {
      track.addEventListener("ended", () => this.onEnded && this.onEnded());
    }
  }

  configure({ sampleRate }) {
    if (sampleRate && sampleRate !== this.targetRate && this.node) {
      this.targetRate = sampleRate;
      this.node.port.postMessage({ type: "configure", targetRate: sampleRate, chunkMs: this.chunkMs });
    }
  }

  get label() {
    const track = this.stream && this.stream.getAudioTracks()[0];
    return track ? track.label : "";
  }

  stop() {
    if (this.source) this.source.disconnect();
    if (this.node) {
      this.node.port.onmessage = null;
      this.node.disconnect();
    }
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = this.node = this.source = null;
  }
}

export function int16ToBase64(samples) {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  let binary = "";
  const step = 0x2000;
  for (let i = 0; i < bytes.length; i += step) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + step));
  }
  return btoa(binary);
}
