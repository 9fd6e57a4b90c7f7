// The Orders admin page: polls the staff-only JSON endpoints and draws what they answer.
//
// The token lives in this tab's sessionStorage and travels only in the Authorization
// header (never in a URL). Everything the server sends is put on the page as text
// (textContent), never as markup: payloads and error messages come from outside.
"use strict";

(() => {
  const TOKEN_KEY = "orders-admin-token";
  const API = "/api/v1/admin";
  const PROJECTIONS_EVERY_MS = 1000;
  const TAIL_EVERY_MS = 2000;
  const TAIL_SIZE = 25;

  const $ = (id) => document.getElementById(id);

  // A new session (sign-in) ends the polling loops of the one before.
  let session = 0;
  const shownParked = new Map(); // projection -> JSON of the list on the page
  let shownTail = "";

  // -- drawing -------------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function table(headers, rows) {
    return el(
      "table",
      { class: "grid" },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows),
    );
  }

  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return (
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    );
  }

  function seconds(value) {
    if (value < 1) return `${Math.round(value * 1000)} ms`;
    if (value < 120) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
    return `${Math.round(value / 60)} min`;
  }

  function streamLink(streamId) {
    return el("button", {
      type: "button",
      class: "link stream-link",
      text: streamId,
      title: "Show this stream's events",
      "data-stream": streamId,
      onclick: () => showStream(streamId),
    });
  }

  function flash(message, ok) {
    const box = $("flash");
    box.textContent = message;
    box.className = `flash ${ok ? "ok" : "bad"}`;
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => (box.hidden = true), ok ? 6000 : 15000);
  }

  function setStatus(message, isError) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  // -- talking to the service ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function call(method, path, body) {
    const headers = {
      Accept: "application/json",
      Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}`,
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, `cannot reach the service (${error.message})`);
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = (data && (data.detail || data.title)) || response.statusText;
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  // Any call answered 401 ends the session: the token expired or was replaced.
  function refused(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(`Signed out: ${error.message}. Sign in with a fresh token.`);
      return true;
    }
    return false;
  }

  function every(ms, work) {
    const mine = session;
    const tick = async () => {
      if (mine !== session) return;
      try {
        await work();
      } catch (error) {
        if (refused(error)) return;
        setStatus(`Not updated: ${error.message}`, true);
      }
      if (mine === session) setTimeout(tick, ms);
    };
    tick();
  }

  // -- projections -------------------------------------------------------------------------

  function stateBadge(p) {
    const kind =
      p.stale ? "stale"
      : p.state === "live" ? "live"
      : p.state === "catching-up" || p.state === "rebuilding" ? "busy"
      : p.state === "faulted" ? "bad"
      : "other";
    const label = p.stale ? `${p.state} · stale` : p.state;
    const title = p.stale
      ? `The runner last reported ${seconds(p.report_age)} ago: it may be gone.`
      : `As its runner reported${p.report_age === null ? "" : ` ${seconds(p.report_age)} ago`}.`;
    return el("span", { class: `badge ${kind}`, text: label, title });
  }

  function behind(p) {
    if (p.events_behind === null) return "—";
    if (p.events_behind === 0) return "caught up";
    const events = `${p.events_behind}${p.behind_capped ? "+" : ""} events`;
    return `${events} · ${seconds(p.seconds_behind || 0)}`;
  }

  function rebuild(p) {
    const r = p.rebuild;
    if (!r || r.finished) return "—";
    const total = Math.max(r.total, r.done, 1);
    return el(
      "span",
      { class: "nowrap" },
      el("progress", { max: total, value: r.done }),
      ` v${r.version}: ${r.done} / ${r.total} (${Math.round(r.rate)}/s)`,
    );
  }

  function projectionRow(p) {
    const parked = p.parked
      ? el("a", { href: `#parked-${p.name}`, class: "count bad", text: String(p.parked) })
      : el("span", { class: "count", text: "0" });
    return el(
      "tr",
      {
        "data-projection": p.name,
        "data-state": p.state,
        "data-parked": String(p.parked),
        class: [p.stale ? "stale" : "", p.faulted ? "faulted" : ""].join(" ").trim() || null,
      },
      el("td", { class: "name", text: p.name }),
      el("td", {}, stateBadge(p)),
      el("td", { class: "num", text: p.version === null ? "—" : `v${p.version}` }),
      el("td", { class: "mono nowrap", text: p.checkpoint || "—" }),
      el("td", { class: "nowrap", text: behind(p) }),
      el("td", { class: "num" }, parked),
      el(
        "td",
        // An error the projection has since got past (it is live, nothing is parked) is
        // history: shown, but not in red.
        { class: p.state === "live" && p.parked === 0 ? "err past" : "err" },
        p.last_error ? el("div", { text: p.last_error, title: p.last_error }) : "",
      ),
      el("td", { class: "mono nowrap", text: p.holder || "—" }),
      el("td", {}, rebuild(p)),
    );
  }

  async function refreshProjections() {
    const projections = await call("GET", "/projections");
    $("projections").tBodies[0].replaceChildren(...projections.map(projectionRow));
    await refreshParked(projections);
    setStatus(`Updated ${when(new Date().toISOString())}`, false);
  }

  // -- parked events ------------------------------------------------------------------------

  async function refreshParked(projections) {
    const box = $("parked");
    const withParked = projections.filter((p) => p.parked > 0);
    const lists = await Promise.all(
      withParked.map((p) => call("GET", `/projections/${encodeURIComponent(p.name)}/parked`)),
    );
    const wanted = new Map(withParked.map((p, i) => [p.name, lists[i]]));
    // Redraw only what changed, so that a button is not replaced under the pointer.
    for (const name of [...shownParked.keys()]) {
      if (!wanted.has(name) || wanted.get(name).length === 0) {
        shownParked.delete(name);
        box.querySelector(`[data-parked-of="${CSS.escape(name)}"]`)?.remove();
      }
    }
    for (const [name, list] of wanted) {
      if (list.length === 0) continue;
      const json = JSON.stringify(list);
      if (shownParked.get(name) === json) continue;
      shownParked.set(name, json);
      const block = parkedBlock(name, list);
      const old = box.querySelector(`[data-parked-of="${CSS.escape(name)}"]`);
      if (old) old.replaceWith(block);
      else box.append(block);
    }
    box.querySelector(".empty")?.remove();
    if (shownParked.size === 0) {
      box.append(el("p", { class: "empty", text: "No parked events: every event was applied." }));
    }
  }

  function parkedBlock(name, list) {
    const rows = list.map((p) =>
      el(
        "tr",
        { "data-parked-id": p.id, "data-stream": p.stream_id },
        el("td", { class: "nowrap", text: when(p.parked_at) }),
        el("td", {}, streamLink(p.stream_id)),
        el("td", { class: "num", text: String(p.stream_version) }),
        el("td", { class: "nowrap", text: p.event_type + (p.undecodable ? " (undecodable)" : "") }),
        el("td", { class: "num", text: String(p.attempts) }),
        el("td", { class: "err" }, el("div", { text: p.error, title: p.error })),
        el(
          "td",
          { class: "actions" },
          el("button", {
            type: "button",
            class: "primary retry",
            text: "Retry",
            title: "Apply it again now (fix its cause first)",
            onclick: (event) => retry(name, p, event.currentTarget),
          }),
          el("button", {
            type: "button",
            class: "danger discard",
            text: "Discard…",
            title: "Drop it for good, saying why",
            onclick: () => askDiscard(name, p),
          }),
        ),
      ),
    );
    return el(
      "div",
      { "data-parked-of": name },
      el("h3", { id: `parked-${name}` }, `${name} `, el("span", { class: "count bad", text: `(${list.length})` })),
      table(["Parked at", "Stream", "Version", "Type", "Attempts", "Error", ""], rows),
    );
  }

  async function retry(name, parked, button) {
    const row = button.closest("tr");
    row.querySelectorAll("button").forEach((b) => (b.disabled = true));
    button.textContent = "Retrying…";
    try {
      await call("POST", `/projections/${encodeURIComponent(name)}/parked/${encodeURIComponent(parked.id)}/retry`);
      flash(`${name}: ${parked.event_type} of ${parked.stream_id} was applied and unparked.`, true);
    } catch (error) {
      if (refused(error)) return;
      flash(`${name}: retry of ${parked.event_type} of ${parked.stream_id}: ${error.message}`, false);
      shownParked.delete(name); // redraw with the new error and attempts
    }
    await refreshProjections().catch(() => {});
  }

  let discarding = null;

  function askDiscard(name, parked) {
    discarding = { name, parked };
    $("discard-what").textContent =
      `${parked.event_type} of ${parked.stream_id} (version ${parked.stream_version}), parked by ${name}: ${parked.error}`;
    $("discard-reason").value = "";
    $("discard-dialog").showModal();
    $("discard-reason").focus();
  }

  async function discard(event) {
    event.preventDefault();
    if (!discarding) return;
    const { name, parked } = discarding;
    const reason = $("discard-reason").value.trim();
    if (!reason) {
      $("discard-reason").focus();
      return;
    }
    $("discard-confirm").disabled = true;
    try {
      await call(
        "POST",
        `/projections/${encodeURIComponent(name)}/parked/${encodeURIComponent(parked.id)}/discard`,
        { reason },
      );
      flash(`${name}: ${parked.event_type} of ${parked.stream_id} was discarded.`, true);
    } catch (error) {
      if (refused(error)) return;
      flash(`${name}: could not discard: ${error.message}`, false);
    } finally {
      $("discard-confirm").disabled = false;
      discarding = null;
      $("discard-dialog").close();
    }
    await refreshProjections().catch(() => {});
  }

  // -- streams and the tail -------------------------------------------------------------------

  function eventRows(events, withStream) {
    return events.map((e) =>
      el(
        "tr",
        { "data-version": String(e.version), "data-position": e.position },
        withStream ? el("td", {}, streamLink(e.stream_id)) : null,
        el("td", { class: "num", text: String(e.version) }),
        el("td", { class: "mono nowrap", text: e.position }),
        el("td", { class: "nowrap", text: e.type + (e.undecodable ? " (undecodable)" : "") }),
        el("td", { class: "nowrap", text: when(e.recorded_at) }),
        withStream ? null : el("td", { class: "ids", text: e.correlation_id || "—" }),
        withStream ? null : el("td", { class: "ids", text: e.causation_id || "—" }),
        withStream ? null : el("td", { class: "nowrap", text: e.user_id || "—" }),
        withStream
          ? null
          : el(
              "td",
              {},
              el("pre", {
                class: "payload",
                text: typeof e.payload === "string" ? e.payload : JSON.stringify(e.payload, null, 2),
              }),
            ),
      ),
    );
  }

  async function showStream(streamId) {
    const id = streamId.trim();
    if (!id) return;
    $("stream-id").value = id;
    const box = $("stream");
    box.replaceChildren(el("p", { class: "empty", text: `Loading ${id}…` }));
    $("stream-section").scrollIntoView({ behavior: "smooth", block: "start" });
    try {
      const events = await call("GET", `/streams/${encodeURIComponent(id)}`);
      box.replaceChildren(
        el("p", { class: "stream-title" }, el("b", { text: id }), ` — ${events.length} event${events.length === 1 ? "" : "s"}`),
        table(
          ["Version", "Position", "Type", "Recorded", "Correlation id", "Causation id", "By", "Payload"],
          eventRows(events, false),
        ),
      );
      box.querySelector("table").id = "stream-events";
    } catch (error) {
      if (refused(error)) return;
      box.replaceChildren(el("p", { class: "error", text: error.message }));
    }
  }

  async function refreshTail() {
    if (!$("tail-follow").checked && shownTail) return;
    const events = await call("GET", `/events?limit=${TAIL_SIZE}`);
    const json = JSON.stringify(events);
    if (json === shownTail) return;
    shownTail = json;
    const box = $("tail");
    if (events.length === 0) {
      box.replaceChildren(el("p", { class: "empty", text: "No events yet." }));
      return;
    }
    const newestFirst = [...events].reverse();
    box.replaceChildren(table(["Stream", "Version", "Position", "Type", "Recorded"], eventRows(newestFirst, true)));
    box.querySelector("table").id = "tail-events";
  }

  // -- signing in and out --------------------------------------------------------------------------

  function showAdmin() {
    $("login").hidden = true;
    $("admin").hidden = false;
    $("logout").hidden = false;
    session += 1;
    every(PROJECTIONS_EVERY_MS, refreshProjections);
    every(TAIL_EVERY_MS, refreshTail);
  }

  function signOut(message) {
    session += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    shownParked.clear();
    shownTail = "";
    $("parked").replaceChildren(el("p", { class: "empty", text: "Loading…" }));
    $("admin").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    setStatus("", false);
    const note = $("login-error");
    note.textContent = message || "";
    note.hidden = !message;
    $("token").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    const note = $("login-error");
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("sign-in").disabled = true;
    try {
      await call("GET", "/projections");
      $("token").value = "";
      note.hidden = true;
      showAdmin();
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      note.textContent =
        error.status === 403 ? "This token is not a staff token: the admin page is for staff."
        : error.status === 401 ? `The token was refused: ${error.message}.`
        : `Cannot sign in: ${error.message}`;
      note.hidden = false;
    } finally {
      $("sign-in").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("tail-size").textContent = String(TAIL_SIZE);
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", () => signOut("Signed out."));
    $("stream-form").addEventListener("submit", (event) => {
      event.preventDefault();
      showStream($("stream-id").value);
    });
    $("discard-form").addEventListener("submit", discard);
    $("discard-cancel").addEventListener("click", () => {
      discarding = null;
      $("discard-dialog").close();
    });
    $("tail-follow").addEventListener("change", () => refreshTail().catch(() => {}));
    if (sessionStorage.getItem(TOKEN_KEY)) showAdmin();
    else $("token").focus();
  });
})();
