// BeatFlow Studio: generation, a stem mixer and version control, over the public HTTP API only.

import { ago, api, ApiError, downloadHref, enc, followTask, formatTime, idempotencyKey, session, shortId, when } from "./api.js";
import { MixEngine, wavFromBuffer } from "./mixer.js";
import { el } from "./dom.js";
import { Review } from "./review.js";
import { drawWaveform, playableWaveform } from "./waveform.js";

const $ = (id) => document.getElementById(id);

const state = {
  take: null, // the last generation that succeeded (what "Commit take" commits)
  running: null, // {taskId, controller} of the generation in progress
  melodyBlob: "",
  mixSource: null, // {kind: "task", task, take} or {kind: "commit", commit}
  repo: null, // the selected repository
  branch: "", // the current branch
  refs: [], // branches and tags of the repository
  graph: null,
  view: null, // the commit in view (open in the mixer)
  compare: null, // {a, b, diff, stem, review, mr}
  mergeRequests: [], // of the repository, newest first
  conflicts: null, // {from, conflicts}
};
const mixer = new MixEngine();
const ab = new MixEngine(); // compare: both versions of one stem in sync
const mergeAb = new MixEngine(); // merge conflicts: ours and theirs of one stem in sync
let abSide = "A";
let waveRows = []; // {name, view} of the mixer's waveforms
let abWaves = [];
// For scripts and tests that drive the page; compareWaveforms() gives each compare row's
// wavesurfer instances ({stem, side: "A" | "B", view: {ws, duration}, regions}), regions being the
// vendored regions plugin where the sound changes and the comments are drawn.
window.studio = { state, mixer, ab, mergeAb, compareWaveforms: () => abWaves, review: () => state.compare && state.compare.review };

// ---- small helpers -----------------------------------------------------------------

// Run an action for a control: the button is disabled meanwhile, and a failure is shown, in words,
// in the panel where the user acted.
async function act(errorId, fn, button) {
  const errorEl = $(errorId);
  errorEl.textContent = "";
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    errorEl.textContent = err instanceof ApiError ? err.message : "something went wrong: " + err.message;
    if (!(err instanceof ApiError)) console.warn(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function commitLabel(c) {
  return `${shortId(c.id)} · ${c.message}`;
}

function stemUrl(blobKey) {
  return "/api/audio/download/" + blobKey;
}

// ---- account ------------------------------------------------------------------------

function showAccount() {
  const signedIn = Boolean(session.token);
  $("auth-panel").hidden = signedIn;
  $("studio").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  $("whoami").textContent = signedIn ? "signed in as " + session.username : "";
  if (signedIn) {
    loadRepositories().catch((err) => ($("repo-error").textContent = err.message));
    loadModelInfo();
  } else {
    $("demo-banner").hidden = true;
  }
}

function signOut() {
  session.token = "";
  localStorage.removeItem("bf_token");
  mixer.clear();
  ab.clear();
  mergeAb.clear();
  showAccount();
}
session.onSignedOut = signOut;

async function authenticate(path) {
  await act("auth-error", async () => {
    const out = await api("POST", path, { username: $("username").value, password: $("password").value });
    session.token = out.access_token;
    session.username = out.user.username;
    localStorage.setItem("bf_token", session.token);
    localStorage.setItem("bf_user", session.username);
    showAccount();
  });
}

$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  authenticate("/api/auth/signin");
});
$("signup").addEventListener("click", () => {
  if ($("auth-form").reportValidity()) authenticate("/api/auth/signup");
});
$("signout").addEventListener("click", signOut);

async function loadModelInfo() {
  try {
    const info = await api("GET", "/api/ai/model");
    $("demo-text").textContent = info.notice;
    $("demo-how").textContent = info.how_to_connect;
    $("demo-banner").hidden = !info.random_weights;
    if (info.max_variations) {
      for (const opt of $("variations").options) opt.disabled = Number(opt.value) > info.max_variations;
    }
  } catch (err) {
    $("demo-banner").hidden = true; // the generator is down: generation itself will say so
  }
}

// ---- generation ---------------------------------------------------------------------

function numberField(id) {
  const raw = $(id).value;
  return raw === "" ? undefined : Number(raw);
}

function generationBody() {
  const body = { prompt: $("prompt").value.trim() || "music", duration: numberField("duration") || 8 };
  const fields = { bpm: "bpm", seed: "seed", top_k: "top-k", top_p: "top-p", temperature: "temperature", guidance_scale: "guidance" };
  for (const [name, id] of Object.entries(fields)) {
    const v = numberField(id);
    if (v !== undefined) body[name] = v;
  }
  if ($("mood").value.trim()) body.mood = $("mood").value.trim();
  if ($("key").value.trim()) body.key = $("key").value.trim();
  const variations = Number($("variations").value);
  if (variations > 1) body.num_variations = variations;
  return body;
}

function showProgress(bar, label, ev, queuePosition) {
  bar.value = ev.progress || 0;
  const pct = Math.round((ev.progress || 0) * 100);
  let text = ev.status;
  if (ev.status === "queued" && queuePosition > 0) text += ` · position ${queuePosition} in the queue`;
  if (ev.stage) text += " · " + ev.stage;
  label.textContent = `${text} · ${pct}%`;
}

async function runGeneration(path, body, caption) {
  $("generate-error").textContent = "";
  $("generate").disabled = true;
  $("hum-generate").disabled = true;
  $("cancel").hidden = false;
  const controller = new AbortController();
  state.running = { taskId: "", controller, cancelRequested: false };
  try {
    const task = await api("POST", path, body, { "Idempotency-Key": idempotencyKey() });
    state.running.taskId = task.task_id;
    if (state.running.cancelRequested) cancelTask(task.task_id);
    const position = task.queue_position;
    showProgress($("progress"), $("progress-label"), task, position);
    const done = await followTask(
      task.task_id,
      (ev) => showProgress($("progress"), $("progress-label"), ev, position),
      controller.signal,
    );
    showProgress($("progress"), $("progress-label"), done);
    if (done.status === "cancelled") {
      $("progress-label").textContent = state.take ? "cancelled · the previous take is still here" : "cancelled";
      return;
    }
    if (done.status !== "succeeded") {
      $("generate-error").textContent = `generation ${done.status}: ${done.error || "no reason given"}`;
      return;
    }
    await showTake(done, caption || body.prompt);
  } catch (err) {
    $("generate-error").textContent = err instanceof ApiError ? err.message : "generation stopped: " + err.message;
  } finally {
    state.running = null;
    $("generate").disabled = false;
    $("hum-generate").disabled = !state.melodyBlob;
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
  for (const k of ["key", "top_k", "top_p", "num_variations"]) delete body[k];
  runGeneration("/api/ai/hum-to-beat", Object.assign({ melody_blob: state.melodyBlob }, body), "from your melody");
});
function cancelTask(taskId) {
  $("progress-label").textContent = "cancelling…";
  return act("generate-error", () => api("POST", "/api/ai/tasks/" + enc(taskId) + "/cancel"), $("cancel"));
}
// Cancel pressed before the task exists is remembered and sent as soon as the task id arrives.
$("cancel").addEventListener("click", () => {
  if (!state.running) return;
  if (state.running.taskId) cancelTask(state.running.taskId);
  else state.running.cancelRequested = true;
});

