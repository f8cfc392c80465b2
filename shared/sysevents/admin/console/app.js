// sysevents console: a small single-page app over the admin API (same origin). No build step.
"use strict";

const SUBJECT_TYPES = ["account", "auth", "user", "campaign", "data", "entity", "experience", "journey",
  "program", "provider", "query", "report", "rollup", "schema", "schematable", "scoring", "segment",
  "segmentcollection", "segmentml", "stream", "subscription", "topic-document", "variation", "work", "workflow"];
const VERBS = ["created", "updated", "deleted", "started", "syncing", "synced", "synccomplete", "completed", "failed"];
const SLACK_TEMPLATE = 'local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; ' +
  '{"text": "Alert notification: " + note + ". For more info go to: ' +
  'https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }';

const PROVIDERS = {
  webhook: { title: "Webhook", blurb: "POST each event as JSON to your endpoint", workflow: "webhook_system_events" },
  slack: { title: "Slack", blurb: "Alert a channel through an incoming webhook", workflow: "webhook_system_events" },
  bigquery: { title: "BigQuery", blurb: "Stream or backfill events into a table", workflow: "bigquery_system_events" },
  email: { title: "Email", blurb: "Email alerts, grouped and rate limited", workflow: "email_system_events" },
};

const API = location.pathname.replace(/\/console(\/.*)?$/, "");
const state = { key: sessionStorage.getItem("sysevents.key"), who: null };

// -- helpers ------------------------------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiFailure extends Error {
  constructor(status, message, field) { super(message); this.status = status; this.field = field; }
  toString() { return this.field ? `${this.field}: ${this.message}` : this.message; }
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { "X-API-Key": state.key, ...headers } };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const resp = await fetch(API + path, init);
  let doc = null;
  try { doc = await resp.json(); } catch (_) { /* empty body */ }
  if (!resp.ok) {
    const err = (doc && doc.error) || {};
    throw new ApiFailure(resp.status, err.message || `HTTP ${resp.status}`, err.field);
  }
  return doc;
}

const acct = (rest = "") => `/accounts/${encodeURIComponent(state.who.aid)}${rest}`;
const main = () => document.getElementById("main");
function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}
function errorBox(err) { return h("p", { class: "error", role: "alert" }, String(err)); }
function fmtTime(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
function setNav(name) {
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === name));
}

// -- sign in ------------------------------------------------------------------------------------------------
async function signIn(key) {
  state.key = key;
  const who = await api("GET", "/whoami");
  if (!who.aid) throw new ApiFailure(403, "This console is for account keys; an operator key manages accounts through the API.");
  state.who = who;
  sessionStorage.setItem("sysevents.key", key);
  document.getElementById("who-aid").textContent = `account ${who.aid}` + (who.name ? ` · ${who.name}` : "");
  document.getElementById("who").hidden = false;
  document.getElementById("nav").hidden = false;
}

function signOut() {
  sessionStorage.removeItem("sysevents.key");
  state.key = null; state.who = null;
  document.getElementById("who").hidden = true;
  document.getElementById("nav").hidden = true;
  location.hash = "#/signin";
  route();
}

function viewSignIn() {
  const node = document.getElementById("tpl-signin").content.cloneNode(true);
  main().replaceChildren(node);
  const form = document.getElementById("signin-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = document.getElementById("signin-error");
    try {
      await signIn(document.getElementById("signin-key").value.trim());
      location.hash = "#/jobs";
    } catch (err) {
      state.key = null;
      box.textContent = err.status === 401 ? `That key is not valid: ${err.message}` : String(err);
      box.hidden = false;
    }
  });
}

// -- jobs list ----------------------------------------------------------------------------------------------
async function jobStats(job) {
  try { return await api("GET", acct(`/jobs/${encodeURIComponent(job.id)}/stats`)); } catch (_) { return null; }
}

function rate(stats) {
  if (!stats) return "—";
  const c = stats.counters || stats;
  const done = (c.delivered || 0) + (c.dead_lettered || 0);
  if (!done) return "—";
  const pct = Math.round((100 * (c.delivered || 0)) / done);
  return h("span", { class: pct >= 95 ? "ok" : pct >= 80 ? "warn" : "bad" }, `${pct}%`);
}

