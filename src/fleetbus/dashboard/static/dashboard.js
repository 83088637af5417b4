// fleetbus dashboard: fills each page from its live stream (/api/live/...).
// Everything from the wire is data: it goes into the page as text (append, textContent),
// never as markup. No innerHTML anywhere in this file.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const HISTORY = 60;
  const ACTION_HEADER = "x-fleetbus-dashboard";
  const $ = (selector, root = document) => root.querySelector(selector);

  // -- building blocks -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function when(iso) {
    if (!iso) return el("span", { class: "muted" }, "–");
    return el("time", { datetime: iso, title: iso, "data-ago": "" }, ago(iso));
  }

  function ago(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return iso;
    const s = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function badge(state) {
    return el("span", { class: `badge state-${String(state).replace(/[^a-z_-]/gi, "")}` }, state);
  }

  function number(n) {
    return typeof n === "number" ? n.toLocaleString("en") : "–";
  }

  function bytes(n) {
    if (typeof n !== "number") return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function json(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function taskLink(id) {
    return el("a", { href: `/tasks/${encodeURIComponent(id)}` }, id);
  }

  function progressOf(row) {
    // A bar for a task: its last percent, full once completed, moving while it runs.
    if (row.state === "completed") return el("progress", { max: 100, value: 100 }, "100%");
    if (row.terminal) return el("span", { class: "muted" }, "–");
    const label = row.percent != null ? `${row.percent}%` : "working";
    const bar = row.percent != null
      ? el("progress", { max: 100, value: row.percent, "aria-label": `${row.task_id}: ${label}` }, label)
      : el("progress", { max: 100, "aria-label": `${row.task_id}: working` }, "working");
    return el("span", { class: "progress" }, bar, " ", row.percent != null ? `${row.percent}%` : "",
      row.message ? el("span", { class: "progress-message" }, " ", row.message) : "");
  }

  function sparkline(values, label) {
    // Drawn from the samples the stream sent: numbers only, into attributes.
    const width = 120, height = 24;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    const points = (values || []).slice(-HISTORY).map(Number).filter(Number.isFinite);
    const last = points.length ? points[points.length - 1] : 0;
    svg.setAttribute("aria-label", `${label}: ${points.length} samples, now ${last}, highest ${Math.max(0, ...points)}`);
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", String(width));
    base.setAttribute("y1", String(height - 1));
    base.setAttribute("y2", String(height - 1));
    base.setAttribute("class", "spark-base");
    svg.append(base);
    if (points.length === 1) points.unshift(points[0]);
    if (points.length >= 2) {
      const top = Math.max(1, ...points);
      const step = width / (HISTORY - 1);
      const start = width - step * (points.length - 1);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points.map((v, i) =>
        `${(start + i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`).join(" "));
      svg.append(line);
    }
    return svg;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function cell(...children) {
    return el("td", {}, ...children);
  }

  function num(...children) {
    return el("td", { class: "num" }, ...children);
  }

  // -- the live stream -------------------------------------------------------------------

  const statusLine = $("#live-status");

  function say(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  function live(path, handlers, onClosed) {
    let source = null;
    const open = (target) => {
      if (source) source.close();
      path = target || path;
      source = new EventSource(path);
      say("connecting", "connecting…");
      source.addEventListener("open", () => say("live", "live"));
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) {
          say("closed", "not connected");
          if (onClosed) onClosed(path);
        } else {
          say("reconnecting", "reconnecting…");
        }
      });
      source.addEventListener("problem", (e) => say("problem", JSON.parse(e.data)));
      source.addEventListener("reset", () => open());
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (e) => {
          say("live", "live");
          handle(JSON.parse(e.data));
        });
      }
    };
    open();
    return { reopen: open };
  }

  async function act(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { [ACTION_HEADER]: "1", "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  }

  function confirmWith(text) {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-cancel").focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  }

  function params(form) {
    const out = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) out.set(key, String(value));
    return out;
  }

  function fromAddress(form) {
    const query = new URLSearchParams(location.search);
    for (const field of form.elements) {
      if (!field.name || !query.has(field.name)) continue;
      if (field.type === "checkbox") field.checked = query.get(field.name) === "on";
      else field.value = query.get(field.name);
    }
  }

  function keepInAddress(query) {
    const text = query.toString();
    history.replaceState(null, "", text ? `${location.pathname}?${text}` : location.pathname);
  }

  // -- overview ----------------------------------------------------------------------------

  const STATE_ORDER = ["queued", "accepted", "progress", "failed", "input-required",
    "completed", "dead_lettered", "rejected", "canceled", "expired"];

  function overview() {
    live("/api/live/overview", {
      overview(v) {
        if (!v.roles) return;
        const alerts = $("#alerts");
        alerts.replaceChildren(...v.alerts.map((a) =>
          el("li", { class: "alert" }, el("span", { class: "badge alert-code" }, a.code), " ", a.message)));
        $("#no-alerts").hidden = v.alerts.length > 0;
        $("#roles-total").textContent = number(v.roles.total);
        $("#roles-states").textContent = Object.entries(v.roles.states)
          .map(([state, n]) => `${n} ${state}`).join(", ");
        $("#serving").textContent = number(v.serving);
        $("#workers").textContent = number(v.agents);
        const tasks = v.tasks;
        $("#tasks-known").textContent = number(v.tasks_known);
        $("#tasks-queued").textContent = number(tasks.queued || 0);
        $("#tasks-active").textContent = number(["accepted", "progress", "failed", "input-required"]
          .reduce((sum, s) => sum + (tasks[s] || 0), 0));
        $("#dead-letters").textContent = number(v.dead_letters);
        const states = STATE_ORDER.filter((s) => tasks[s] || s === "queued")
          .concat(Object.keys(tasks).filter((s) => !STATE_ORDER.includes(s)));
        fill($("#task-states tbody"), states.map((s) => el("tr", {},
          el("th", { scope: "row" }, s === "queued" ? "queued" : el("a", { href: `/tasks?state=${encodeURIComponent(s)}` }, badge(s))),
          num(number(tasks[s] || 0)))));
        fill($("#rates tbody"), v.streams.map((s) => el("tr", {},
          el("th", { scope: "row" }, s.name), num(s.rate.toFixed(1)),
          cell(sparkline(s.history, `${s.name} messages per second`)), num(number(s.messages)))));
        $("#role-list").replaceChildren(...v.roles.list.map((r) =>
          el("li", { class: `chip state-${r.state}` },
            el("a", { href: `/agents?q=${encodeURIComponent(r.role)}` }, r.role), " ",
            el("span", { class: "chip-state" }, r.state))));
        $("#server-line").textContent = `nats-server ${v.version} at ${v.server}; prefix ${v.prefix}`;
      },
    });
  }

  // -- agents --------------------------------------------------------------------------------

  function agents() {
    const form = $("#agent-filters");
    fromAddress(form);
    let roles = [];
    const render = () => {
      const q = $("#agent-q").value.trim();
      const hideIdle = $("#agent-idle").checked;
      const shown = roles.filter((r) => (!q || r.role.includes(q)) && !(hideIdle && r.state === "idle"));
      fill($("#agents tbody"), shown.map((r) => el("tr", {},
        el("th", { scope: "row" }, r.role),
        cell(badge(r.state)),
        num(number(r.pending)),
        num(number(r.ack_pending)),
        cell(when(r.last_active)),
        cell(r.agents.length ? el("ul", { class: "agents" }, r.agents.map((a) => el("li", {},
          el("span", { class: "worker" }, a.worker), " ", badge(a.state), " ",
          el("span", { class: "muted" }, "seen "), when(a.last_seen),
          a.tasks.length ? el("ul", { class: "agent-tasks" }, a.tasks.map((t) =>
            el("li", {}, taskLink(t.task_id), " ", badge(t.state), " ", progressOf(t)))) : ""))) :
          el("span", { class: "muted" }, "no agent seen")))));
      $("#agents-count").textContent = `${shown.length} of ${roles.length} role(s)`;
    };
    form.addEventListener("input", () => { keepInAddress(params(form)); render(); });
    form.addEventListener("submit", (e) => e.preventDefault());
    live("/api/live/agents", { agents(v) { roles = v.roles || []; render(); } });
  }

  // -- tasks --------------------------------------------------------------------------------

  function tasks() {
    const form = $("#task-filters");
    fromAddress(form);
    let rows = new Map();
    let limit = 200, matching = 0;
    const key = (r) => `${r.task_id}|${r.assigner}|${r.role}`;
    const wanted = (r) => {
      const state = $("#task-state").value, role = $("#task-role").value, q = $("#task-q").value.trim();
      if (role && r.role !== role) return false;
      if (q && !r.task_id.includes(q)) return false;
      if (state === "active") return !r.terminal;
      return !state || r.state === state;
    };
    const render = () => {
      const sorted = [...rows.values()].filter(wanted).sort((a, b) => (a.time < b.time ? 1 : -1)).slice(0, limit);
      rows = new Map(sorted.map((r) => [key(r), r]));
      fill($("#tasks tbody"), sorted.map((r) => el("tr", { "data-task": r.task_id },
        el("th", { scope: "row" }, taskLink(r.task_id)),
        cell(r.role),
        cell(badge(r.state)),
        cell(progressOf(r)),
        num(r.attempt),
        cell(r.worker || el("span", { class: "muted" }, "–")),
        cell(when(r.time)))));
      $("#tasks-count").textContent = `showing ${sorted.length} of ${number(Math.max(matching, sorted.length))} matching task(s)`;
    };
    const stream = live(`/api/live/tasks?${params(form)}`, {
      tasks(v) {
        if (Array.isArray(v)) {
          for (const r of v) {
            if (wanted(r) && !rows.has(key(r))) matching += 1;
            if (wanted(r)) rows.set(key(r), r); else rows.delete(key(r));
          }
        } else {
          rows = new Map(v.rows.map((r) => [key(r), r]));
          limit = v.limit;
          matching = v.matching;
        }
        render();
      },
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    form.addEventListener("change", () => {
      const query = params(form);
      keepInAddress(query);
      stream.reopen(`/api/live/tasks?${query}`);
    });
  }

  // -- one task -------------------------------------------------------------------------

  function task() {
    const taskId = document.body.dataset.taskId;
    let view = { rows: [], timeline: [], actions: [] };
    const render = () => {
      const row = view.rows[0];
      $("#task-missing").hidden = Boolean(row);
      const facts = $("#task-facts");
      facts.replaceChildren();
      const fact = (term, ...value) => facts.append(el("dt", {}, term), el("dd", {}, ...value));
      if (row) {
        fact("State", badge(row.state));
        fact("Role", row.role);
        fact("Assigned by", row.assigner);
        fact("Attempt", String(row.attempt));
        fact("Agent", row.worker || "–");
        fact("Updated", when(row.time));
        if (view.rows.length > 1) {
          // Ids are the assigner's choice, and a role writes its own records under any id:
          // several tasks with this one are shown, and acted on only from the CLI, by role.
          fact("Also assigned", view.rows.slice(1).map((r) => `${r.assigner} → ${r.role}`).join(", "));
          fact("Warning", `${view.rows.length} tasks have this id: the records below may be any`
            + " of theirs; act with `fleetbus task cancel|respond ID --role ROLE`");
        }
      }
      const progress = [...view.timeline].reverse().find((u) => u.state === "progress" && (!row || u.attempt === row.attempt));
      const bar = $("#task-progress");
      const done = row && row.state === "completed";
      if (done || (progress && progress.percent != null)) bar.value = done ? 100 : progress.percent;
      else bar.removeAttribute("value");
      $("#task-progress-text").textContent = done ? "100% (completed)"
        : progress ? `${progress.percent != null ? `${progress.percent}%` : ""} ${progress.message || ""}`.trim()
        : row && row.terminal ? "ended" : "";
      const outcome = [...view.timeline].reverse().find((u) => ["completed", "dead_lettered", "rejected", "canceled", "expired"].includes(u.state));
      $("#task-result").hidden = !(outcome && outcome.state === "completed");
      if (outcome && outcome.state === "completed") $("#task-result-text").textContent = json(outcome.result ?? null);
      const failure = [...view.timeline].reverse().find((u) => u.error);
      $("#task-error").hidden = !failure;
      if (failure) {
        $("#task-error-text").textContent = failure.reason && failure.reason !== failure.error
          ? `${failure.error} — ${failure.reason}` : failure.error;
        $("#task-traceback-box").hidden = !failure.traceback;
        $("#task-traceback").textContent = failure.traceback || "";
      }
      $("#timeline").replaceChildren(...view.timeline.map((u) => el("li", {},
        when(u.time), " ", badge(u.state), " ",
        el("span", { class: "muted" }, `attempt ${u.attempt}`, u.worker ? ` · ${u.worker}` : ""), " ",
        el("span", { class: "detail" }, detail(u)))));
      const actions = (row && !row.terminal && view.rows.length === 1 && view.actions) || [];
      $("#task-actions").hidden = actions.length === 0;
      if (actions.join() !== shownActions) {  // re-drawn only when they change: typed text stays
        shownActions = actions.join();
        $("#task-action-buttons").replaceChildren(...actions.map((name) => actionForm(name)));
      }
    };
    // An action is a form: its fields, if any, from <template id="action-NAME"> in task.html.
    let shownActions = "";
    const actionForm = (name) => {
      const form = el("form", { class: "task-action", "data-action": name });
      const fields = document.getElementById(`action-${name}`);
      if (fields) form.append(fields.content.cloneNode(true));
      form.append(el("button", { type: "submit" }, name));
      form.addEventListener("submit", (e) => { e.preventDefault(); runAction(name, form); });
      return form;
    };
    const runAction = async (name, form) => {
      const row = view.rows[0];
      if (!row || !(await confirmWith(`${name} task ${taskId}?`))) return;
      const out = $("#task-action-result");
      try {
        const body = { ...Object.fromEntries(new FormData(form)), role: row.role, assigner: row.assigner };
        await act(`/api/tasks/${encodeURIComponent(taskId)}/actions/${encodeURIComponent(name)}`, body);
        out.textContent = `${name}: done`;
      } catch (error) {
        out.textContent = `${name} failed: ${error.message}`;
      }
    };
    live(`/api/live/tasks/${encodeURIComponent(taskId)}`, {
      task(v) { view = v; render(); },
      record(v) {
        view.timeline.push(v.update);
        const others = view.rows.filter((r) => !(r.assigner === v.row.assigner && r.role === v.row.role));
        view.rows = [v.row, ...others];
        render();
      },
    });
  }

  function detail(u) {
    if (u.state === "completed") return u.result !== undefined ? `result: ${JSON.stringify(u.result)}` : "";
    if (u.state === "progress") return `${u.percent != null ? `${u.percent}% ` : ""}${u.message || ""}`;
    if (u.state === "failed") return `${u.error || ""}${u.retry_in ? ` (retry in ${u.retry_in}s)` : ""}`;
    if (u.error) return u.reason && u.reason !== u.error ? `${u.error} — ${u.reason}` : u.error;
    return "";
  }

  // -- dead letters ---------------------------------------------------------------------

  function deadLetters() {
    const result = $("#dlq-result");
    const show = async (id) => {
      const response = await fetch(`/api/dead-letters/${id}`, { credentials: "same-origin" });
      const letter = await response.json().catch(() => ({}));
      const box = $("#letter");
      if (!response.ok) { result.textContent = letter.error || `${response.status} ${response.statusText}`; return; }
      $("#letter-id").textContent = String(letter.id);
      const facts = $("#letter-facts");
      facts.replaceChildren();
      for (const key of ["time", "original_subject", "stream", "seq", "consumer", "deliveries", "reason", "error"]) {
        facts.append(el("dt", {}, key.replace("_", " ")), el("dd", {}, String(letter[key])));
      }
      $("#letter-body").textContent = letter.body;
      $("#letter-headers").textContent = JSON.stringify(letter.headers, null, 2);
      $("#letter-traceback-box").hidden = !letter.traceback;
      $("#letter-traceback").textContent = letter.traceback || "";
      box.hidden = false;
      box.focus();
    };
    const replay = async (letter) => {
      if (!(await confirmWith(`Replay dead letter ${letter.id} to ${letter.consumer}? It starts again at attempt 1.`))) return;
      try {
        const done = await act(`/api/dead-letters/${letter.id}/replay`);
        result.textContent = `replayed dead letter ${done.replayed} to ${done.subject}`;
      } catch (error) {
        result.textContent = `replay failed: ${error.message}`;
      }
    };
    $("#purge").addEventListener("click", async () => {
      if (!(await confirmWith("Delete every dead letter? This cannot be undone."))) return;
      try {
        const done = await act("/api/dead-letters/purge");
        result.textContent = `purged ${done.purged} dead letter(s)`;
        $("#letter").hidden = true;
      } catch (error) {
        result.textContent = `purge failed: ${error.message}`;
      }
    });
    live("/api/live/dead-letters", {
      deadletters(v) {
        $("#letters-empty").hidden = v.letters.length > 0;
        $("#purge").disabled = v.letters.length === 0;
        fill($("#letters tbody"), v.letters.map((d) => el("tr", { "data-letter": d.id },
          num(d.id),
          cell(when(d.time)),
          cell(el("code", {}, d.original_subject), ` #${d.seq}`,
            d.task_id ? el("div", {}, "task ", taskLink(d.task_id)) : ""),
          cell(d.consumer),
          num(d.deliveries),
          cell(d.reason, d.error && d.error !== d.reason ? el("div", { class: "muted" }, d.error) : ""),
          cell(el("div", { class: "buttons" },
            el("button", { type: "button", onclick: () => show(d.id), "aria-label": `Show dead letter ${d.id}` }, "Show"),
            el("button", { type: "button", class: "replay", onclick: () => replay(d), "aria-label": `Replay dead letter ${d.id}` }, "Replay…"))))));
      },
    });
  }

  // -- streams and consumers ------------------------------------------------------------

  function streams() {
    const form = $("#consumer-filters");
    form.addEventListener("submit", (e) => e.preventDefault());
    const series = { rate: {}, pending: {}, ack_pending: {} };
    let latest = { streams: [], consumers: [] };
    const push = (kind, key, value) => {
      const list = series[kind][key] || (series[kind][key] = []);
      list.push(value);
      if (list.length > HISTORY) list.shift();
    };
    const render = () => {
      fill($("#streams tbody"), latest.streams.map((s) => el("tr", {},
        el("th", { scope: "row" }, s.name, s.missing ? " (missing)" : ""),
        num(number(s.messages)), num(bytes(s.bytes)),
        num(s.storage_percent != null ? `${s.storage_percent}%` : "–"),
        num(`${number(s.consumers)}${s.max_consumers > 0 ? ` / ${number(s.max_consumers)}` : ""}`),
        num(Number(s.rate).toFixed(1)),
        cell(sparkline(series.rate[s.name], `${s.name} messages per second`)))));
      const q = $("#consumer-q").value.trim();
      const hideIdle = $("#consumer-idle").checked;
      const shown = latest.consumers.filter((c) => (!q || c.name.toLowerCase().includes(q.toLowerCase()) || c.role.includes(q)) && !(hideIdle && c.idle));
      fill($("#consumers tbody"), shown.map((c) => el("tr", {},
        el("th", { scope: "row" }, c.name, el("div", { class: "muted" }, c.stream)),
        cell(c.role || "–"),
        num(number(c.pending)),
        cell(sparkline(series.pending[c.key] || [c.pending], `${c.name} pending`)),
        num(number(c.ack_pending)),
        cell(sparkline(series.ack_pending[c.key] || [c.ack_pending], `${c.name} ack pending`)),
        num(number(c.waiting)),
        num(number(c.redelivered)),
        cell(c.missing ? badge("missing") : when(c.last_active)))));
      $("#consumers-count").textContent = `${shown.length} of ${latest.consumers.length} consumer(s)`;
    };
    form.addEventListener("input", render);
    live("/api/live/streams", {
      streams(v) {
        if (v.history) {
          for (const kind of Object.keys(series)) series[kind] = structuredClone(v.history[kind] || {});
          for (const c of v.consumers) {
            if (!series.pending[c.key]) series.pending[c.key] = [c.pending];
            if (!series.ack_pending[c.key]) series.ack_pending[c.key] = [c.ack_pending];
          }
        } else {
          for (const s of v.streams) push("rate", s.name, s.rate);
          for (const c of v.consumers) {
            push("pending", c.key, c.pending);
            push("ack_pending", c.key, c.ack_pending);
          }
        }
        latest = v;
        render();
      },
    });
  }

  // -- meetings -------------------------------------------------------------------------

  function meetings() {
    const rooms = new Map();
    const room = (id) => {
      if (rooms.has(id)) return rooms.get(id);
      const headingId = `meeting-${rooms.size}`;
      const members = el("p", { class: "muted members" });
      const transcript = el("ol", { class: "transcript", role: "log", "aria-labelledby": headingId });
      const section = el("section", { class: "meeting", "data-meeting": id },
        el("h2", { id: headingId }, "Meeting ", el("code", {}, id)), members, transcript);
      $("#meetings").prepend(section);
      $("#meetings-empty").hidden = true;
      const entry = { section, members, transcript };
      rooms.set(id, entry);
      return entry;
    };
    const line = (m) => el("li", { class: m.notice ? "notice" : "said" },
      when(m.time), " ",
      el("strong", { class: "sender" }, m.sender),
      m.verified ? el("span", { class: "verified", title: "the server vouches for this sender" }, " ✓") : "",
      " ",
      m.notice ? el("span", { class: "muted" }, m.type === "join" ? "joined" : m.type === "leave" ? "left" : m.type)
        : [badge(m.type), " ", el("span", { class: "content" }, json(m.content ?? ""))]);
    const members = (entry, list) => {
      entry.members.textContent = list.length ? `in the room: ${list.join(", ")}` : "nobody in the room";
    };
    live("/api/live/meetings", {
      meetings(v) {
        rooms.clear();
        $("#meetings").replaceChildren();
        $("#meetings-empty").hidden = v.meetings.length > 0;
        for (const m of [...v.meetings].reverse()) {
          const entry = room(m.meeting_id);
          members(entry, m.members);
          entry.transcript.replaceChildren(...m.lines.map(line));
        }
      },
      meeting(m) {
        const entry = room(m.meeting_id);
        members(entry, m.members);
        entry.transcript.append(line(m));
        $("#meetings").prepend(entry.section);
      },
    });
  }

  // -- events ---------------------------------------------------------------------------

  function events() {
    const form = $("#tail-form");
    fromAddress(form);
    const list = $("#tail");
    const state = $("#tail-state");
    let skipped = 0;
    const url = () => `/api/live/events?${new URLSearchParams({ filter: $("#tail-filter").value.trim() || ">" })}`;
    const closed = async (path) => {
      const answer = await fetch(path, { credentials: "same-origin" }).then((r) => r.json()).catch(() => ({}));
      state.textContent = answer.error ? `not tailing: ${answer.error}` : "not tailing";
    };
    const stream = live(url(), {
      "tail-start"(v) { state.textContent = `tailing ${v.filter}`; },
      line(m) {
        if ($("#tail-pause").checked) {
          skipped += 1;
          state.textContent = `paused: ${skipped} message(s) not shown`;
          return;
        }
        list.prepend(el("li", {},
          when(m.time), " ", el("code", { class: "subject" }, m.subject), " ",
          m.sender ? el("span", { class: "sender" }, "from ", m.sender, m.verified ? " ✓" : "") : "",
          el("pre", { class: "body" }, m.body)));
        while (list.children.length > 500) list.lastElementChild.remove();
      },
    }, closed);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      keepInAddress(new URLSearchParams({ filter: $("#tail-filter").value.trim() }));
      skipped = 0;
      list.replaceChildren();
      stream.reopen(url());
    });
    $("#tail-pause").addEventListener("change", () => {
      if (!$("#tail-pause").checked) { skipped = 0; state.textContent = "tailing"; }
    });
    $("#tail-clear").addEventListener("click", () => list.replaceChildren());
  }

  // -- start ----------------------------------------------------------------------------

  setInterval(() => {
    for (const t of document.querySelectorAll("time[data-ago]")) t.textContent = ago(t.getAttribute("datetime"));
  }, 5000);

  const pages = {
    overview, agents, tasks, task, "dead-letters": deadLetters, streams, meetings, events,
  };
  const page = document.body.dataset.taskId ? "task" : document.body.dataset.page;
  if (pages[page]) pages[page]();
})();
