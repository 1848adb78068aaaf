// Review on the compare waveforms: where the sound changed (the perceptual audio diff, a separator
// task), and comments anchored to a stem and a time range, with threads, replies and resolve.
//
// A Review belongs to one comparison (two commits, or a merge request). The compare view hands it
// each waveform as it is drawn (attach); the review draws the changed regions on both sides (the
// base side shifted by the measured offset) and the comments of each side on its waveforms (new
// comments go on the head, B; those already on the base commit, A, are drawn and answered there),
// with the vendored wavesurfer regions plugin, and writes each stem's summary into its row's
// .annotations slot. The author of a comment may edit or delete it from its thread.

import RegionsPlugin from "./vendor/regions.esm.js";
import { ago, api, ApiError, enc, followTask, formatTime, session, when } from "./api.js";
import { el } from "./dom.js";

export const REGION_COLORS = {
  diff: "rgba(255, 170, 51, 0.30)",
  diffEdge: "#ffb547",
  comment: "rgba(60, 207, 165, 0.35)",
  commentEdge: "#3ccfa5",
  resolved: "rgba(169, 175, 191, 0.22)",
  resolvedEdge: "#8a90a0",
  selection: "rgba(139, 147, 255, 0.35)",
};
const DIFF_WAIT_MS = 5 * 60 * 1000; // the page stops following a comparison after this long
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "dead"]);

function range(start, end) {
  return `${formatTime(start)}–${formatTime(end)}`;
}

function signed(value, digits) {
  const v = Number(value || 0);
  return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
}

// The stem's verdict in words: "unchanged", "gain change +3.0 dB", "2 changed regions".
export function verdict(d) {
  if (!d) return "";
  if (d.status === "unchanged") return d.decoded === false ? "identical audio" : "no audible change";
  if (d.status === "added" || d.status === "removed") return d.status;
  if (d.status === "gain_only") return `gain change ${signed(d.gain_db, 1)} dB`;
  const n = (d.regions || []).length;
  let text = `${n} changed region${n === 1 ? "" : "s"}`;
  if (Math.abs(d.gain_db || 0) >= 0.05) text += ` · gain ${signed(d.gain_db, 1)} dB`;
  return text;
}

// Loudness, peak, tempo, key and duration deltas, each a short chip.
export function deltas(summary) {
  if (!summary || !summary.from) return [];
  const a = summary.from, b = summary.to;
  const key = (x) => `${x.key_tonic} ${x.key_mode}`.trim();
  return [
    `loudness ${signed(summary.loudness_delta_lu, 1)} LU`,
    `peak ${signed(summary.peak_delta_db, 1)} dB`,
    summary.tempo_delta_bpm == null ? "tempo unclear" : `tempo ${signed(summary.tempo_delta_bpm, 1)} BPM`,
    summary.key_reliable === false ? "key unclear" : summary.key_changed ? `key ${key(a)} → ${key(b)}` : `key ${key(b)}`,
    `duration ${signed(summary.duration_delta_s, 2)} s`,
  ];
}

export class Review {
  // repoId: the repository; target: {commit_id} or {merge_request} (where comments go and are listed);
  // base: the commit of side A, whose own comments are drawn on A (optional);
  // diffPath: the GET that answers 202 with the diff task; els: {root, progress, label, threads, error};
  // seek(stem, seconds, side): play position (and side) of the compare player;
  // canResolve(comment): whether to offer resolve.
  constructor({ repoId, target, base, diffPath, els, seek, canResolve }) {
    this.repoId = repoId;
    this.target = target;
    this.base = base && base !== target.commit_id ? base : "";
    this.diffPath = diffPath;
    this.els = els;
    this.seek = seek;
    this.canResolve = canResolve || (() => true);
    this.waves = []; // {stem, side, view, regions, ready}
    this.result = null; // the diff task's result.stems
    this.comments = []; // both sides', oldest first; each with side "A" or "B"
    this.controller = new AbortController();
    this.closed = false;
    this.selection = null; // a region the user dragged on a head waveform
  }

  close() {
    this.closed = true;
    this.controller.abort();
    for (const w of this.waves) w.regions.clearRegions();
  }