async function viewJobs() {
  setNav("jobs");
  const body = h("tbody");
  const card = h("section", { class: "card" },
    h("div", { class: "row" }, h("h1", {}, "Jobs"), h("span", { class: "spacer" }),
      h("button", { class: "primary", onclick: () => { location.hash = "#/new"; } }, "New job")),
    h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["Name", "Workflow", "Events", "State", "Last delivery", "Success"].map((t) => h("th", {}, t)))),
      body));
  main().replaceChildren(card);
  let doc;
  try { doc = await api("GET", acct("/jobs?page_size=200")); } catch (err) { card.append(errorBox(err)); return; }
  if (!doc.jobs.length) {
    body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No jobs yet. Create one to start exporting events.")));
    return;
  }
  for (const job of doc.jobs) {
    const last = h("td", { class: "muted" }, "…");
    const success = h("td", {}, "…");
    body.append(h("tr", { class: "clickable", "data-job": job.id, onclick: () => { location.hash = `#/jobs/${encodeURIComponent(job.id)}`; } },
      h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.name || job.id)),
      h("td", {}, job.workflow),
      h("td", { class: "muted" }, describeFilter(job.config)),
      h("td", {}, h("span", { class: `state ${job.state}` }, job.state)),
      last, success));
    jobStats(job).then((s) => {
      last.textContent = s && s.last_delivered_at ? fmtTime(s.last_delivered_at) : "—";
      success.replaceChildren(rate(s));
    });
  }
}

function describeFilter(cfg) {
  const verbs = cfg.system_event_multiple_types || (cfg.system_event_type ? [cfg.system_event_type] : []);
  const src = cfg.system_event_sources;
  const where = !src ? "any subject" : Object.entries(src).map(([t, ids]) => (ids.length ? `${t}: ${ids.join(", ")}` : `every ${t}`)).join("; ");
  return `${verbs.join(", ")} · ${where}`;
}

