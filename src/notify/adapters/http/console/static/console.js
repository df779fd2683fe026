// notify console: the few things a server-rendered page cannot do by itself. No framework, no build step.
"use strict";

const csrf = () => document.body.dataset.csrf || "";

// Times: shown in the browser's zone, UTC kept on hover.
function localTimes(root) {
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const short = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    el.textContent = (el.classList.contains("short") ? short : fmt).format(d);
    el.title = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  });
}

function timeCell(iso) {
  const t = document.createElement("time");
  t.className = "short";  // the feed is about now: the time of day, the full date on hover
  t.setAttribute("datetime", iso);
  t.textContent = iso;
  return t;
}

function statusBadge(status) {
  const s = document.createElement("span");
  s.className = "status s-" + status;
  s.textContent = status;
  return s;
}

// --- small behaviours ----------------------------------------------------------------------------------
function wireForms() {
  document.querySelectorAll("select[data-autosubmit]").forEach((el) =>
    el.addEventListener("change", () => el.form.submit()));
  document.querySelectorAll("input[data-select-all]").forEach((all) =>
    all.addEventListener("change", () => {
      all.closest("form").querySelectorAll(`input[name="${all.dataset.selectAll}"]`)
        .forEach((box) => { box.checked = all.checked; });
    }));
}

// --- activity: figures refreshed, live feed over the WebSocket -------------------------------------------
function refreshFigures() {
  const box = document.getElementById("figures");
  if (!box) return;
  setInterval(async () => {
    try {
      const r = await fetch(box.dataset.refresh, { credentials: "same-origin" });
      if (r.ok) { box.innerHTML = await r.text(); localTimes(box); }
    } catch (e) { /* the next round tries again */ }
  }, 5000);
}

function liveFeed() {
  const feed = document.getElementById("feed");
  if (!feed) return;
  const state = document.getElementById("live-state");
  const wanted = JSON.parse(feed.dataset.filter || "{}");
  const admin = feed.dataset.admin === "yes";
  const maxRows = 200;
  let delay = 1000;

  const matches = (e) =>
    (!wanted.tenant || e.tenant_id === undefined || e.tenant_id === wanted.tenant) &&
    (!wanted.channel || e.channel === wanted.channel) &&
    (!wanted.status || e.status === wanted.status) &&
    (!wanted.priority || e.priority === wanted.priority) &&
    (!wanted.batch || e.batch_id === wanted.batch);

  function show(e) {
    const empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.dataset.id = e.notification_id;
    tr.dataset.status = e.status;
    const cells = [];
    const td = (child) => { const c = document.createElement("td"); if (child !== undefined) c.append(child); cells.push(c); return c; };
    td(timeCell(e.timestamp));
    const a = document.createElement("a");
    a.href = feed.dataset.link + e.notification_id + (e.tenant_id ? "?tenant=" + encodeURIComponent(e.tenant_id) : "");
    const code = document.createElement("code");
    code.textContent = e.notification_id;
    a.append(code);
    td(a);
    if (admin) td(e.tenant_id || "");
    td(e.channel);
    td(e.priority || "");
    const change = td();
    if (e.previous_status) { change.append(statusBadge(e.previous_status), " → "); }
    change.append(statusBadge(e.status));
    td(e.provider || "");
    const err = td(e.error || "");
    err.className = "clip error-text";
    tr.append(...cells);
    localTimes(tr);
    feed.prepend(tr);
    while (feed.rows.length > maxRows) feed.deleteRow(-1);
    // The "recent" table shows each notification's status now.
    document.querySelectorAll(`tr[data-id="${e.notification_id}"] .row-status`).forEach((cell) => {
      cell.replaceChildren(statusBadge(e.status));
    });
  }

  async function connect() {
    state.textContent = "connecting…";
    let url;
    try {
      const r = await fetch("/console/live-token", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf() },
      });
      if (r.status === 401) { state.textContent = "signed out: reload to sign in"; return; }
      url = (await r.json()).url;
    } catch (e) { return retry(); }
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + url);
    ws.onopen = () => { state.textContent = "live"; state.classList.add("on"); delay = 1000; };
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.status && matches(e)) show(e);
    };
    ws.onclose = () => { state.classList.remove("on"); retry(); };
  }
  function retry() {
    state.textContent = "reconnecting…";
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  }
  connect();
}

// --- template editor: live preview with inline errors ----------------------------------------------------
function templatePreview() {
  const form = document.getElementById("template-form");
  if (!form) return;
  const vars = document.getElementById("t-vars");
  const body = document.getElementById("preview-body");
  const subject = document.getElementById("preview-subject");
  let timer = null;
  let seq = 0;

  function showErrors(errors) {
    document.querySelectorAll(".field-error").forEach((p) => {
      p.textContent = errors[p.dataset.field] || "";
    });
  }

  async function preview() {
    let variables;
    try { variables = JSON.parse(vars.value || "{}"); }
    catch (e) { showErrors({ variables: "not valid JSON: " + e.message }); return; }
    const mine = ++seq;
    const r = await fetch(form.dataset.preview, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({
        channel: form.channel.value, subject: form.subject.value || null,
        body: form.body.value, variables: variables,
      }),
    });
    if (mine !== seq || !r.ok) return;
    const answer = await r.json();
    if (answer.errors) {
      showErrors(answer.errors);
      body.classList.add("stale");
    } else {
      showErrors({});
      body.classList.remove("stale");
      body.textContent = answer.content;
      subject.textContent = answer.subject || "—";
    }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(preview, 250); };
  form.addEventListener("input", soon);
  vars.addEventListener("input", soon);
  preview();
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  wireForms();
  refreshFigures();
  liveFeed();
  templatePreview();
});