// A new take replaces the takes on screen; stems separated from an older take leave the mixer,
// so nothing stale can be committed by mistake.
async function showTake(task, caption) {
  state.take = task;
  if (state.mixSource && state.mixSource.kind === "task") clearMixer("A new take is ready: separate it to mix its stems.");
  $("result").hidden = false;
  $("result-caption").textContent = caption ? `“${caption}”` : "";
  const box = $("takes");
  box.innerHTML = "";
  const files = Object.entries(task.files);
  for (const [index, [name, file]] of files.entries()) {
    const wave = el("div", { class: "wave-slot", "data-take": name });
    const play = el("button", { type: "button", class: "secondary", text: "▶ Play" });
    const take = el(
      "article",
      { class: "take", "data-take": name },
      el("h3", { text: files.length > 1 ? `Take ${index + 1}` : "Take" }),
      wave,
      el(
        "div",
        { class: "row wrap" },
        play,
        el("a", { class: "button ghost", href: downloadHref(file.download_url, file.download_name), download: file.download_name, text: "Download" }),
        el("button", { type: "button", class: "secondary", text: "Separate stems", onclick: (e) => separate(file, e.target) }),
        el("button", { type: "button", class: "ghost", text: "Extend this take", onclick: () => extend(file) }),
        el("button", { type: "button", class: "ghost", text: "Analyze", onclick: (e) => analyze(file, take, e.target) }),
        el("button", { type: "button", text: "Commit take", onclick: (e) => commitTake(task, e.target) }),
      ),
      el("p", { class: "hint analysis" }),
    );
    box.append(take);
    const ws = await playableWaveform(wave, file);
    ws.on("play", () => (play.textContent = "❚❚ Pause"));
    ws.on("pause", () => (play.textContent = "▶ Play"));
    play.addEventListener("click", () => ws.playPause());
    take.player = ws;
  }
}

function extend(file) {
  const body = generationBody();
  body.prompt_audio_blob = file.blob_key;
  delete body.num_variations;
  runGeneration("/api/ai/generate", body, "continued from the previous take");
}

async function analyze(file, take, button) {
  const out = await act(
    "result-error",
    () => api("POST", "/api/ai/analyze-audio", { audio_blob: file.blob_key }),
    button,
  );
  if (!out) return;
  const a = out.analysis;
  take.querySelector(".analysis").textContent =
    `${a.bpm.toFixed(1)} BPM · ${a.key} · ${a.loudness_lufs.toFixed(1)} LUFS · ${a.duration_s.toFixed(1)} s`;
}

// ---- melody: upload or record ----------------------------------------------------------

async function uploadMelody(blob) {
  $("melody-status").textContent = "uploading…";
  try {
    const form = new FormData();
    form.append("file", blob, "melody");
    const out = await api("POST", "/api/audio/upload", form);
    state.melodyBlob = out.blob_key;
    $("hum-generate").disabled = Boolean(state.running);
    $("melody-status").textContent = `melody ready: ${out.duration_s.toFixed(1)} s ${out.content_type}`;
    const slot = $("melody-wave");
    slot.innerHTML = "";
    slot.hidden = false;
    await playableWaveform(slot, out, { height: 40 });
  } catch (err) {
    $("melody-status").textContent = "upload refused: " + err.message;
  }
}

$("melody-file").addEventListener("change", () => {
  const file = $("melody-file").files[0];
  if (file) uploadMelody(file);
});

let recorder = null;
$("record").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      // Recordings come as WebM/Opus, which the gateway does not take: send 16-bit WAV.
      const ctx = new AudioContext();
      const decoded = await ctx.decodeAudioData(await new Blob(chunks).arrayBuffer());
      ctx.close();
      uploadMelody(wavFromBuffer(decoded));
    };
    recorder.start();
    $("record").hidden = true;
    $("stop-record").hidden = false;
    $("melody-status").textContent = "recording… hum your melody";
  } catch (err) {
    $("melody-status").textContent = "no microphone available: " + err.message;
  }
});
$("stop-record").addEventListener("click", () => {
  if (recorder) recorder.stop();
  $("record").hidden = false;
  $("stop-record").hidden = true;
});

// ---- separation and the mixer ----------------------------------------------------------------

async function separate(file, button) {
  $("stems-progress-wrap").hidden = false;
  await act(
    "mixer-error",
    async () => {
      const task = await api("POST", "/api/ai/separate-stems", { audio_blob: file.blob_key }, { "Idempotency-Key": idempotencyKey() });
      const done = await followTask(task.task_id, (ev) => showProgress($("stems-progress"), $("stems-label"), ev, task.queue_position));
      showProgress($("stems-progress"), $("stems-label"), done);
      if (done.status !== "succeeded") throw new Error(`separation ${done.status}: ${done.error || "no reason given"}`);
      const stems = Object.entries(done.files).map(([name, f]) => ({ name, blob_key: f.blob_key, download_url: f.download_url, download_name: f.download_name }));
      await openMixer(stems, { kind: "task", task: done, take: state.take }, "Stems of the current take (not committed yet)");
    },
    button,
  );
}

function clearMixer(message) {
  mixer.clear();
  state.mixSource = null;
  $("mixer").innerHTML = "";
  $("transport").hidden = true;
  $("mixer-actions").hidden = true;
  $("mixer-source").textContent = message;
  waveRows = [];
}

async function openMixer(stems, source, caption) {
  clearMixer("loading stems…");
  state.mixSource = source;
  const box = $("mixer");
  const rows = stems.map((stem) => mixerRow(stem));
  box.append(...rows.map((r) => r.row));
  const loaded = await mixer.load(stems);
  if (!loaded) return;
  waveRows = await Promise.all(
    rows.map(async (r) => ({ name: r.stem.name, view: await drawWaveform(r.wave, r.stem.blob_key, { onSeek: (t) => mixer.seek(t) }) })),
  );
  $("mixer-source").textContent = caption;
  $("transport").hidden = false;
  $("mixer-actions").hidden = false;
  $("commit-stems").hidden = source.kind !== "task";
  $("stems-message").hidden = source.kind !== "task";
  $("replace-row").hidden = !(source.kind === "commit" && state.repo);
  const select = $("replace-stem");
  select.innerHTML = "";
  for (const stem of stems) select.append(el("option", { value: stem.name, text: stem.name }));
  renderTransport();
}