// -- create -------------------------------------------------------------------------------------------------
function viewNew() {
  setNav("new");
  const form = { provider: null, types: new Set(), ids: {}, verbs: new Set(["failed"]), headers: [] };
  const root = h("section", { class: "card" });
  main().replaceChildren(root);
  stepSource();

  function steps(n) {
    return h("div", { class: "steps" }, ["Source", "Destination type", "Configure"].map((t, i) => h("span", { class: i <= n ? "done" : "" }, `${i + 1}. ${t}`)));
  }

  function stepSource() {
    root.replaceChildren(steps(0), h("h1", {}, "New job"),
      h("div", { class: "tiles" },
        h("button", { class: "tile selected", type: "button", "data-tile": "audit-logs", onclick: stepProvider },
          h("strong", {}, "Audit Logs"), h("span", { class: "muted" }, "System events of this account"))));
  }

  function stepProvider() {
    root.replaceChildren(steps(1), h("h1", {}, "Where should events go?"),
      h("div", { class: "tiles" }, Object.entries(PROVIDERS).map(([key, p]) =>
        h("button", { class: "tile", type: "button", "data-tile": key, onclick: () => { form.provider = key; stepConfigure(); } },
          h("strong", {}, p.title), h("span", { class: "muted" }, p.blurb)))));
  }

  function stepConfigure() {
    const p = PROVIDERS[form.provider];
    const error = h("div");
    const preview = h("pre", { id: "preview" }, "");
    const typeChecks = h("div", { class: "checks" }, SUBJECT_TYPES.map((t) =>
      h("label", { class: "inline" }, h("input", { type: "checkbox", value: t, "data-type": t, onchange: (e) => { e.target.checked ? form.types.add(t) : form.types.delete(t); renderIds(); } }), t)));
    const idsBox = h("div");
    const verbChecks = h("div", { class: "checks" }, VERBS.map((v) =>
      h("label", { class: "inline" }, h("input", { type: "checkbox", value: v, "data-verb": v, checked: form.verbs.has(v), onchange: (e) => { e.target.checked ? form.verbs.add(v) : form.verbs.delete(v); } }), v)));
    const name = h("input", { type: "text", id: "job-name", placeholder: `${p.title} export` });
    const dest = destinationFields(form.provider);
    const headersBox = h("div");
    const template = h("textarea", { class: "code", id: "json-template", spellcheck: "false", oninput: schedulePreview },
      form.provider === "slack" ? SLACK_TEMPLATE : "");
    const usesTemplate = form.provider === "webhook" || form.provider === "slack";
    const filterText = h("textarea", { class: "code", id: "job-filter", spellcheck: "false", rows: 2, oninput: scheduleCheck,
      placeholder: 'event.data.notes.contains("permission")' });
    const excludeText = h("textarea", { class: "code", id: "job-exclude", spellcheck: "false", rows: 2, oninput: scheduleCheck,
      placeholder: 'event.data.actor == "sync-bot"' });
    const filterCheck = h("div", { id: "filter-check", class: "muted" }, "");
    const excludes = () => excludeText.value.split("\n").map((x) => x.trim()).filter(Boolean);

    function renderIds() {
      idsBox.replaceChildren(...[...form.types].map((t) =>
        h("label", {}, `${t} ids (comma separated; empty = every ${t})`,
          h("input", { type: "text", "data-ids": t, value: (form.ids[t] || []).join(", "), oninput: (e) => { form.ids[t] = e.target.value.split(",").map((s) => s.trim()).filter(Boolean); } }))));
    }
    function renderHeaders() {
      headersBox.replaceChildren(...form.headers.map((hd, i) => h("div", { class: "kv" },
        h("input", { type: "text", placeholder: "Header name", value: hd.name, oninput: (e) => { hd.name = e.target.value; } }),
        h("input", { type: "password", placeholder: "Value (write-only)", value: hd.value, autocomplete: "off", oninput: (e) => { hd.value = e.target.value; } }),
        h("button", { type: "button", onclick: () => { form.headers.splice(i, 1); renderHeaders(); } }, "Remove"))),
      h("button", { type: "button", onclick: () => { form.headers.push({ name: "", value: "" }); renderHeaders(); } }, "Add header"));
    }
    let checkTimer = null;
    function scheduleCheck() { clearTimeout(checkTimer); checkTimer = setTimeout(runCheck, 300); }
    async function runCheck() {
      const body = {};
      if (filterText.value.trim()) body.filter = filterText.value;
      if (excludes().length) body.exclude = excludes();
      if (!Object.keys(body).length) { filterCheck.textContent = ""; filterCheck.classList.remove("bad"); return; }
      try {
        await api("POST", acct("/filters/validate"), body);
        filterCheck.textContent = "Filter OK";
        filterCheck.classList.remove("bad");
      } catch (err) {
        filterCheck.textContent = String(err);
        filterCheck.classList.add("bad");
      }
    }
    let timer = null;
    function schedulePreview() { clearTimeout(timer); timer = setTimeout(runPreview, 300); }
    async function runPreview() {
      try {
        const doc = await api("POST", acct("/templates/preview"), { json_template: template.value || null });
        preview.textContent = JSON.stringify(doc.rendered, null, 2);
        preview.classList.remove("bad");
      } catch (err) {
        preview.textContent = String(err);
        preview.classList.add("bad");
      }
    }

    function buildConfig() {
      const config = {};
      const verbs = [...form.verbs];
      if (verbs.length === 1) config.system_event_type = verbs[0]; else config.system_event_multiple_types = verbs;
      if (form.types.size) config.system_event_sources = Object.fromEntries([...form.types].map((t) => [t, form.ids[t] || []]));
      Object.assign(config, dest.values());
      if (filterText.value.trim()) config.filter = filterText.value;
      if (excludes().length) config.exclude = excludes();
      if (usesTemplate) {
        if (template.value.trim()) config.json_template = template.value;
        const headers = form.headers.filter((x) => x.name.trim());
        if (headers.length) config.headers = Object.fromEntries(headers.map((x) => [x.name.trim(), x.value]));
      }
      return config;
    }

    async function submit(e) {
      e.preventDefault();
      error.replaceChildren();
      const doc = { workflow: p.workflow, config: buildConfig() };
      if (name.value.trim()) doc.name = name.value.trim();
      try {
        const job = await api("POST", acct("/jobs"), doc);
        toast(`Job ${job.name || job.id} created`);
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } catch (err) { error.replaceChildren(errorBox(err)); }
    }

    renderHeaders();
    root.replaceChildren(steps(2), h("h1", {}, `Configure: ${p.title}`),
      h("form", { id: "job-form", onsubmit: submit },
        h("label", {}, "Name", name),
        h("h2", {}, "Which events"),
        h("label", {}, "Subject types (none checked = every type)"), typeChecks, idsBox,
        h("label", {}, "Verbs"), verbChecks,
        h("label", { for: "job-filter" }, "Content filter (a CEL expression over `event`; empty = every event)"), filterText,
        h("label", { for: "job-exclude" }, "Exclude (one CEL expression per line)"), excludeText, filterCheck,
        h("h2", {}, "Destination"), dest.node,
        usesTemplate ? [h("h2", {}, "Headers"), headersBox,
          h("div", { class: "grid2" },
            h("div", {}, h("label", { for: "json-template" }, "Jsonnet template (`event` is in scope; empty = the event itself)"), template),
            h("div", {}, h("label", {}, "Preview against a sample event"), preview))] : null,
        error,
        h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, "Create job"),
          h("button", { type: "button", onclick: stepProvider }, "Back"))));
    if (usesTemplate) runPreview();
  }
}

