// BeatFlow Studio: a plain page over the public HTTP API (no framework).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("bf_token") || "",
  username: localStorage.getItem("bf_user") || "",
  task: null,          // last finished generation task
  stemsTask: null,     // last finished separation task
  melodyBlob: "",
  running: null,       // task id in progress
  selected: [],        // commit ids picked in the graph
};

class ApiError extends Error {
  constructor(status, body) {
    super(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body));
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({}, extraHeaders || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let payload;
  if (body instanceof Blob || body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  const text = await res.text();
  const data = text ? JSON.parse(text) : {};
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/auth/signin") signOut();
    throw new ApiError(res.status, data);
  }
  return data;
}

// URL an <audio> element can load: streamed by the gateway, token in the query.
function mediaUrl(downloadUrl) {
  return downloadUrl + "?redirect=false&disposition=inline&access_token=" + encodeURIComponent(state.token);
}

// Follow a task's Server-Sent Events; onEvent gets each parsed event, resolves with the final task.
async function followTask(taskId, onEvent) {
  const res = await fetch("/api/ai/tasks/" + encodeURIComponent(taskId) + "/events", {
    headers: { Authorization: "Bearer " + state.token, Accept: "text/event-stream" },
  });
  if (!res.ok) throw new ApiError(res.status, await res.json());
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
      onEvent(event, parsed);
      if (event === "done") return parsed.task;
      if (event === "error") throw new Error(parsed.detail);
    }
  }
  return api("GET", "/api/ai/tasks/" + encodeURIComponent(taskId));
}

function showProgress(bar, label, ev) {
  bar.value = ev.progress || 0;
  const pct = Math.round((ev.progress || 0) * 100);
  label.textContent = ev.status + (ev.stage ? " · " + ev.stage : "") + " · " + pct + "%";
}

// ---- account ----------------------------------------------------------------

function showAccount() {
  const signedIn = Boolean(state.token);
  $("auth-panel").hidden = signedIn;
  $("studio").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  $("whoami").textContent = signedIn ? "signed in as " + state.username : "";
  if (signedIn) loadRepositories().catch(report);
}

function signOut() {
  state.token = "";
  localStorage.removeItem("bf_token");
  showAccount();
}

async function authenticate(path) {
  $("auth-error").textContent = "";
  try {
    const out = await api("POST", path, { username: $("username").value, password: $("password").value });
    state.token = out.access_token;
    state.username = out.user.username;
    localStorage.setItem("bf_token", state.token);
    localStorage.setItem("bf_user", state.username);
    showAccount();
  } catch (err) {
    $("auth-error").textContent = err.message;
  }
}

