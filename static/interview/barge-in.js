// Barge-in: notice the candidate talking over the interviewer, from microphone levels.
//
// Energy only, so it must not fire on echo of the interviewer's own voice or on a
// cough or a door. The guards:
//   - it only runs while the interviewer is audible;
//   - the level must stay above the threshold for `minSpeechMs` (about 250 ms), with
//     at most one quiet frame inside that run (speech has short dips);
//   - the threshold is the louder of an absolute floor and the tracked noise floor plus
//     a margin, and both are raised by `playingBoostDb` while the interviewer speaks,
//     because the echo canceller leaves some residue of the loudspeaker;
//   - nothing fires in the first `graceMs` of playback, while the echo canceller adapts;
//   - after firing it waits `cooldownMs` before it may fire again.

export class BargeInDetector {
  constructor({
    frameMs = 40,
    minSpeechMs = 250,
    absoluteDb = -45,
    marginDb = 12,
    playingBoostDb = 6,
    graceMs = 300,
    cooldownMs = 1500,
  } = {}) {
    Object.assign(this, { frameMs, minSpeechMs, absoluteDb, marginDb, playingBoostDb, graceMs, cooldownMs });
    this.noiseFloorDb = -60;
    this.voicedMs = 0;
    this.quietFrames = 0;
    this.playingSince = null;
    this.lastFiredAt = -Infinity;
  }

  threshold(playing) {
    const boost = playing ? this.playingBoostDb : 0;
    return Math.max(this.absoluteDb, this.noiseFloorDb + this.marginDb) + boost;
  }

  trackNoise(levelDb) {
    // Falls fast, rises slowly: follows the background, not the speech.
    const rate = levelDb < this.noiseFloorDb ? 0.3 : 0.01;
    this.noiseFloorDb += (levelDb - this.noiseFloorDb) * rate;
    this.noiseFloorDb = Math.min(Math.max(this.noiseFloorDb, -90), -30);
  }

  /**
   * Feed one frame's level (dBFS). `playing`: the interviewer is audible now.
   * Returns true when the candidate has barged in.
   */
  update(levelDb, playing, nowMs) {
    if (!playing) {
      this.playingSince = null;
      this.voicedMs = 0;
      this.quietFrames = 0;
      this.trackNoise(levelDb);
      return false;
    }
    if (this.playingSince === null) this.playingSince = nowMs;
    const loud = levelDb >= this.threshold(true);
    if (!loud) {
      this.quietFrames++;
      if (this.quietFrames >= 2) this.voicedMs = 0;
      if (this.voicedMs === 0) this.trackNoise(levelDb);
      return false;
    }
    this.quietFrames = 0;
    if (nowMs - this.playingSince < this.graceMs) {
      this.voicedMs = 0; // what is loud now may be echo the canceller has not learnt yet
      return false;
    }
    this.voicedMs += this.frameMs;
    if (nowMs - this.lastFiredAt < this.cooldownMs) return false;
    if (this.voicedMs >= this.minSpeechMs) {
      this.voicedMs = 0;
      this.lastFiredAt = nowMs;
      return true;
    }
    return false;
  }
}
