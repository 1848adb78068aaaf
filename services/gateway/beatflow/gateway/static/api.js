// The public HTTP API, as the studio uses it: JSON calls, task progress over SSE, media URLs.

export const session = {
  token: localStorage.getItem("bf_token") || "",
  username: localStorage.getItem("bf_user") || "",
  onSignedOut: () => {},
};

// An API refusal, with the server's reason in words (never a JSON dump).
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: "bpm: Input should be greater than or equal to 20".
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body" && p !== "query" && p !== "path").join(".");
        return (where ? where + ": " : "") + (d.msg || "invalid value");
      })
      .join("; ");
  }
  if (status === 503) return "the service is temporarily unavailable; try again in a moment";
  if (status === 413) return "the file is too large";
  return `the request failed (HTTP ${status})`;
}

export async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({}, extraHeaders || {});
  if (session.token) headers.Authorization = "Bearer " + session.token;
  let payload;
  if (body instanceof Blob || body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, { detail: "the studio cannot reach the server; check your connection" });
  }
  const text = await res.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch (err) {
    data = { detail: res.ok ? "" : `the server answered HTTP ${res.status}` };
  }
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith("/api/auth/")) session.onSignedOut();
    throw new ApiError(res.status, data);
  }
  return data;
}

export const enc = encodeURIComponent;

export function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
}

// A download link with a readable file name (the gateway sets Content-Disposition from ?name=).
export function downloadHref(downloadUrl, name) {
  let url = downloadUrl + "?redirect=false&access_token=" + enc(session.token);
  if (name) url += "&name=" + enc(name);
  return url;
}

// Fetch audio bytes for Web Audio decoding.
export async function fetchAudio(downloadUrl) {
  const res = await fetch(downloadUrl + "?redirect=false&disposition=inline", {
    headers: { Authorization: "Bearer " + session.token },
  });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => ({})));
  return res.arrayBuffer();
}

export function mediaUrl(downloadUrl) {
  return downloadUrl + "?redirect=false&disposition=inline&access_token=" + enc(session.token);
}

// Follow a task's Server-Sent Events; onEvent gets each event's data; resolves with the final task.
export async function followTask(taskId, onEvent, signal) {
  const res = await fetch("/api/ai/tasks/" + enc(taskId) + "/events", {
    headers: { Authorization: "Bearer " + session.token, Accept: "text/event-stream" },
    signal,
  });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => ({})));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (!data) continue;
      const parsed = JSON.parse(data);
      if (event === "done") return parsed.task;
      if (event === "error") throw new ApiError(500, { detail: parsed.detail });
      onEvent(parsed);
    }
  }
  return api("GET", "/api/ai/tasks/" + enc(taskId));
}

export function shortId(id) {
  return (id || "").slice(0, 8);
}

export function formatTime(seconds) {
  const s = Math.max(0, seconds || 0);
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  return `${m}:${rest < 10 ? "0" : ""}${rest.toFixed(1)}`;
}

export function when(timestamp) {
  return new Date(timestamp * 1000).toLocaleString();
}

// How long ago, in a few characters: "just now", "5 min ago", "3 h ago", "2 d ago", "4 mo ago", "1 y ago".
export function ago(timestamp, now = Date.now() / 1000) {
  const s = Math.max(0, now - timestamp);
  if (s < 60) return "just now";
  const units = [
    [3600, 60, "min"],
    [86400, 3600, "h"],
    [30 * 86400, 86400, "d"],
    [365 * 86400, 30 * 86400, "mo"],
  ];
  for (const [limit, size, unit] of units) if (s < limit) return `${Math.floor(s / size)} ${unit} ago`;
  return `${Math.floor(s / (365 * 86400))} y ago`;
}