$("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("/api/auth/signin"); });
$("signup").addEventListener("click", () => authenticate("/api/auth/signup"));
$("signout").addEventListener("click", signOut);

function report(err) {
  $("progress-label").textContent = "error: " + err.message;
  console.error(err);
}

// ---- generation -------------------------------------------------------------

function generationBody() {
  const body = { prompt: $("prompt").value || "music", duration: Number($("duration").value) || 8 };
  if ($("bpm").value) body.bpm = Number($("bpm").value);
  if ($("mood").value) body.mood = $("mood").value;
  if ($("seed").value) body.seed = Number($("seed").value);
  return body;
}

async function runGeneration(path, body) {
  $("generate").disabled = true;
  $("cancel").hidden = false;
  $("result").hidden = true;
  try {
    const key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    const task = await api("POST", path, body, { "Idempotency-Key": key });
    state.running = task.task_id;
    showProgress($("progress"), $("progress-label"), task);
    const done = await followTask(task.task_id, (ev, data) => showProgress($("progress"), $("progress-label"), data));
    showProgress($("progress"), $("progress-label"), done);
    if (done.status !== "succeeded") {
      $("progress-label").textContent = done.status + (done.error ? ": " + done.error : "");
      return;
    }
    state.task = done;
    const file = done.files.audio || Object.values(done.files)[0];
    $("player").src = mediaUrl(file.download_url);
    $("download").href = file.download_url + "?redirect=false&access_token=" + encodeURIComponent(state.token);
    $("download").setAttribute("download", file.filename);
    $("result").hidden = false;
    $("analysis").textContent = "";
  } catch (err) {
    report(err);
  } finally {
    state.running = null;
    $("generate").disabled = false;
    $("cancel").hidden = true;
  }
}

// Text-to-music only: conform the result to the BPM/key ("fit to 128 BPM, A minor") and loop it.
function fitOptions() {
  const out = {};
  const key = $("key").value.trim();
  if (key) out.key = key;
  if ($("bpm").value || key) out.conform = $("fit").checked;
  if ($("loop").checked) out.loop = true;
  return out;
}
function updateFitLabel() {
  const parts = [];
  if ($("bpm").value) parts.push($("bpm").value + " BPM");
  if ($("key").value.trim()) parts.push($("key").value.trim());
  $("fit-label").textContent = parts.length ? "fit to " + parts.join(", ") : "fit to BPM and key";
}
$("bpm").addEventListener("input", updateFitLabel);
$("key").addEventListener("input", updateFitLabel);

$("generate-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runGeneration("/api/ai/generate", Object.assign(generationBody(), fitOptions()));
});
$("hum-generate").addEventListener("click", () => {
  const body = generationBody();
  delete body.seed;
  runGeneration("/api/ai/hum-to-beat", Object.assign({ melody_blob: state.melodyBlob }, body));
});
$("cancel").addEventListener("click", () => {
  if (state.running) api("POST", "/api/ai/tasks/" + state.running + "/cancel").catch(report);
});
$("play").addEventListener("click", () => $("player").play().catch(report));

$("analyze").addEventListener("click", async () => {
  const file = state.task && (state.task.files.audio || Object.values(state.task.files)[0]);
  if (!file) return;
  $("analysis").textContent = "analyzing…";
  try {
    const out = await api("POST", "/api/ai/analyze-audio", { audio_blob: file.blob_key });
    const a = out.analysis;
    $("analysis").textContent = `${a.bpm.toFixed(1)} BPM · ${a.key} · ${a.loudness_lufs.toFixed(1)} LUFS · ${a.duration_s.toFixed(1)} s`;
  } catch (err) {
    $("analysis").textContent = "analysis failed: " + err.message;
  }
});

// ---- melody: upload or record ---------------------------------------------------

async function uploadMelody(blob) {
  $("melody-status").textContent = "uploading…";
  try {
    const form = new FormData();
    form.append("file", blob, "melody");
    const out = await api("POST", "/api/audio/upload", form);
    state.melodyBlob = out.blob_key;
    $("melody-player").src = mediaUrl(out.download_url);
    $("melody-player").hidden = false;
    $("hum-generate").disabled = false;
    $("melody-status").textContent = `melody ready: ${out.duration_s.toFixed(1)} s ${out.content_type}`;
  } catch (err) {
    $("melody-status").textContent = "upload refused: " + err.message;
  }
}

$("melody-file").addEventListener("change", () => {
  const file = $("melody-file").files[0];
  if (file) uploadMelody(file);
});