  // A waveform of the compare view: side "A" (base) or "B" (head). Diff regions go on both sides;
  // comments and new selections on the head.
  attach(stem, side, view) {
    const regions = view.ws.registerPlugin(RegionsPlugin.create());
    const wave = { stem, side, view, regions, ready: false };
    this.waves.push(wave);
    regions.on("region-clicked", (region, event) => {
      event.stopPropagation();
      this.clicked(wave, region);
    });
    if (side === "B") {
      regions.enableDragSelection({ color: REGION_COLORS.selection, id: "selection" }, 6);
      regions.on("region-created", (region) => {
        if (region.id.startsWith("selection")) this.openForm(stem, region.start, region.end, region);
      });
    }
    // A region added before the waveform knows its duration is clamped to 0 s: draw once it does.
    const ready = () => {
      wave.ready = true;
      this.drawStem(stem);
    };
    if (view.ws.getDuration()) ready();
    else view.ws.once("ready", ready);
    return wave;
  }

  // ---- the perceptual diff ----------------------------------------------------------------

  async runDiff() {
    const { progress, label } = this.els;
    progress.hidden = false;
    progress.value = 0;
    label.textContent = "comparing the sound…";
    const timer = setTimeout(() => this.controller.abort(), DIFF_WAIT_MS);
    try {
      const out = await api("GET", this.diffPath);
      if (this.closed) return;
      let task = out.task;
      if (!task) {
        label.textContent = "no stem changes: nothing to compare";
        progress.hidden = true;
        return;
      }
      if (!TERMINAL.has(task.status)) {
        task = await followTask(task.task_id, (ev) => this.showProgress(ev), this.controller.signal);
      }
      if (this.closed) return;
      if (task.status !== "succeeded") throw new ApiError(500, { detail: `the comparison ${task.status}: ${task.error || "no reason given"}` });
      this.result = (task.result && task.result.stems) || {};
      progress.value = 1;
      progress.hidden = true;
      const changed = Object.values(this.result).filter((d) => d.status !== "unchanged").length;
      label.textContent = changed ? `sound compared: ${changed} stem${changed === 1 ? "" : "s"} differ` : "sound compared: no audible change";
      for (const stem of Object.keys(this.result)) this.drawStem(stem);
    } catch (err) {
      if (this.closed) return;
      progress.hidden = true;
      label.textContent = "";
      if (err.name === "AbortError") this.els.error.textContent = "the sound comparison is taking long; press Compare to look again";
      else this.els.error.textContent = err instanceof ApiError ? err.message : "the sound comparison stopped: " + err.message;
    } finally {
      clearTimeout(timer);
    }
  }

  showProgress(ev) {
    const { progress, label } = this.els;
    progress.value = ev.progress || 0;
    const pct = Math.round((ev.progress || 0) * 100);
    label.textContent = `comparing the sound · ${ev.stage || ev.status} · ${pct}%`;
  }

  // ---- comments -----------------------------------------------------------------------------

  async loadComments() {
    const list = (query) => api("GET", `/api/vcs/comments/${this.repoId}?${query}&page_size=200`).then((out) => out.comments);
    const query = this.target.commit_id ? `commit=${enc(this.target.commit_id)}` : `merge_request=${enc(this.target.merge_request)}`;
    const [head, base] = await Promise.all([list(query), this.base ? list(`commit=${enc(this.base)}`) : []]);
    if (this.closed) return;
    const seen = new Set(head.map((c) => c.id));
    this.comments = head
      .map((c) => Object.assign(c, { side: "B" }))
      .concat(base.filter((c) => !seen.has(c.id)).map((c) => Object.assign(c, { side: "A" })))
      .sort((x, y) => x.created_at - y.created_at);
    this.renderThreads();
    for (const stem of new Set(this.waves.map((w) => w.stem))) this.drawStem(stem);
  }

  // Threads numbered oldest first; a deleted first comment with no replies leaves nothing to show
  // (the others keep their numbers).
  threads() {
    const roots = this.comments.filter((c) => !c.parent_id);
    return roots
      .map((root, i) => ({ root, number: i + 1, replies: this.comments.filter((c) => c.parent_id === root.id) }))
      .filter((t) => !t.root.deleted || t.replies.length);
  }

  async addComment(body) {
    const comment = await api("POST", `/api/vcs/comments/${this.repoId}`, Object.assign({}, this.target, body));
    await this.loadComments();
    return comment;
  }

  // ---- drawing -------------------------------------------------------------------------------

