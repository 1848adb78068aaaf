// Stems in sync: one AudioContext, one buffer source per stem started at the same instant,
// a gain per stem for mute/solo/volume. Web Audio rather than one <audio> per stem, because
// media elements drift apart; sources started together stay sample-aligned.

import { fetchAudio } from "./api.js";

export class MixEngine {
  constructor() {
    this.ctx = null;
    this.tracks = []; // {name, buffer, gainNode, volume, mute, solo, source}
    this.playing = false;
    this.offset = 0; // seconds into the song when paused, or when the sources last started
    this.startedAt = 0; // ctx.currentTime when the sources last started
    this.listeners = new Set();
    this.frame = 0;
    this.generation = 0;
  }

  context() {
    if (!this.ctx) {
      this.ctx = new AudioContext();
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    return this.ctx;
  }

  // stems: [{name, download_url}]; replaces whatever was loaded. Resolves when all are decoded.
  async load(stems) {
    this.stop();
    const generation = ++this.generation;
    const ctx = this.context();
    const decoded = await Promise.all(
      stems.map(async (stem) => ctx.decodeAudioData(await fetchAudio(stem.download_url))),
    );
    if (generation !== this.generation) return false; // a newer load won
    for (const t of this.tracks) t.gainNode.disconnect();
    this.tracks = stems.map((stem, i) => {
      const gainNode = ctx.createGain();
      gainNode.connect(this.master);
      return { name: stem.name, buffer: decoded[i], gainNode, volume: 1, mute: false, solo: false, source: null };
    });
    this.offset = 0;
    this.applyGains();
    this.emit();
    return true;
  }

  clear() {
    this.stop();
    this.generation++;
    for (const t of this.tracks) t.gainNode.disconnect();
    this.tracks = [];
    this.offset = 0;
    this.emit();
  }

  get duration() {
    return this.tracks.reduce((d, t) => Math.max(d, t.buffer.duration), 0);
  }

  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + this.ctx.currentTime - this.startedAt);
  }

  track(name) {
    return this.tracks.find((t) => t.name === name);
  }

  audible(track) {
    const soloing = this.tracks.some((t) => t.solo);
    return !track.mute && (!soloing || track.solo);
  }

  applyGains() {
    for (const t of this.tracks) t.gainNode.gain.value = this.audible(t) ? t.volume : 0;
  }

  set(name, changes) {
    const t = this.track(name);
    if (!t) return;
    Object.assign(t, changes);
    this.applyGains();
    this.emit();
  }

  startSources(at) {
    const ctx = this.context();
    const when = ctx.currentTime + 0.03; // one shared start instant for every stem
    for (const t of this.tracks) {
      const source = ctx.createBufferSource();
      source.buffer = t.buffer;
      source.connect(t.gainNode);
      source.start(when, Math.min(at, t.buffer.duration));
      t.source = source;
    }
    this.offset = at;
    this.startedAt = when;
  }

  stopSources() {
    for (const t of this.tracks) {
      if (t.source) {
        try {
          t.source.stop();
        } catch (err) {
          /* already stopped */
        }
        t.source.disconnect();
        t.source = null;
      }
    }
  }

  async play() {
    if (this.playing || !this.tracks.length) return;
    const ctx = this.context();
    if (ctx.state !== "running") await ctx.resume();
    let at = this.offset;
    if (at >= this.duration - 0.01) at = 0;
    this.startSources(at);
    this.playing = true;
    this.tick();
    this.emit();
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    this.stopSources();
    this.playing = false;
    cancelAnimationFrame(this.frame);
    this.emit();
  }

  stop() {
    this.pause();
    this.offset = 0;
  }

  toggle() {
    return this.playing ? this.pause() : this.play();
  }

  seek(seconds) {
    const at = Math.max(0, Math.min(seconds, this.duration));
    if (this.playing) {
      this.stopSources();
      this.startSources(at);
    } else {
      this.offset = at;
    }
    this.emit();
  }

  tick() {
    this.frame = requestAnimationFrame(() => {
      if (!this.playing) return;
      if (this.position() >= this.duration) {
        this.pause();
        this.offset = this.duration;
        this.emit();
        return;
      }
      this.emit();
      this.tick();
    });
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit() {
    for (const fn of this.listeners) fn(this);
  }

  // The mix as the user hears it (mute/solo/volume), rendered in the page: the stems are already
  // decoded here, so what is downloaded is exactly what was heard, with no server work or upload.
  async renderMix() {
    const rate = this.tracks.length ? this.tracks[0].buffer.sampleRate : 44100;
    const length = Math.ceil(this.duration * rate);
    const offline = new OfflineAudioContext(2, Math.max(1, length), rate);
    for (const t of this.tracks) {
      if (!this.audible(t) || t.volume === 0) continue;
      const gain = offline.createGain();
      gain.gain.value = t.volume;
      gain.connect(offline.destination);
      const source = offline.createBufferSource();
      source.buffer = t.buffer;
      source.connect(gain);
      source.start(0);
    }
    return offline.startRendering();
  }
}

// Encode decoded PCM as 16-bit WAV.
export function wavFromBuffer(buffer) {
  const channels = Math.min(buffer.numberOfChannels, 2);
  const frames = buffer.length;
  const data = new DataView(new ArrayBuffer(44 + frames * channels * 2));
  const text = (off, s) => {
    for (let i = 0; i < s.length; i++) data.setUint8(off + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  data.setUint32(4, 36 + frames * channels * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  data.setUint32(16, 16, true);
  data.setUint16(20, 1, true);
  data.setUint16(22, channels, true);
  data.setUint32(24, buffer.sampleRate, true);
  data.setUint32(28, buffer.sampleRate * channels * 2, true);
  data.setUint16(32, channels * 2, true);
  data.setUint16(34, 16, true);
  text(36, "data");
  data.setUint32(40, frames * channels * 2, true);
  let off = 44;
  const chans = [];
  for (let c = 0; c < channels; c++) chans.push(buffer.getChannelData(c));
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) {
      const s = Math.max(-1, Math.min(1, chans[c][i]));
      data.setInt16(off, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      off += 2;
    }
  }
  return new Blob([data.buffer], { type: "audio/wav" });
}
