// The microphone level, measured in the browser with the Web Audio API. Media never leaves
// the page: only the level (dBFS) is sent to MC, for server-side active-speaker detection.

export const MIN_DBFS = -127;

export class Microphone {
  private readonly samples: Float32Array<ArrayBuffer>;

  private constructor(
    private readonly stream: MediaStream,
    private readonly context: AudioContext,
    private readonly analyser: AnalyserNode,
  ) {
    this.samples = new Float32Array(analyser.fftSize);
  }

  /** Asks for the microphone; throws when there is none or permission is refused. */
  static async open(): Promise<Microphone> {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error("This browser cannot use a microphone here.");
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: false,
    });
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    if (context.state === "suspended") await context.resume();
    return new Microphone(stream, context, analyser);
  }

  /** The level of the last ~20 ms, in dBFS (−127 for silence, 0 for full scale). */
  level(): number {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    if (rms <= 0) return MIN_DBFS;
    const db = 20 * Math.log10(rms);
    return Math.max(MIN_DBFS, Math.min(0, Math.round(db * 10) / 10));
  }

  close(): void {
    for (const track of this.stream.getTracks()) track.stop();
    void this.context.close();
  }
}