  drawStem(stem) {
    const d = this.result && this.result[stem];
    const threads = this.threads().filter((t) => t.root.stem === stem && t.root.start_s !== null);
    for (const wave of this.waves.filter((w) => w.stem === stem && w.ready)) {
      for (const r of [...wave.regions.getRegions()]) if (r !== this.selection) r.remove();
      const duration = wave.view.duration || 0;
      const shift = wave.side === "A" && d ? -(d.offset_s || 0) : 0; // base time = head time - offset
      for (const [i, r] of ((d && d.regions) || []).entries()) {
        const start = Math.max(0, r.start_s + shift), end = Math.min(duration, r.end_s + shift);
        if (end <= start) continue;
        const region = wave.regions.addRegion({ id: `diff-${i}`, start, end, color: REGION_COLORS.diff, drag: false, resize: false });
        decorate(region, "diff", `changed ${range(r.start_s, r.end_s)} · click to comment`);
      }
      for (const t of threads.filter((x) => x.root.side === wave.side)) {
        const c = t.root;
        const end = Math.max(Math.min(c.end_s, duration), c.start_s + 0.02);
        const region = wave.regions.addRegion({
          id: `comment-${c.id}`,
          start: c.start_s,
          end,
          color: c.resolved ? REGION_COLORS.resolved : REGION_COLORS.comment,
          content: `#${t.number}`,
          drag: false,
          resize: false,
        });
        const text = c.deleted ? "(deleted)" : `${c.author_username}: ${c.body.slice(0, 80)}`;
        decorate(region, c.resolved ? "resolved" : "comment", `#${t.number} ${text}`);
      }
    }
    this.renderSummary(stem);
  }

  renderSummary(stem) {
    const row = this.els.root.querySelector(`.compare-row[data-stem="${CSS.escape(stem)}"]`);
    if (!row) return;
    const slot = row.querySelector(".annotations");
    const form = slot.querySelector(".comment-form");
    slot.replaceChildren();
    const d = this.result && this.result[stem];
    if (d) {
      const box = el("div", { class: `audio-summary status-${d.status}` });
      box.append(el("span", { class: "verdict", text: verdict(d) }));
      for (const r of (d.regions || []).slice(0, 4)) {
        box.append(el("button", { type: "button", class: "chip-button diff", text: range(r.start_s, r.end_s), title: "Listen here and comment on this span", onclick: () => { this.seek(stem, r.start_s); this.openForm(stem, r.start_s, r.end_s); } }));
      }
      if ((d.regions || []).length > 4) box.append(el("span", { class: "hint", text: `+${d.regions.length - 4} more` }));
      for (const text of deltas(d.summary)) box.append(el("span", { class: "delta", text }));
      slot.append(box);
    }
    if (form) slot.append(form);
  }

  clicked(wave, region) {
    if (region.id.startsWith("comment-")) {
      const id = region.id.slice("comment-".length);
      this.seek(wave.stem, region.start, wave.side);
      this.focusThread(id);
      return;
    }
    if (region.id.startsWith("diff-")) {
      const d = this.result && this.result[wave.stem];
      const shift = wave.side === "A" && d ? d.offset_s || 0 : 0; // back to the head's time
      this.seek(wave.stem, region.start + shift);
      this.openForm(wave.stem, region.start + shift, region.end + shift);
    }
  }