function destinationFields(provider) {
  const field = (label, attrs) => { const input = h("input", attrs); return [input, h("label", {}, label, input)]; };
  if (provider === "webhook" || provider === "slack") {
    const [url, node] = field(provider === "slack" ? "Slack incoming webhook URL" : "Webhook URL",
      { type: "url", id: "webhook-url", required: true, placeholder: "https://" });
    return { node, values: () => ({ webhook_url: url.value.trim() }) };
  }
  if (provider === "bigquery") {
    const [project, n1] = field("Project (empty = this deployment's)", { type: "text", id: "bq-project" });
    const [dataset, n2] = field("Dataset", { type: "text", id: "bq-dataset", required: true });
    const [table, n3] = field("Table", { type: "text", id: "bq-table", required: true });
    const mode = h("select", { id: "bq-mode" }, ["continuous", "backfill_then_continuous", "one_time"].map((m) => h("option", { value: m }, m)));
    const [start, n4] = field("Start time (backfills)", { type: "datetime-local", id: "bq-start" });
    const [end, n5] = field("End time (one-time)", { type: "datetime-local", id: "bq-end" });
    const iso = (v) => (v ? new Date(v).toISOString() : undefined);
    return {
      node: h("div", {}, n1, n2, n3, h("label", {}, "Mode", mode), n4, n5),
      values: () => {
        const v = { dataset: dataset.value.trim(), table: table.value.trim(), mode: mode.value };
        if (project.value.trim()) v.project = project.value.trim();
        if (start.value) v.start_time = iso(start.value);
        if (end.value) v.end_time = iso(end.value);
        return v;
      },
    };
  }
  const [recipients, node] = field("Recipients (comma separated)", { type: "text", id: "email-recipients", required: true });
  return { node, values: () => ({ recipients: recipients.value.split(",").map((s) => s.trim()).filter(Boolean) }) };
}