// Encode decoded PCM as 16-bit WAV (recordings come as WebM/Opus, which the gateway does not take).
function wavFromBuffer(buffer) {
  const channels = Math.min(buffer.numberOfChannels, 2);
  const frames = buffer.length;
  const data = new DataView(new ArrayBuffer(44 + frames * channels * 2));
  const text = (off, s) => { for (let i = 0; i < s.length; i++) data.setUint8(off + i, s.charCodeAt(i)); };
  text(0, "RIFF"); data.setUint32(4, 36 + frames * channels * 2, true); text(8, "WAVE");
  text(12, "fmt "); data.setUint32(16, 16, true); data.setUint16(20, 1, true); data.setUint16(22, channels, true);
  data.setUint32(24, buffer.sampleRate, true); data.setUint32(28, buffer.sampleRate * channels * 2, true);
  data.setUint16(32, channels * 2, true); data.setUint16(34, 16, true);
  text(36, "data"); data.setUint32(40, frames * channels * 2, true);
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

let recorder = null;
$("record").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      const ctx = new AudioContext();
      const decoded = await ctx.decodeAudioData(await new Blob(chunks).arrayBuffer());
      uploadMelody(wavFromBuffer(decoded));
    };
    recorder.start();
    $("record").hidden = true;
    $("stop-record").hidden = false;
    $("melody-status").textContent = "recording… hum your melody";
  } catch (err) {
    $("melody-status").textContent = "no microphone: " + err.message;
  }
});
$("stop-record").addEventListener("click", () => {
  if (recorder) recorder.stop();
  $("record").hidden = false;
  $("stop-record").hidden = true;
});

// ---- stems --------------------------------------------------------------------

$("separate").addEventListener("click", async () => {
  const file = state.task && (state.task.files.audio || Object.values(state.task.files)[0]);
  if (!file) return;
  $("stems").innerHTML = "";
  try {
    const task = await api("POST", "/api/ai/separate-stems", { audio_blob: file.blob_key });
    const done = await followTask(task.task_id, (ev, data) => showProgress($("stems-progress"), $("stems-label"), data));
    showProgress($("stems-progress"), $("stems-label"), done);
    if (done.status !== "succeeded") return;
    state.stemsTask = done;
    for (const [name, f] of Object.entries(done.files)) {
      const li = document.createElement("li");
      const label = document.createElement("strong");
      label.textContent = name;
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = mediaUrl(f.download_url);
      audio.dataset.stem = name;
      li.append(label, audio);
      $("stems").append(li);
    }
  } catch (err) {
    $("stems-label").textContent = "error: " + err.message;
  }
});

// ---- repositories and commits --------------------------------------------------------

async function loadRepositories(selectId) {
  const out = await api("GET", "/api/repositories");
  const select = $("repo-select");
  const current = selectId || select.value;
  select.innerHTML = '<option value="">— choose a repository —</option>';
  for (const repo of out.repositories) {
    const opt = document.createElement("option");
    opt.value = repo.id;
    opt.textContent = `${repo.owner_username}/${repo.name}` + (repo.forked_from_id ? " (fork)" : "");
    select.append(opt);
  }
  select.value = current || "";
  if (select.value) await loadHistory();
}

$("repo-select").addEventListener("change", () => loadHistory().catch(report));
$("create-repo").addEventListener("click", async () => {
  try {
    const repo = await api("POST", "/api/repositories/create", { name: $("repo-name").value });
    $("repo-name").value = "";
    await loadRepositories(repo.id);
  } catch (err) {
    $("commit-status").textContent = "error: " + err.message;
  }
});

async function commitTask(task) {
  const repoId = $("repo-select").value;
  if (!repoId || !task) {
    $("commit-status").textContent = repoId ? "nothing to commit yet" : "choose or create a repository first";
    return;
  }
  try {
    const body = { message: $("commit-message").value || "Commit from the studio", from_task: task.task_id, inherit_stems: true };
    if ($("branch").value) body.branch = $("branch").value;
    const commit = await api("POST", "/api/vcs/commit/" + repoId, body);
    $("commit-status").textContent = `committed ${commit.id.slice(0, 10)} with ${commit.stems.length} stem(s)`;
    await loadHistory();
  } catch (err) {
    $("commit-status").textContent = "error: " + err.message;
  }
}
$("commit").addEventListener("click", () => commitTask(state.task));
$("commit-stems").addEventListener("click", () => commitTask(state.stemsTask));

// ---- history graph -------------------------------------------------------------------