function mixerRow(stem) {
  const name = stem.name;
  const mute = el("button", { type: "button", class: "toggle mute", "aria-pressed": "false", title: `Mute ${name}`, text: "M" });
  const solo = el("button", { type: "button", class: "toggle solo", "aria-pressed": "false", title: `Solo ${name}`, text: "S" });
  const volume = el("input", { type: "range", min: "0", max: "1.5", step: "0.05", value: "1", "aria-label": `${name} volume` });
  mute.addEventListener("click", () => mixer.set(name, { mute: !mixer.track(name).mute }));
  solo.addEventListener("click", () => mixer.set(name, { solo: !mixer.track(name).solo }));
  volume.addEventListener("input", () => mixer.set(name, { volume: Number(volume.value) }));
  const wave = el("div", { class: "wave-slot" });
  const row = el(
    "div",
    { class: "stem-row", "data-stem": name },
    el("div", { class: "stem-controls" }, el("strong", { class: "stem-name", text: name }), el("span", { class: "toggles" }, mute, solo), volume),
    wave,
  );
  return { row, wave, stem };
}

function renderTransport() {
  const position = mixer.position();
  $("mix-time").textContent = `${formatTime(position)} / ${formatTime(mixer.duration)}`;
  $("mix-play").textContent = mixer.playing ? "❚❚ Pause" : "▶ Play";
  $("mix-play").setAttribute("aria-label", mixer.playing ? "Pause" : "Play");
  for (const t of mixer.tracks) {
    const row = document.querySelector(`.stem-row[data-stem="${CSS.escape(t.name)}"]`);
    if (!row) continue;
    row.querySelector(".mute").setAttribute("aria-pressed", String(t.mute));
    row.querySelector(".solo").setAttribute("aria-pressed", String(t.solo));
    row.classList.toggle("silent", !mixer.audible(t));
  }
  for (const w of waveRows) w.view.show(position);
}
mixer.onChange(renderTransport);

$("mix-play").addEventListener("click", () => mixer.toggle());
document.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || e.repeat) return;
  const target = e.target;
  if (target.closest && target.closest("input, textarea, select, button, a, [contenteditable]")) return;
  if (!mixer.tracks.length) return;
  e.preventDefault();
  mixer.toggle();
});