// -- job page -----------------------------------------------------------------------------------------------
async function viewJob(jobId) {
  setNav("jobs");
  const root = h("section", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  main().replaceChildren(root);
  let job;
  try { job = await api("GET", acct(`/jobs/${encodeURIComponent(jobId)}`)); } catch (err) { root.replaceChildren(errorBox(err)); return; }
  const path = acct(`/jobs/${encodeURIComponent(job.id)}`);
  const act = async (what, fn) => {
    try { await fn(); toast(what); viewJob(job.id); } catch (err) { root.append(errorBox(err)); }
  };
  const statsBox = h("div", { id: "job-stats" }, h("span", { class: "muted" }, "No delivery statistics yet."));
  const attempts = h("tbody");
  root.replaceChildren(
    h("div", { class: "row" }, h("h1", {}, job.name || job.id), h("span", { class: `state ${job.state}` }, job.state),
      h("span", { class: "spacer" }),
      job.state === "active"
        ? h("button", { id: "pause", onclick: () => act("Paused", () => api("POST", `${path}/pause`, {}, { "If-Match": `"${job.version}"` })) }, "Pause")
        : h("button", { id: "resume", onclick: () => act("Resumed", () => api("POST", `${path}/resume`, {}, { "If-Match": `"${job.version}"` })) }, "Resume"),
      h("button", { id: "send-test", onclick: () => act("Test event sent", () => api("POST", `${path}/test`, {})) }, "Send test event"),
      h("button", { id: "replay", onclick: () => act("Replay requested", () => api("POST", `${path}/replay`, {})) }, "Replay dead letters"),
      h("button", { class: "danger", onclick: async () => {
        if (!confirm(`Delete job ${job.id}?`)) return;
        try { await api("DELETE", path, undefined, { "If-Match": `"${job.version}"` }); toast("Deleted"); location.hash = "#/jobs"; } catch (err) { root.append(errorBox(err)); }
      } }, "Delete")),
    job.disabled_reason ? h("p", { class: "error" }, `Paused automatically: ${job.disabled_reason}`) : "",
    h("p", { class: "muted" }, `${job.workflow} · version ${job.version} · ${describeFilter(job.config)}`),
    conditionBox(job),
    h("h2", {}, "Deliveries"), statsBox,
    h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, ["Time", "Event", "Attempt", "Outcome", "Status", "Latency", "Error"].map((t) => h("th", {}, t)))), attempts),
    h("h2", {}, "Preview against history"), historyPreview(job),
    h("h2", {}, "Configuration"), h("pre", {}, JSON.stringify(job.config, null, 2)));

  try {
    const s = await api("GET", `${path}/stats`);
    const c = s.counters || s;
    statsBox.replaceChildren(...["received", "delivered", "filtered", "dead_lettered", "pending"].map((k) =>
      h("span", { class: "stat", "data-stat": k }, h("b", {}, String(c[k] ?? 0)), k.replace("_", " "))));
  } catch (_) { /* no stats for this job yet */ }
  try {
    const d = await api("GET", `${path}/deliveries`);
    const rows = d.deliveries || d.attempts || [];
    if (!rows.length) attempts.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No deliveries yet.")));
    for (const a of rows) {
      attempts.append(h("tr", { class: "attempt" }, h("td", {}, fmtTime(a.time || a.at)), h("td", {}, h("code", {}, a.event_id || "")),
        h("td", {}, String(a.attempt ?? "")), h("td", { class: a.outcome === "delivered" ? "ok" : "bad" }, a.outcome || ""),
        h("td", {}, String(a.status ?? "")), h("td", {}, a.latency_ms != null ? `${Math.round(a.latency_ms)} ms` : ""), h("td", {}, a.error || "")));
    }
  } catch (_) {
    attempts.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No delivery log for this job.")));
  }
}