  focusThread(id) {
    for (const item of this.els.threads.querySelectorAll(".thread")) item.classList.toggle("focused", item.dataset.comment === id);
    const item = this.els.threads.querySelector(`.thread[data-comment="${CSS.escape(id)}"]`);
    if (item) item.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  // ---- the comment form, in the row of its stem -------------------------------------------------

  // selection: the dragged region this form is about (kept while the form is open), if any.
  openForm(stem, start, end, selection = null) {
    const head = this.waves.find((w) => w.stem === stem && w.side === "B");
    if (!head) {
      this.els.error.textContent = `“${stem}” is not in the newer commit: comments go on its stems`;
      return;
    }
    const duration = head.view.duration || end;
    start = Math.max(0, Math.min(start, duration));
    end = Math.max(start, Math.min(end, duration));
    this.closeForm(selection);
    this.selection = selection;
    const row = this.els.root.querySelector(`.compare-row[data-stem="${CSS.escape(stem)}"]`);
    const text = el("textarea", { rows: 2, maxlength: 4000, required: true, placeholder: "What do you hear here?", "aria-label": "Comment" });
    const error = el("p", { class: "error", role: "alert" });
    const submit = el("button", { type: "submit", text: "Comment" });
    const form = el(
      "form",
      { class: "comment-form", "data-stem": stem },
      el("div", { class: "anchor" }, el("span", { class: "chip-button comment", text: `${stem} · ${range(start, end)}` }), el("span", { class: "hint", text: "comment on this span of the newer take" })),
      text,
      el("div", { class: "row" }, submit, el("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => this.closeForm() })),
      error,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = text.value.trim();
      if (!body) return;
      submit.disabled = true;
      error.textContent = "";
      try {
        const comment = await this.addComment({ body, stem, start_s: round3(start), end_s: round3(end) });
        this.closeForm();
        this.focusThread(comment.id);
      } catch (err) {
        error.textContent = err instanceof ApiError ? err.message : "the comment was not sent: " + err.message;
      } finally {
        submit.disabled = false;
      }
    });
    row.querySelector(".annotations").append(form);
    text.focus({ preventScroll: true });
    form.scrollIntoView({ block: "nearest" });
  }

  closeForm(keep = null) {
    for (const f of this.els.root.querySelectorAll(".comment-form")) f.remove();
    if (this.selection && this.selection !== keep) {
      this.selection.remove();
      this.selection = null;
    }
  }

  // ---- the thread list ----------------------------------------------------------------------------

  renderThreads() {
    const list = this.els.threads;
    list.replaceChildren();
    const threads = this.threads();
    const open = threads.filter((t) => !t.root.resolved).length;
    this.els.count.textContent = threads.length ? `${open} open · ${threads.length - open} resolved` : "";
    if (!threads.length) {
      list.append(el("p", { class: "hint", text: "No comments yet. Click a highlighted change, or drag across a waveform of B, to comment on that span." }));
      return;
    }
    for (const t of threads) list.append(this.threadItem(t));
  }

  threadItem({ root, number, replies }) {
    const anchored = root.stem && root.start_s !== null;
    const anchor = anchored
      ? el("button", { type: "button", class: "chip-button comment", text: `#${number} ${root.stem} · ${range(root.start_s, root.end_s)}`, title: `Play ${root.side} from here`, onclick: () => { this.seek(root.stem, root.start_s, root.side); this.focusThread(root.id); } })
      : el("span", { class: "chip-plain", text: `#${number}` + (root.stem ? ` ${root.stem}` : "") });
    const item = el(
      "article",
      { class: "thread" + (root.resolved ? " resolved" : ""), "data-comment": root.id, "data-side": root.side },
      el(
        "div",
        { class: "thread-head" },
        anchor,
        root.side === "A" ? el("span", { class: "badge side-a", text: "on A", title: "A comment on the older commit (A)" }) : null,
        root.resolved ? el("span", { class: "badge", text: "resolved" }) : null,
      ),
      this.commentView(root),
    );
    for (const r of replies) item.append(el("div", { class: "reply" }, this.commentView(r)));
    const reply = el("input", { placeholder: "Reply…", "aria-label": `Reply to comment ${number}`, maxlength: 4000 });
    const send = el("button", { type: "submit", class: "secondary", text: "Reply" });
    const actions = el("form", { class: "row thread-actions" }, reply, send);
    actions.addEventListener("submit", (e) => {
      e.preventDefault();
      if (reply.value.trim()) this.guard(send, () => this.addReply(root, reply.value.trim()));
    });
    if (this.canResolve(root)) {
      const toggle = el("button", { type: "button", class: "ghost", text: root.resolved ? "Reopen" : "Resolve" });
      toggle.addEventListener("click", () => this.guard(toggle, () => this.resolve(root, !root.resolved)));
      actions.append(toggle);
    }
    item.append(actions);
    return item;
  }

  async addReply(root, body) {
    await api("POST", `/api/vcs/comments/${this.repoId}`, { parent_id: root.id, body });
    await this.loadComments();
    this.focusThread(root.id);
  }

  async resolve(root, resolved) {
    await api("POST", `/api/vcs/comments/${this.repoId}/${root.id}/resolve`, { resolved });
    await this.loadComments();
  }

  // errorEl: where a refusal is shown (the compare panel's error line unless given).
  async guard(button, fn, errorEl = this.els.error) {
    errorEl.textContent = "";
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      errorEl.textContent = err instanceof ApiError ? err.message : "something went wrong: " + err.message;
    } finally {
      button.disabled = false;
    }
  }

  // One comment of a thread; its author gets Edit and Delete, and sees refusals beside it.
  commentView(c) {
    const mine = c.author_username === session.username;
    const meta = el("div", { class: "comment-meta" }, el("strong", { text: c.author_username + (mine ? " (you)" : "") }), el("span", { class: "hint", text: ago(c.created_at), title: when(c.created_at) }));
    const body = el("p", { class: "comment-body" + (c.deleted ? " hint" : ""), text: c.deleted ? "(deleted)" : c.body });
    const error = el("p", { class: "error", role: "alert" });
    const box = el("div", { class: "comment", "data-id": c.id }, meta, body, error);
    if (mine && !c.deleted) {
      const edit = el("button", { type: "button", class: "tool", text: "Edit", "aria-label": "Edit your comment" });
      const remove = el("button", { type: "button", class: "tool delete", text: "Delete", "aria-label": "Delete your comment" });
      edit.addEventListener("click", () => this.openEdit(c, box, body, error));
      remove.addEventListener("click", () => {
        if (!window.confirm("Delete this comment? Its replies stay.")) return;
        this.guard(remove, () => this.deleteComment(c), error);
      });
      meta.append(el("span", { class: "comment-tools" }, edit, remove));
    }
    return box;
  }

  openEdit(c, box, body, error) {
    if (box.querySelector(".edit-form")) return;
    const text = el("textarea", { rows: 2, maxlength: 4000, required: true, "aria-label": "Edit comment" });
    text.value = c.body;
    const save = el("button", { type: "submit", class: "secondary", text: "Save" });
    const form = el("form", { class: "edit-form" }, text, el("div", { class: "row" }, save, el("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => { form.remove(); body.hidden = false; error.textContent = ""; } })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = text.value.trim();
      if (!value) {
        error.textContent = "write something, or delete the comment";
        return;
      }
      if (value === c.body) {
        form.remove();
        body.hidden = false;
        return;
      }
      this.guard(save, () => this.editComment(c, value), error);
    });
    body.hidden = true;
    body.after(form);
    text.focus();
  }

  async editComment(c, body) {
    await api("PATCH", `/api/vcs/comments/${this.repoId}/${c.id}`, { body });
    await this.loadComments();
    this.focusThread(c.parent_id || c.id);
  }

  async deleteComment(c) {
    await api("DELETE", `/api/vcs/comments/${this.repoId}/${c.id}`);
    await this.loadComments();
  }
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

// Edges and a label for a region (the plugin sets its fill); style through the CSS object model,
// which the studio's content security policy allows.
function decorate(region, kind, title) {
  const node = region.element;
  if (!node) return;
  node.title = title;
  node.dataset.kind = kind;
  node.setAttribute("aria-label", title);
  if (kind === "diff") {
    // Hatched amber: reads as "changed" over any waveform colour, and apart from the flat teal comments.
    node.style.background = "repeating-linear-gradient(135deg, rgba(255, 181, 71, 0.50) 0 5px, rgba(255, 181, 71, 0.22) 5px 10px)";
    node.style.borderTop = `2px solid ${REGION_COLORS.diffEdge}`;
    node.style.borderBottom = `2px solid ${REGION_COLORS.diffEdge}`;
    node.style.borderLeft = `1px solid ${REGION_COLORS.diffEdge}`;
    node.style.borderRight = `1px solid ${REGION_COLORS.diffEdge}`;
    node.style.cursor = "pointer";
  } else {
    // Comments: a band in the lower part of the waveform, so a comment on a changed span stays visible.
    const edge = kind === "resolved" ? REGION_COLORS.resolvedEdge : REGION_COLORS.commentEdge;
    node.style.top = "58%";
    node.style.height = "42%";
    node.style.borderLeft = `2px solid ${edge}`;
    node.style.borderBottom = `3px solid ${edge}`;
    node.style.cursor = "pointer";
    node.style.zIndex = "3";
    if (region.content) {
      const label = region.content;
      label.style.font = "600 11px system-ui, sans-serif";
      label.style.color = "#0d1a16";
      label.style.background = edge;
      label.style.padding = "0 4px";
      label.style.borderRadius = "0 0 4px 0";
      label.style.display = "inline-block";
      label.style.lineHeight = "15px";
    }
  }
}
