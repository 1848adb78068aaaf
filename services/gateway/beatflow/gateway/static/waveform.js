// Waveforms drawn by wavesurfer.js from peaks the gateway computes (the audio is never decoded for drawing).

import WaveSurfer from "./vendor/wavesurfer.esm.js";
import { api, enc, mediaUrl } from "./api.js";

const NONCE = (document.querySelector('meta[name="csp-nonce"]') || {}).content || "";
const peaksCache = new Map();

export const COLORS = {
  wave: "#5d66b8",
  progress: "#b4baff",
  cursor: "#ffffff",
};

export async function fetchPeaks(blobKey, buckets = 600) {
  const id = blobKey + ":" + buckets;
  if (!peaksCache.has(id)) {
    const pending = api("GET", `/api/audio/peaks/${enc(blobKey)}?buckets=${buckets}`);
    peaksCache.set(id, pending);
    pending.catch(() => peaksCache.delete(id));
  }
  return peaksCache.get(id);
}

// Wavesurfer draws channel 0 above the axis and channel 1 below: give it the maxima and the minima.
function toChannels(peaks) {
  const top = new Float32Array(peaks.length);
  const bottom = new Float32Array(peaks.length);
  for (let i = 0; i < peaks.length; i++) {
    bottom[i] = peaks.data[2 * i];
    top[i] = peaks.data[2 * i + 1];
  }
  return [top, bottom];
}

// A waveform without its own playback (the mixer plays; the waveform shows and seeks).
// onSeek(seconds) is called when the user clicks or drags on it.
export async function drawWaveform(container, blobKey, { height = 56, onSeek, color, dragToSeek = true } = {}) {
  const peaks = await fetchPeaks(blobKey);
  container.classList.add("waveform");
  container.dataset.blob = blobKey;
  const ws = WaveSurfer.create({
    container,
    height,
    waveColor: color || COLORS.wave,
    progressColor: COLORS.progress,
    cursorColor: COLORS.cursor,
    cursorWidth: 2,
    peaks: toChannels(peaks),
    duration: peaks.duration_s,
    interact: true,
    dragToSeek, // off where a drag selects a time range instead
    normalize: true, // quiet stems still show their shape; loudness is for the ears
    cspNonce: NONCE,
  });
  if (onSeek) ws.on("interaction", (seconds) => onSeek(seconds));
  ws.on("redrawcomplete", () => container.classList.add("drawn"));
  return { ws, duration: peaks.duration_s, show: (seconds) => ws.updateProgress(seconds) };
}

// A waveform that plays its own audio (a take, a melody): streamed through an <audio> element.
export async function playableWaveform(container, file, { height = 72 } = {}) {
  const peaks = await fetchPeaks(file.blob_key);
  const media = new Audio();
  media.preload = "auto";
  container.classList.add("waveform");
  container.dataset.blob = file.blob_key;
  const ws = WaveSurfer.create({
    container,
    height,
    waveColor: COLORS.wave,
    progressColor: COLORS.progress,
    cursorColor: COLORS.cursor,
    cursorWidth: 2,
    media,
    dragToSeek: true,
    normalize: true,
    cspNonce: NONCE,
  });
  ws.on("redrawcomplete", () => container.classList.add("drawn"));
  await ws.load(mediaUrl(file.download_url), toChannels(peaks), peaks.duration_s);
  return ws;
}