// A threshold or absence job's condition, per group: armed or firing since when, last seen, next check.
function conditionBox(job) {
  const cfg = job.config || {};
  if (!cfg.threshold && !cfg.absence) return "";
  const rows = (job.condition_state || []).map((c) => h("tr", { class: "condition", "data-state": c.state },
    h("td", {}, Object.entries(c.group || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—"),
    h("td", { class: c.state === "firing" ? "bad" : "ok" }, c.state), h("td", {}, fmtTime(c.firing_since)),
    h("td", {}, fmtTime(c.last_seen)), h("td", {}, fmtTime(c.next_check))));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Not armed yet: no event counted, no deadline set.")));
  return h("div", {}, h("h2", {}, cfg.threshold ? "Threshold" : "Absence"),
    h("table", { id: "conditions" }, h("thead", {}, h("tr", {}, ["Group", "State", "Firing since", "Last seen", "Next check"].map((t) => h("th", {}, t)))), h("tbody", {}, rows)));
}

// What the job would have matched and sent over the last days of the audit log (POST …/jobs/preview).
function historyPreview(job) {
  const days = h("select", { id: "preview-days" }, [1, 7, 30].map((d) => h("option", { value: d, selected: d === 7 }, `last ${d} day${d > 1 ? "s" : ""}`)));
  const out = h("div", { id: "history-preview" }, h("span", { class: "muted" }, "What this job would have matched and sent; nothing is sent."));
  async function run() {
    out.replaceChildren(h("span", { class: "muted" }, "Reading the audit log…"));
    const start = new Date(Date.now() - Number(days.value) * 86400e3).toISOString();
    try {
      const r = await api("POST", acct("/jobs/preview"), { job_id: job.id, start });
      const kinds = Object.entries(r.notifications_by_kind || {}).map(([k, n]) => `${n} ${k}`).join(", ");
      out.replaceChildren(
        h("span", { class: "stat", "data-preview": "matched" }, h("b", {}, String(r.matched)), "matched"),
        h("span", { class: "stat", "data-preview": "notifications" }, h("b", {}, String(r.notifications)), r.alerting ? "notifications" : "deliveries"),
        h("span", { class: "muted" }, ` of ${r.scanned} events read${r.truncated ? " (truncated)" : ""}${kinds ? ` · ${kinds}` : ""}`));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  }
  return h("div", { class: "row" }, days, h("button", { id: "run-preview", onclick: run }, "Preview"), out);
}

// -- audit log ----------------------------------------------------------------------------------------------
function viewAudit() {
  setNav("audit");
  const results = h("tbody");
  const error = h("div");
  const type = h("select", { id: "audit-type" }, h("option", { value: "" }, "any"), SUBJECT_TYPES.map((t) => h("option", { value: t }, t)));
  const verb = h("select", { id: "audit-verb" }, h("option", { value: "" }, "any"), VERBS.map((v) => h("option", { value: v }, v)));
  const sid = h("input", { type: "text", id: "audit-subject-id" });
  let token = null;
  const more = h("button", { type: "button", hidden: true, onclick: () => search(false) }, "More");
  async function search(fresh) {
    error.replaceChildren();
    if (fresh) { results.replaceChildren(); token = null; }
    const q = new URLSearchParams();
    if (type.value) q.set("subject_type", type.value);
    if (verb.value) q.set("verb", verb.value);
    if (sid.value.trim()) q.set("subject_id", sid.value.trim());
    if (token) q.set("page_token", token);
    try {
      const doc = await api("GET", acct(`/audit?${q}`));
      for (const e of doc.events || []) {
        const d = e.data || e;
        results.append(h("tr", {}, h("td", {}, fmtTime(e.time || d.time)), h("td", {}, d.subject_type), h("td", {}, d.subject_id), h("td", {}, d.verb), h("td", {}, d.actor || ""), h("td", {}, d.notes || "")));
      }
      token = doc.next_page_token || null;
      more.hidden = !token;
      if (!results.children.length) results.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No events found.")));
    } catch (err) { error.replaceChildren(errorBox(err)); }
  }
  main().replaceChildren(h("section", { class: "card" }, h("h1", {}, "Audit log"),
    h("form", { class: "grid2", onsubmit: (e) => { e.preventDefault(); search(true); } },
      h("label", {}, "Subject type", type), h("label", {}, "Verb", verb), h("label", {}, "Subject id", sid),
      h("div", {}, h("label", {}, " "), h("button", { class: "primary", type: "submit" }, "Search"))),
    error,
    h("table", { id: "audit-table" }, h("thead", {}, h("tr", {}, ["Time", "Type", "Subject", "Verb", "Actor", "Notes"].map((t) => h("th", {}, t)))), results),
    more));
}

// -- routing ------------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/jobs";
  if (!state.who) {
    if (state.key) {
      try { await signIn(state.key); } catch (_) { state.key = null; sessionStorage.removeItem("sysevents.key"); }
    }
    if (!state.who) { viewSignIn(); return; }
  }
  const m = hash.match(/^#\/jobs\/(.+)$/);
  if (m) return viewJob(decodeURIComponent(m[1]));
  if (hash === "#/new") return viewNew();
  if (hash === "#/audit") return viewAudit();
  return viewJobs();
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