$("mix-download").addEventListener("click", (e) =>
  act(
    "mixer-error",
    async () => {
      const rendered = await mixer.renderMix();
      const url = URL.createObjectURL(wavFromBuffer(rendered));
      const audible = mixer.tracks.filter((t) => mixer.audible(t)).map((t) => t.name);
      const base = state.mixSource && state.mixSource.kind === "commit" ? shortId(state.mixSource.commit.id) : "take";
      const link = el("a", { href: url, download: `mix-${audible.join("-") || "silence"}-${base}.wav` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    },
    e.target,
  ),
);

// ---- committing -----------------------------------------------------------------------

function requireRepo() {
  if (!state.repo) throw new ApiError(400, { detail: "choose or create a repository first (Repository panel)" });
}

function branchHead(name) {
  const ref = state.refs.find((r) => !r.is_tag && r.name === name);
  return ref ? ref.commit_id : "";
}

// Commit to the current branch, on top of its head as the studio last saw it (a branch that moved
// meanwhile is refused rather than overwritten).
async function commitToBranch(body) {
  requireRepo();
  const payload = Object.assign({ branch: state.branch }, body);
  const head = branchHead(state.branch);
  if (head) payload.parent_commit_id = head;
  const commit = await api("POST", "/api/vcs/commit/" + state.repo.id, payload);
  await refreshRepo();
  await viewCommit(commit);
  return commit;
}

async function commitTake(task, button) {
  await act(
    "result-error",
    async () => {
      const commit = await commitToBranch({ message: `Take: ${$("prompt").value.trim() || "generation"}`.slice(0, 200), from_task: task.task_id, inherit_stems: true });
      $("result-error").textContent = "";
      $("result-caption").textContent = `committed as ${shortId(commit.id)} on ${state.branch}`;
    },
    button,
  );
}

$("commit-stems").addEventListener("click", (e) =>
  act(
    "mixer-error",
    async () => {
      const source = state.mixSource;
      if (!source || source.kind !== "task") throw new ApiError(400, { detail: "separate a take first" });
      await commitToBranch({ message: $("stems-message").value.trim() || "Stems", from_task: source.task.task_id, inherit_stems: true });
      $("stems-message").value = "";
    },
    e.target,
  ),
);

// "New drums": upload one stem's replacement and commit it over the branch head, keeping the rest.
$("replace-file").addEventListener("change", (e) =>
  act("mixer-error", async () => {
    const file = $("replace-file").files[0];
    if (!file) return;
    requireRepo();
    const name = $("replace-stem").value;
    const form = new FormData();
    form.append("file", file, file.name);
    const up = await api("POST", "/api/audio/upload", form);
    await commitToBranch({ message: `New ${name}`, stems: [{ name, blob_key: up.blob_key }], inherit_stems: true });
    $("replace-file").value = "";
  }),
);

// ---- repositories, branches, tags, collaborators ------------------------------------------------

async function loadRepositories(selectId) {
  const out = await api("GET", "/api/repositories");
  const select = $("repo-select");
  const current = selectId || select.value;
  select.innerHTML = "";
  select.append(el("option", { value: "", text: "— choose a repository —" }));
  for (const repo of out.repositories) {
    const label = `${repo.owner_username}/${repo.name}` + (repo.forked_from_id ? " (fork)" : "");
    select.append(el("option", { value: repo.id, text: label }));
  }
  select.value = current || "";
  await selectRepo(select.value);
}

async function selectRepo(repoId) {
  state.view = null;
  state.repo = null;
  state.branch = "";
  $("fork").disabled = !repoId;
  $("repo-details").hidden = !repoId;
  if (!repoId) {
    renderGraph(null);
    $("merge-panel").hidden = true;
    $("mr-panel").hidden = true;
    leaveMergeRequest();
    $("compare-panel").hidden = true;
    return;
  }
  state.repo = await api("GET", "/api/repositories/" + repoId);
  state.branch = state.repo.default_branch;
  await refreshRepo();
  const head = branchHead(state.branch);
  if (head) await viewCommit(await getCommit(head));
}

async function refreshRepo() {
  if (!state.repo) return;
  const id = state.repo.id;
  const [branches, tags, graph] = await Promise.all([
    api("GET", `/api/repositories/${id}/branches`),
    api("GET", `/api/repositories/${id}/tags`),
    api("GET", `/api/vcs/graph/${id}`),
  ]);
  state.refs = branches.refs.concat(tags.refs);
  state.graph = graph;
  const select = $("branch-select");
  select.innerHTML = "";
  const names = branches.refs.map((r) => r.name);
  if (!names.includes(state.branch)) names.unshift(state.branch); // the default branch before its first commit
  for (const name of names) select.append(el("option", { value: name, text: name + (branchHead(name) ? "" : " (no commits yet)") }));
  select.value = state.branch;
  $("merge-into").textContent = state.branch;
  const from = $("merge-from");
  from.innerHTML = "";
  for (const r of branches.refs) if (r.name !== state.branch) from.append(el("option", { value: r.name, text: r.name }));
  $("merge-run").disabled = !from.options.length;
  $("merge-panel").hidden = branches.refs.length < 2;
  const proposal = $("mr-source");
  proposal.innerHTML = "";
  for (const r of branches.refs) if (r.name !== state.branch) proposal.append(el("option", { value: r.name, text: r.name }));
  $("mr-into").textContent = state.branch;
  $("mr-open").disabled = !proposal.options.length;
  $("mr-propose").hidden = !proposal.options.length; // nothing to propose before a second branch
  $("mr-hint").hidden = Boolean(proposal.options.length);
  $("mr-panel").hidden = false;
  loadMergeRequests().catch((err) => ($("mr-error").textContent = err.message));
  $("compare-panel").hidden = graph.nodes.length < 2;
  const tagList = $("tags");
  tagList.innerHTML = "";
  for (const t of tags.refs) tagList.append(el("li", { class: "chip", title: t.commit_id, text: `${t.name} → ${shortId(t.commit_id)}` }));
  if (!tags.refs.length) tagList.append(el("li", { class: "hint", text: "no tags yet" }));
  renderGraph(graph);
  fillCompareSelects();
  loadCollaborators();
}

async function getCommit(id) {
  return api("GET", `/api/vcs/commit/${id}?repo_id=${state.repo.id}`);
}

$("repo-select").addEventListener("change", () => act("repo-error", () => selectRepo($("repo-select").value)));
$("create-repo").addEventListener("click", (e) =>
  act(
    "repo-error",
    async () => {
      const name = $("repo-name").value.trim();
      if (!name) throw new ApiError(400, { detail: "give the repository a name" });
      const repo = await api("POST", "/api/repositories/create", { name });
      $("repo-name").value = "";
      await loadRepositories(repo.id);
    },
    e.target,
  ),
);
$("fork").addEventListener("click", (e) =>
  act(
    "repo-error",
    async () => {
      const fork = await api("POST", "/api/vcs/fork", { repo_id: state.repo.id, name: `${state.repo.name}-fork-${Date.now().toString(36).slice(-4)}` });
      await loadRepositories(fork.id);
    },
    e.target,
  ),
);

$("branch-select").addEventListener("change", () =>
  act("branch-error", async () => {
    state.branch = $("branch-select").value;
    await refreshRepo();
    const head = branchHead(state.branch);
    if (head) await viewCommit(await getCommit(head));
  }),
);
$("branch-create").addEventListener("click", (e) =>
  act(
    "branch-error",
    async () => {
      const name = $("branch-name").value.trim();
      if (!name) throw new ApiError(400, { detail: "name the new branch" });
      if (!state.view) throw new ApiError(400, { detail: "open a commit first: the branch starts from the commit in view" });
      await api("POST", `/api/repositories/${state.repo.id}/branches`, { name, from_ref: state.view.id });
      state.branch = name;
      $("branch-name").value = "";
      await refreshRepo();
    },
    e.target,
  ),
);
$("branch-rename-go").addEventListener("click", (e) =>
  act(
    "branch-error",
    async () => {
      const newName = $("branch-rename").value.trim();
      if (!newName) throw new ApiError(400, { detail: "type the branch's new name" });
      await api("PATCH", `/api/repositories/${state.repo.id}/branches/${state.branch}`, { new_name: newName });
      state.branch = newName;
      $("branch-rename").value = "";
      await refreshRepo();
    },
    e.target,
  ),
);
$("branch-delete").addEventListener("click", (e) =>
  act(
    "branch-error",
    async () => {
      if (state.branch === state.repo.default_branch) throw new ApiError(400, { detail: "the default branch cannot be deleted; switch to another branch to delete it" });
      await api("DELETE", `/api/repositories/${state.repo.id}/branches/${state.branch}`);
      state.branch = state.repo.default_branch;
      await refreshRepo();
    },
    e.target,
  ),
);
$("tag-create").addEventListener("click", (e) =>
  act(
    "branch-error",
    async () => {
      const name = $("tag-name").value.trim();
      if (!name) throw new ApiError(400, { detail: "name the tag" });
      if (!state.view) throw new ApiError(400, { detail: "open a commit to tag first" });
      await api("POST", `/api/repositories/${state.repo.id}/tags`, { name, target: state.view.id });
      $("tag-name").value = "";
      await refreshRepo();
    },
    e.target,
  ),
);

async function loadCollaborators() {
  const list = $("collaborators");
  try {
    const out = await api("GET", `/api/repositories/${state.repo.id}/collaborators`);
    list.innerHTML = "";
    for (const c of out.collaborators) list.append(el("li", { text: `${c.username} · ${c.role}` }));
  } catch (err) {
    list.innerHTML = "";
    list.append(el("li", { class: "hint", text: "only the owner sees collaborators" }));
  }
}
$("collab-grant").addEventListener("click", (e) =>
  act(
    "branch-error",
    async () => {
      const username = $("collab-name").value.trim();
      if (!username) throw new ApiError(400, { detail: "type the username to grant access to" });
      await api("PUT", `/api/repositories/${state.repo.id}/collaborators/${enc(username)}`, { role: $("collab-role").value });
      $("collab-name").value = "";
      await loadCollaborators();
    },
    e.target,
  ),
);

// ---- history graph ------------------------------------------------------------------------

const LANE_COLORS = ["#3f4bc4", "#0f8a6f", "#b25d00", "#b3261e", "#7b3fa0", "#1f6aa5"];
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderGraph(g) {
  const svg = $("graph");
  svg.innerHTML = "";
  if (!g || !g.nodes.length) {
    svg.setAttribute("height", 30);
    svg.append(svgEl("text", { x: 4, y: 20, class: "empty" }, g ? "No commits yet: commit a take or stems." : "Choose a repository."));
    return;
  }
  const row = 44, lane = 18, left = 12;
  const textX = left + Math.max(1, g.lanes) * lane + 6;
  svg.setAttribute("height", g.nodes.length * row + 8);
  svg.setAttribute("width", Math.max(300, $("graph-wrap").clientWidth - 4));
  const pos = {};
  for (const n of g.nodes) pos[n.commit.id] = { x: left + n.lane * lane, y: 18 + n.row * row, lane: n.lane };
  for (const e of g.edges) {
    const a = pos[e.child], b = pos[e.parent];
    if (!a || !b) continue;
    const d = a.x === b.x ? `M${a.x},${a.y} L${b.x},${b.y}` : `M${a.x},${a.y} C${a.x},${a.y + row / 2} ${b.x},${b.y - row / 2} ${b.x},${b.y}`;
    svg.append(svgEl("path", { d, fill: "none", stroke: LANE_COLORS[Math.max(a.lane, b.lane) % LANE_COLORS.length], "stroke-width": 2 }));
  }
  const refsAt = {};
  for (const r of g.refs) (refsAt[r.commit_id] = refsAt[r.commit_id] || []).push(r);
  for (const n of g.nodes) {
    const p = pos[n.commit.id];
    const group = svgEl("g", { class: "commit", tabindex: 0, role: "listitem", "data-commit": n.commit.id, "aria-label": `Commit ${commitLabel(n.commit)}` });
    group.append(svgEl("rect", { x: 0, y: p.y - 17, width: "100%", height: row - 4, class: "hit", rx: 6 }));
    group.append(svgEl("circle", { cx: p.x, cy: p.y, r: 6, fill: LANE_COLORS[n.lane % LANE_COLORS.length], class: "node" }));
    let x = textX;
    svg.append(group);
    for (const r of refsAt[n.commit.id] || []) {
      const label = r.is_tag ? "tag " + r.name : r.name;
      const pill = svgEl("rect", { x, y: p.y - 15, width: 10, height: 15, rx: 7, class: r.is_tag ? "tag-pill" : r.name === state.branch ? "ref-pill current" : "ref-pill" });
      const text = svgEl("text", { x: x + 6, y: p.y - 4, class: "ref" }, label);
      group.append(pill, text);
      const width = text.getComputedTextLength() + 12;
      pill.setAttribute("width", width);
      x += width + 6;
    }
    group.append(svgEl("text", { x, y: p.y - 4, class: "message" }, n.commit.message.length > 40 ? n.commit.message.slice(0, 39) + "…" : n.commit.message));
    const stems = n.commit.stems.length === 1 ? n.commit.stems[0].name : `${n.commit.stems.length} stems`;
    group.append(svgEl("text", { x: textX, y: p.y + 13, class: "meta" }, `${shortId(n.commit.id)} · ${n.commit.author_username} · ${stems}`));
    const open = () => act("history-error", async () => viewCommit(await getCommit(n.commit.id)));
    group.addEventListener("click", open);
    group.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        open();
      }
    });
  }
  markViewed();
}