const LANE_COLORS = ["#4f5bd5", "#17a589", "#d68910", "#c0392b", "#8e44ad", "#2e86c1"];
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

async function loadHistory() {
  const repoId = $("repo-select").value;
  const svg = $("graph");
  svg.innerHTML = "";
  state.selected = [];
  $("compare-label").textContent = "";
  $("diff").tBodies[0].innerHTML = "";
  if (!repoId) return;
  const g = await api("GET", "/api/vcs/graph/" + repoId);
  const row = 34, lane = 22, left = 16;
  const textX = left + Math.max(1, g.lanes) * lane + 10;
  svg.setAttribute("height", Math.max(40, g.nodes.length * row + 10));
  svg.setAttribute("width", 720);
  const pos = {};
  for (const n of g.nodes) pos[n.commit.id] = { x: left + n.lane * lane, y: 20 + n.row * row, lane: n.lane };
  for (const e of g.edges) {
    const a = pos[e.child], b = pos[e.parent];
    if (!a || !b) continue;
    const midY = b.y - row / 2;
    const d = a.x === b.x ? `M${a.x},${a.y} L${b.x},${b.y}` : `M${a.x},${a.y} C${a.x},${midY} ${b.x},${a.y + row / 2} ${b.x},${b.y}`;
    svg.append(svgEl("path", { d, fill: "none", stroke: LANE_COLORS[Math.max(a.lane, b.lane) % LANE_COLORS.length], "stroke-width": 2 }));
  }
  const refsAt = {};
  for (const r of g.refs) (refsAt[r.commit_id] = refsAt[r.commit_id] || []).push(r.is_tag ? "tag: " + r.name : r.name);
  for (const n of g.nodes) {
    const p = pos[n.commit.id];
    const circle = svgEl("circle", { cx: p.x, cy: p.y, r: 7, fill: LANE_COLORS[n.lane % LANE_COLORS.length], class: "node", "data-commit": n.commit.id });
    circle.append(svgEl("title", {}, n.commit.id));
    circle.addEventListener("click", () => pickCommit(n.commit.id, circle));
    svg.append(circle);
    let x = textX;
    for (const name of refsAt[n.commit.id] || []) {
      const t = svgEl("text", { x, y: p.y + 4, class: "ref" }, `[${name}]`);
      svg.append(t);
      x += 10 + 7.5 * (name.length + 2);
    }
    const stems = n.commit.stems.map((s) => s.name).join(", ");
    svg.append(svgEl("text", { x, y: p.y + 4 }, `${n.commit.id.slice(0, 8)}  ${n.commit.message}  — ${n.commit.author_username}  (${stems})`));
  }
}

async function pickCommit(id, circle) {
  if (state.selected.length === 2) {
    for (const el of document.querySelectorAll("#graph .node.selected")) el.classList.remove("selected");
    state.selected = [];
  }
  state.selected.push(id);
  circle.classList.add("selected");
  if (state.selected.length < 2) {
    $("compare-label").textContent = "base " + id.slice(0, 8) + " — pick another commit";
    return;
  }
  const [base, head] = state.selected;
  $("compare-label").textContent = `${base.slice(0, 8)} → ${head.slice(0, 8)}`;
  const d = await api("GET", `/api/vcs/diff/${$("repo-select").value}?base=${base}&head=${head}`);
  const body = $("diff").tBodies[0];
  body.innerHTML = "";
  for (const s of d.stems) {
    const tr = document.createElement("tr");
    tr.className = "change-" + s.change;
    for (const v of [s.name, s.change, (s.base_blob || "").slice(0, 8), (s.head_blob || "").slice(0, 8)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
  for (const m of d.metadata) {
    const tr = document.createElement("tr");
    const short = (v) => (v.length > 48 ? v.slice(0, 47) + "…" : v);
    for (const v of [m.field, "metadata", short(m.base_value), short(m.head_value)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
}

showAccount();