function markViewed() {
  for (const g of document.querySelectorAll("#graph .commit")) g.classList.toggle("selected", Boolean(state.view) && g.dataset.commit === state.view.id);
}

// The commit in view: shown in the history, opened in the mixer, the start of new branches.
async function viewCommit(commit) {
  state.view = commit;
  markViewed();
  $("commit-view").hidden = false;
  $("view-message").textContent = commit.message;
  const md = commit.metadata;
  const bits = [shortId(commit.id), commit.author_username, when(commit.timestamp)];
  if (md.bpm) bits.push(`${md.bpm} BPM`);
  if (md.key) bits.push(md.key);
  $("view-meta").textContent = bits.join(" · ");
  $("view-compare").disabled = !commit.parent_ids.length;
  $("view-regenerate").disabled = !(md.generation && md.generation.prompt !== undefined);
  $("stems-progress-wrap").hidden = true;
  if (commit.stems.length) {
    await openMixer(commit.stems, { kind: "commit", commit }, `Commit ${commitLabel(commit)} on ${state.branch}`);
  } else {
    clearMixer(`Commit ${commitLabel(commit)} has no stems.`);
  }
}

$("view-open").addEventListener("click", (e) => act("history-error", async () => state.view && viewCommit(state.view), e.target));
$("view-compare").addEventListener("click", () => {
  if (!state.view || !state.view.parent_ids.length) return;
  $("compare-a").value = state.view.parent_ids[0];
  $("compare-b").value = state.view.id;
  runCompare();
  $("compare-panel").scrollIntoView({ behavior: "smooth", block: "start" });
});
$("view-revert").addEventListener("click", (e) =>
  act(
    "history-error",
    async () => {
      const target = state.view;
      const payload = { commit_id: target.id, branch: state.branch, message: `Revert “${target.message}”` };
      const head = branchHead(state.branch);
      if (head) payload.expected_head = head;
      const commit = await api("POST", `/api/vcs/revert/${state.repo.id}`, payload);
      await refreshRepo();
      await viewCommit(commit);
    },
    e.target,
  ),
);
$("view-regenerate").addEventListener("click", () => {
  const g = (state.view && state.view.metadata.generation) || {};
  const hints = g.hints || {};
  const sampling = g.sampling || {};
  const set = (id, v) => ($(id).value = v === undefined || v === null || v === 0 ? "" : v);
  set("prompt", g.prompt);
  set("bpm", hints.bpm);
  set("mood", hints.mood);
  set("key", hints.key);
  set("duration", g.duration_s);
  set("seed", g.seed);
  set("top-k", sampling.top_k);
  set("top-p", sampling.top_p);
  set("temperature", sampling.temperature);
  set("guidance", sampling.guidance_scale);
  $("generate-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  $("prompt").focus();
});

// ---- compare ---------------------------------------------------------------------------

function fillCompareSelects() {
  const nodes = state.graph ? state.graph.nodes : [];
  for (const id of ["compare-a", "compare-b"]) {
    const select = $(id);
    const keep = select.value;
    select.innerHTML = "";
    for (const n of nodes) select.append(el("option", { value: n.commit.id, text: commitLabel(n.commit) }));
    if (keep && nodes.some((n) => n.commit.id === keep)) select.value = keep;
  }
  if (nodes.length > 1 && $("compare-a").value === $("compare-b").value) $("compare-a").value = nodes[1].commit.id;
}

$("compare-run").addEventListener("click", () => runCompare());

async function runCompare() {
  await act("compare-error", async () => {
    const a = $("compare-a").value, b = $("compare-b").value;
    if (!a || !b) throw new ApiError(400, { detail: "pick two commits to compare" });
    const [diff, commitA, commitB] = await Promise.all([
      api("GET", `/api/vcs/diff/${state.repo.id}?base=${enc(a)}&head=${enc(b)}`),
      getCommit(a),
      getCommit(b),
    ]);
    leaveMergeRequest();
    const review = newReview({ commit_id: commitB.id }, `/api/vcs/audio-diff/${state.repo.id}?base=${enc(commitA.id)}&head=${enc(commitB.id)}`, commitA.id);
    state.compare = { a: commitA, b: commitB, diff, stem: null, review, mr: null };
    renderCompare();
    startReview(review, true);
  });
}

// The review of the comparison on screen: the sound diff task, the comments of the newer side
// (target) and those already on the older commit (base).
function newReview(target, diffPath, base) {
  if (state.compare && state.compare.review) state.compare.review.close();
  return new Review({
    repoId: state.repo.id,
    target,
    base,
    diffPath,
    els: { root: $("compare-stems"), progress: $("audio-diff-progress"), label: $("audio-diff-label"), threads: $("threads"), count: $("threads-count"), error: $("compare-error") },
    seek: (stem, t, side) => seekCompare(stem, t, side),
    canResolve: (c) => {
      const role = state.repo && state.repo.role;
      const mr = state.compare && state.compare.mr;
      return c.author_username === session.username || role === "write" || role === "owner" || Boolean(mr && mr.author_username === session.username);
    },
  });
}

function startReview(review, withDiff) {
  $("audio-diff-label").textContent = "";
  if (withDiff) review.runDiff();
  review.loadComments().catch((err) => ($("compare-error").textContent = err.message));
}

// Play one stem's versions from this time (a comment's or a change's start), on this side if given.
function seekCompare(stem, seconds, side) {
  if (!state.compare || !state.compare.diff.stems.some((s) => s.name === stem)) return; // a stem not compared here
  if (side) setAbSide(side);
  if (state.compare.stem !== stem) selectAbStem(stem, seconds);
  else ab.seek(seconds);
}

// One row per stem: A and B side by side. Each row carries data-stem and an .annotations slot,
// where comments and perceptual-diff regions can be attached.
function renderCompare() {
  const { a, b, diff, review } = state.compare;
  $("compare-view").hidden = false;
  const stemsA = Object.fromEntries(a.stems.map((s) => [s.name, s]));
  const stemsB = Object.fromEntries(b.stems.map((s) => [s.name, s]));
  const box = $("compare-stems");
  box.innerHTML = "";
  abWaves = [];
  box.append(el("div", { class: "compare-head" }, el("span"), el("span", { text: "A · " + commitLabel(a) }), el("span", { text: "B · " + commitLabel(b) })));
  for (const s of diff.stems) {
    const cellA = el("div", { class: "wave-slot" });
    const cellB = el("div", { class: "wave-slot" });
    const pick = el("button", { type: "button", class: "ghost listen", text: "Listen", "aria-label": `Listen to ${s.name} A/B` });
    const row = el(
      "div",
      { class: `compare-row change-${s.change}`, "data-stem": s.name },
      el("div", { class: "compare-name" }, el("strong", { text: s.name }), el("span", { class: "badge", text: s.change }), pick),
      cellA,
      cellB,
      el("div", { class: "annotations" }),
    );
    box.append(row);
    pick.addEventListener("click", () => selectAbStem(s.name));
    for (const [side, cell, stem] of [["A", cellA, stemsA[s.name]], ["B", cellB, stemsB[s.name]]]) {
      if (stem) {
        drawWaveform(cell, stem.blob_key, { height: 56, dragToSeek: false, onSeek: (t) => seekCompare(s.name, t) })
          .then((view) => {
            if (!state.compare || state.compare.review !== review) return; // a newer comparison replaced this one
            const wave = { stem: s.name, side, view, regions: null };
            abWaves.push(wave);
            if (review) wave.regions = review.attach(s.name, side, view).regions;
          })
          .catch((err) => {
            cell.textContent = "waveform unavailable";
            console.warn(err);
          });
      } else {
        cell.append(el("span", { class: "absent", text: "— not in this commit —" }));
      }
    }
  }
  const body = $("diff").tBodies[0];
  body.innerHTML = "";
  for (const s of diff.stems) {
    const cellFor = (blob, stems) => {
      const stem = Object.values(stems).find((x) => x.blob_key === blob);
      return blob ? `${stem ? stem.name : s.name} (${shortId(blob)})` : "—";
    };
    body.append(el("tr", { class: "change-" + s.change }, el("th", { scope: "row", text: s.name }), el("td", { text: s.change }), el("td", { text: cellFor(s.base_blob, stemsA) }), el("td", { text: cellFor(s.head_blob, stemsB) })));
  }
  const meta = $("diff-meta").tBodies[0];
  meta.innerHTML = "";
  const short = (v) => (v.length > 60 ? v.slice(0, 59) + "…" : v || "—");
  for (const m of diff.metadata) meta.append(el("tr", {}, el("th", { scope: "row", text: m.field }), el("td", { text: short(m.base_value) }), el("td", { text: short(m.head_value) })));
  if (!diff.metadata.length) meta.append(el("tr", {}, el("td", { colspan: 3, class: "hint", text: "no setting changed" })));
  const first = diff.stems.find((s) => s.change !== "unchanged") || diff.stems[0];
  if (first) selectAbStem(first.name);
}

// Load both versions of one stem into the A/B engine; they play in sync and the switch only
// changes which one is heard, so the playhead stays where it is.
async function selectAbStem(name, seekTo) {
  const { a, b } = state.compare;
  const wasPlaying = ab.playing;
  const position = seekTo !== undefined ? seekTo : ab.position();
  const tracks = [];
  const sa = a.stems.find((s) => s.name === name), sb = b.stems.find((s) => s.name === name);
  if (sa) tracks.push({ name: "A", download_url: sa.download_url });
  if (sb) tracks.push({ name: "B", download_url: sb.download_url });
  state.compare.stem = name;
  $("ab-stem").textContent = `listening to “${name}”` + (sa && sb ? "" : sa ? " (only in A)" : " (only in B)");
  for (const row of document.querySelectorAll(".compare-row")) row.classList.toggle("listening", row.dataset.stem === name);
  await act("compare-error", async () => {
    if (!(await ab.load(tracks))) return;
    setAbSide(abSide);
    ab.seek(Math.min(position, ab.duration));
    if (wasPlaying) await ab.play();
  });
}

function setAbSide(side) {
  abSide = side;
  for (const t of ab.tracks) ab.set(t.name, { mute: t.name !== side });
  $("ab-a").setAttribute("aria-checked", String(side === "A"));
  $("ab-b").setAttribute("aria-checked", String(side === "B"));
}
$("ab-a").addEventListener("click", () => setAbSide("A"));
$("ab-b").addEventListener("click", () => setAbSide("B"));
$("ab-play").addEventListener("click", () => ab.toggle());
ab.onChange(() => {
  const position = ab.position();
  $("ab-time").textContent = `${formatTime(position)} / ${formatTime(ab.duration)} · ${abSide}`;
  $("ab-play").textContent = ab.playing ? "❚❚ Pause" : "▶ Play";
  for (const w of abWaves) w.view.show(w.stem === (state.compare && state.compare.stem) ? position : 0);
});
mergeAb.onChange(() => {
  for (const row of document.querySelectorAll(".conflict")) {
    const playing = mergeAb.playing && state.conflicts && state.conflicts.listening === row.dataset.stem;
    row.classList.toggle("listening", Boolean(playing));
    for (const button of row.querySelectorAll("button[data-side]")) {
      const on = playing && !mergeAb.track(button.dataset.side).mute;
      button.textContent = (on ? "❚❚ Pause " : "▶ Play ") + button.dataset.label;
    }
  }
});

// ---- merge -----------------------------------------------------------------------------

$("merge-run").addEventListener("click", (e) => act("merge-error", () => merge({}), e.target));
$("merge-resolve").addEventListener("click", (e) =>
  act(
    "merge-error",
    async () => {
      const choices = {};
      for (const c of state.conflicts.conflicts) {
        const picked = document.querySelector(`input[name="resolve-${CSS.escape(c.name)}"]:checked`);
        if (!picked) throw new ApiError(400, { detail: `choose ours or theirs for “${c.name}”` });
        choices[c.name] = picked.value;
      }
      await merge(choices);
    },
    e.target,
  ),
);

async function merge(stemStrategies) {
  requireRepo();
  const from = $("merge-from").value;
  if (!from) throw new ApiError(400, { detail: "there is no other branch to merge" });
  $("merge-status").textContent = "";
  const body = { from_ref: from, into_branch: state.branch, stem_strategies: stemStrategies, message: `Merge ${from} into ${state.branch}` };
  const head = branchHead(state.branch);
  if (head) body.expected_head = head;
  let result;
  try {
    result = await api("POST", `/api/vcs/merge/${state.repo.id}`, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409 && err.body.conflicts && err.body.conflicts.length) {
      showConflicts(from, err.body.conflicts);
      return;
    }
    throw err;
  }
  state.conflicts = null;
  mergeAb.clear();
  $("conflicts").hidden = true;
  if (result.up_to_date) {
    $("merge-status").textContent = `${state.branch} already has everything from ${from}.`;
    return;
  }
  $("merge-status").textContent = result.fast_forward
    ? `${state.branch} fast-forwarded to ${from}.`
    : `Merged ${from} into ${state.branch} as ${shortId(result.commit.id)}.`;
  await refreshRepo();
  await viewCommit(result.commit || (await getCommit(branchHead(state.branch))));
}

function showConflicts(from, conflicts) {
  state.conflicts = { from, conflicts, listening: null };
  $("conflicts").hidden = false;
  const list = $("conflict-list");
  list.innerHTML = "";
  for (const c of conflicts) {
    const side = (label, value, blob) => {
      const wave = el("div", { class: "wave-slot" });
      const play = el("button", { type: "button", class: "secondary", "data-side": value, "data-label": label, text: `▶ Play ${label}`, disabled: !blob });
      play.addEventListener("click", () => listenConflict(c, value));
      const radio = el("input", { type: "radio", name: `resolve-${c.name}`, value });
      const choice = el("label", { class: "choice" }, radio, ` keep ${label}`);
      if (blob) drawWaveform(wave, blob, { height: 44 }).catch(() => (wave.textContent = "waveform unavailable"));
      else wave.append(el("span", { class: "absent", text: "— removed on this side —" }));
      return el("div", { class: "conflict-side" }, choice, wave, play);
    };
    list.append(
      el(
        "div",
        { class: "conflict", "data-stem": c.name },
        el("h3", { text: c.name }),
        el("div", { class: "conflict-sides" }, side(`ours (${state.branch})`, "ours", c.ours_blob), side(`theirs (${from})`, "theirs", c.theirs_blob)),
      ),
    );
  }
}

async function listenConflict(conflict, which) {
  const key = conflict.name;
  if (state.conflicts.listening !== key) {
    const tracks = [];
    if (conflict.ours_blob) tracks.push({ name: "ours", download_url: stemUrl(conflict.ours_blob) });
    if (conflict.theirs_blob) tracks.push({ name: "theirs", download_url: stemUrl(conflict.theirs_blob) });
    state.conflicts.listening = key;
    await act("merge-error", () => mergeAb.load(tracks));
  }
  const already = mergeAb.playing && !mergeAb.track(which).mute;
  for (const t of mergeAb.tracks) mergeAb.set(t.name, { mute: t.name !== which });
  if (already) mergeAb.pause();
  else if (!mergeAb.playing) await mergeAb.play();
}

// ---- merge requests: propose, review with the sound diff and comments, merge ---------------------------

async function loadMergeRequests() {
  if (!state.repo) return;
  const out = await api("GET", `/api/vcs/merge-requests/${state.repo.id}?page_size=20`);
  state.mergeRequests = out.merge_requests;
  const list = $("mr-list");
  list.innerHTML = "";
  for (const m of out.merge_requests) {
    const verdicts = m.reviews.filter((r) => r.current);
    const approvals = verdicts.filter((r) => r.verdict === "approve").length;
    const changes = verdicts.filter((r) => r.verdict === "request_changes").length;
    const bits = [`${m.source_branch} → ${m.target_branch}`, m.author_username];
    if (approvals) bits.push(`${approvals} approved`);
    if (changes) bits.push(`${changes} asked for changes`);
    list.append(
      el(
        "li",
        { class: "mr-item", "data-number": m.number },
        el("button", { type: "button", class: "link", onclick: () => act("mr-error", () => openMergeRequest(m.number)) }, el("span", { class: "mr-number", text: `#${m.number}` }), el("span", { class: "mr-name", text: m.title })),
        el("span", { class: `badge state-${m.state}`, text: m.state }),
        el("span", { class: "hint mr-bits", text: bits.join(" · ") }),
      ),
    );
  }
  if (!out.merge_requests.length) list.append(el("li", { class: "hint", text: $("mr-propose").hidden ? "No merge requests yet." : "No merge requests yet: propose a branch below." }));
}

$("mr-open").addEventListener("click", (e) =>
  act(
    "mr-error",
    async () => {
      requireRepo();
      const source = $("mr-source").value;
      if (!source) throw new ApiError(400, { detail: "create a branch to propose first" });
      const title = $("mr-new-title").value.trim() || `Merge ${source} into ${state.branch}`;
      const m = await api("POST", `/api/vcs/merge-requests/${state.repo.id}`, { source_branch: source, target_branch: state.branch, title });
      $("mr-new-title").value = "";
      await loadMergeRequests();
      await openMergeRequest(m.number);
    },
    e.target,
  ),
);

// A request in the compare panel: what it changes since the merge base (A) against its proposed
// head (B), the sound diff of those stems, its comments, reviews, and the merge for writers.
async function openMergeRequest(number) {
  requireRepo();
  const m = await api("GET", `/api/vcs/merge-requests/${state.repo.id}/${number}`);
  const ev = m.evaluation;
  const changes = ev ? ev.changes : [];
  const side = (id, message, key) => ({
    id,
    message,
    stems: changes.filter((c) => c[key]).map((c) => ({ name: c.name, blob_key: c[key], download_url: stemUrl(c[key]) })),
  });
  const base = ev && ev.merge_bases.length ? ev.merge_bases[0] : m.target_head;
  const review = newReview({ merge_request: m.id }, `/api/vcs/merge-requests/${state.repo.id}/${m.number}/audio-diff`, base);
  state.compare = {
    a: side(base, `${m.target_branch} (merge base)`, "base_blob"),
    b: side(m.source_head, `${m.source_branch} (proposed)`, "head_blob"),
    diff: { stems: changes, metadata: [] },
    stem: null,
    review,
    mr: m,
  };
  $("compare-panel").hidden = false;
  $("compare-pickers").hidden = true;
  $("compare-title").textContent = "Merge request";
  $("mr-status").textContent = "";
  renderMergeRequest(m);
  renderCompare();
  if (!changes.length) $("compare-stems").append(el("p", { class: "hint", text: m.state === "open" ? "This request changes no stem." : `This request is ${m.state}.` }));
  startReview(review, Boolean(changes.length && m.state === "open"));
  $("compare-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

function renderMergeRequest(m) {
  $("mr-bar").hidden = false;
  $("mr-title").textContent = `#${m.number} ${m.title}`;
  const stateBadge = $("mr-state");
  stateBadge.textContent = m.state;
  stateBadge.className = `badge state-${m.state}`;
  const from = m.source_repo_id && m.source_repo_id !== m.target_repo_id ? `a fork's ${m.source_branch}` : m.source_branch;
  $("mr-meta").textContent = `${m.author_username} proposes ${from} → ${m.target_branch} · opened ${when(m.created_at)}` + (m.merge_commit_id ? ` · merged as ${shortId(m.merge_commit_id)}` : "");
  $("mr-description").textContent = m.description;
  $("mr-description").hidden = !m.description;
  const reviews = $("mr-reviews");
  reviews.innerHTML = "";
  const words = { approve: "approved", request_changes: "requested changes", comment: "commented" };
  for (const r of m.reviews) {
    reviews.append(el("li", { class: `chip verdict-${r.verdict}` + (r.current ? "" : " outdated"), title: r.body || "", text: `${r.reviewer_username} ${words[r.verdict] || r.verdict}` + (r.current ? "" : " (earlier head)") }));
  }
  if (!m.reviews.length) reviews.append(el("li", { class: "hint", text: "no reviews yet" }));
  const conflicts = m.evaluation ? m.evaluation.conflicts : [];
  $("mr-conflicts").hidden = !conflicts.length;
  $("mr-conflicts").textContent = conflicts.length ? `Changed on both sides: ${conflicts.map((c) => c.name).join(", ")}. Merging keeps the proposed version of these stems.` : "";
  const open = m.state === "open";
  const writer = state.repo && (state.repo.role === "write" || state.repo.role === "owner");
  $("mr-actions").hidden = !open;
  const own = m.author_username === session.username;
  $("mr-approve").disabled = own;
  $("mr-request-changes").disabled = own;
  $("mr-approve").title = own ? "You cannot review your own request" : "";
  $("mr-request-changes").title = $("mr-approve").title;
  if (own && open) $("mr-status").textContent = "Your request: collaborators approve it or ask for changes here.";
  $("mr-merge").hidden = !writer;
  $("mr-merge").textContent = `Merge into ${m.target_branch}`;
}

function leaveMergeRequest() {
  $("mr-bar").hidden = true;
  $("compare-pickers").hidden = false;
  $("compare-title").textContent = "Compare";
  $("mr-status").textContent = "";
  if (state.compare && state.compare.mr) {
    if (state.compare.review) state.compare.review.close();
    state.compare = null;
    ab.clear();
    $("compare-view").hidden = true;
  }
}
$("mr-leave").addEventListener("click", () => {
  leaveMergeRequest();
  $("compare-panel").hidden = !state.graph || state.graph.nodes.length < 2;
});

async function reviewMergeRequest(verdict) {
  const m = state.compare && state.compare.mr;
  if (!m) return;
  const updated = await api("POST", `/api/vcs/merge-requests/${state.repo.id}/${m.number}/reviews`, { verdict, body: $("mr-review-body").value.trim() });
  $("mr-review-body").value = "";
  state.compare.mr = updated;
  renderMergeRequest(updated);
  $("mr-status").textContent = verdict === "approve" ? "You approved this request." : "You asked for changes.";
  await loadMergeRequests();
}
$("mr-approve").addEventListener("click", (e) => act("compare-error", () => reviewMergeRequest("approve"), e.target));
$("mr-request-changes").addEventListener("click", (e) => act("compare-error", () => reviewMergeRequest("request_changes"), e.target));
$("mr-merge").addEventListener("click", (e) =>
  act(
    "compare-error",
    async () => {
      const m = state.compare && state.compare.mr;
      if (!m) return;
      const conflicts = m.evaluation ? m.evaluation.conflicts : [];
      const body = conflicts.length ? { strategy: "theirs" } : {};
      let out;
      try {
        out = await api("POST", `/api/vcs/merge-requests/${state.repo.id}/${m.number}/merge`, body);
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && err.body.request) {
          state.compare.mr = err.body.request;
          renderMergeRequest(err.body.request);
        }
        throw err;
      }
      state.compare.mr = out.request;
      renderMergeRequest(out.request);
      $("mr-status").textContent = out.merge && out.merge.commit ? `Merged as ${shortId(out.merge.commit.id)}.` : "Merged.";
      await refreshRepo();
      const head = state.branch === out.request.target_branch ? branchHead(state.branch) : "";
      if (head) await viewCommit(await getCommit(head)); // the merged result, in the mixer and the history
    },
    e.target,
  ),
);

// ---- blame -----------------------------------------------------------------------------

$("blame-run").addEventListener("click", (e) =>
  act(
    "blame-error",
    async () => {
      requireRepo();
      const ref = state.view ? state.view.id : state.branch;
      const out = await api("GET", `/api/vcs/blame/${state.repo.id}?ref=${enc(ref)}`);
      const body = $("blame").tBodies[0];
      body.innerHTML = "";
      // One line a stem: long names and messages are cut short; the whole text is in each cell's title.
      for (const entry of out.entries) {
        const c = entry.commit;
        body.append(
          el(
            "tr",
            { "data-stem": entry.stem },
            el("th", { scope: "row", text: entry.stem, title: entry.stem }),
            el("td", { class: "blame-commit", title: `${c.id}\n${c.message}` }, el("code", { text: shortId(c.id) }), " " + c.message),
            el("td", { text: c.author_username, title: c.author_username }),
            el("td", { class: "hint", text: ago(c.timestamp), title: when(c.timestamp) }),
          ),
        );
      }
      $("blame").hidden = false;
    },
    e.target,
  ),
);

showAccount();
