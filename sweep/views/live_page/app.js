/* The sweep dashboard's page: routes by path, polls the JSON endpoints once a second and
   redraws only what changed (Plotly.react keeps zoom and hover). Every string from the
   results goes into the page as text, never as HTML. */
"use strict";

(function () {
  const POLL_MS = 1000;
  const app = document.getElementById("app");
  const live = document.getElementById("live");
  const crumbs = document.getElementById("crumbs");
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  // What the page shows, for tests and the curious (window.sweepDashboard in a console).
  const stats = { view: null, version: null, updates: 0, trials: 0, rows: 0, curvePoints: 0,
                  curveTraces: 0, figures: 0, loadedAt: Date.now(), lastError: null };
  window.sweepDashboard = stats;

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* text */ }
      const error = new Error(response.status + " " + message);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function fmt(value) {
    if (value === null || value === undefined) return "\u2014";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return Number(value.toPrecision(6)).toString();
    }
    if (typeof value === "boolean") return value ? "True" : "False";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function fmtTime(iso) {
    if (!iso) return "\u2014";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  const sweepUrl = (key) => "/sweep/" + encodeURIComponent(key);
  const trialUrl = (key, id) => sweepUrl(key) + "/trial/" + encodeURIComponent(id);
  const api = (key, tail) => "/api/sweeps/" + encodeURIComponent(key) + (tail || "");

  // Replace a node's children; null, undefined and false are left out.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined &&
                                                          c !== false));
  }

  function setCrumbs(...parts) {
    fill(crumbs, ...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
  }

  function problemsBox(items, bad) {
    const list = (items || []).filter(Boolean);
    if (!list.length) return null;
    return el("ul", { class: "problems" + (bad ? " bad" : "") },
              list.map((p) => el("li", null, p)));
  }

  function badge(state) { return el("span", { class: "badge " + state }, state); }

  // A figure slot: a plotly div and a message shown instead when there is nothing to draw.
  function figureSlot(id) {
    const div = el("div", { id: id, class: "figure" });
    const note = el("p", { class: "empty" }, "nothing to draw yet");
    const box = el("div", null, div, note);
    return { box, div, note, drawn: false, last: null };
  }

  function draw(slot, fig, message) {
    const key = fig ? JSON.stringify(fig) : null;
    if (key !== null && key === slot.last) return;  // unchanged: no redraw
    slot.last = key;
    if (!fig) {
      if (slot.drawn) { Plotly.purge(slot.div); slot.drawn = false; }
      slot.div.style.display = "none";
      slot.note.style.display = "";
      slot.note.textContent = message || "nothing to draw yet";
      return;
    }
    slot.div.style.display = "";
    slot.note.style.display = "none";
    const layout = Object.assign({}, fig.layout || {}, { uirevision: "keep", autosize: true });
    // The width follows the window; the height is the figure's own (autosize would take
    // the container's, which is whatever the figure last left there).
    slot.div.style.height = (layout.height || 450) + "px";
    Plotly.react(slot.div, fig.data || [], layout, PLOT_CONFIG);
    slot.drawn = true;
  }

  function tracePoints(div) {
    let n = 0;
    for (const trace of div._fullData || []) {
      n += trace._length !== undefined ? trace._length : (trace.x ? trace.x.length : 0);
    }
    return n;
  }

  function stageBar(stage) {
    const counts = stage.counts || {};
    const total = Math.max(stage.planned || 0, stage.done + stage.running, 1);
    const parts = ["ok", "stopped", "timeout", "failed"].map((s) =>
      el("span", { class: s, style: "width:" + (100 * (counts[s] || 0) / total) + "%",
                   title: (counts[s] || 0) + " " + s }));
    parts.push(el("span", { class: "running",
                            style: "width:" + (100 * stage.running / total) + "%",
                            title: stage.running + " running" }));
    return el("div", { class: "bar" }, parts);
  }

  function stageLine(stage) {
    const counts = Object.entries(stage.counts || {}).filter(([, n]) => n)
      .map(([s, n]) => n + " " + s).join(", ");
    const planned = stage.planned !== null && stage.planned !== undefined
      ? stage.done + " of " + stage.planned : stage.done + " done";
    return planned + (counts ? " (" + counts + ")" : "") +
      (stage.running ? "; " + stage.running + " running" : "");
  }

  // ------------------------------------------------------------------ the list of sweeps

  function listView() {
    setCrumbs();
    document.title = "sweep dashboard";
    const rootsBox = el("div");
    const body = el("tbody");
    const table = el("table", { id: "sweeps" },
      el("thead", null, el("tr", null, ["sweep", "state", "metric", "trials", "progress",
                                        "best", "driver", "problems"].map((h) => el("th", null, h)))),
      body);
    fill(app, el("h1", null, "Sweeps"), rootsBox,
                        el("div", { class: "card scroll" }, table));
    return {
      name: "list",
      async update() {
        const data = await getJSON("/api/sweeps");
        fill(rootsBox, ...[problemsBox(data.roots.filter((r) => r.error)
          .map((r) => r.root + ": " + r.error), true)].filter(Boolean));
        fill(body, ...data.sweeps.map((s) => el("tr", null,
          el("td", null, el("a", { href: sweepUrl(s.key) }, s.name),
             s.key !== s.name ? el("div", { class: "small" }, s.location) : null),
          el("td", null, badge(s.state)),
          el("td", null, s.metric ? s.goal + " " + s.metric : "\u2014"),
          el("td", { class: "num" }, s.trials),
          el("td", null, s.stages.map((st) => el("div", { class: "small" },
            "stage " + st.index + ": " + stageLine(st)))),
          el("td", { class: "num" }, s.best ? fmt(s.best.value) : "\u2014"),
          el("td", { class: "small" }, driverText(s.driver)),
          el("td", { class: "small" }, s.error || (s.problems.length ? s.problems.length +
             " problem" + (s.problems.length > 1 ? "s" : "") : "")))));
        if (!data.sweeps.length) {
          fill(body, el("tr", null, el("td", { colspan: 8, class: "empty" },
            "no sweep under " + data.roots.map((r) => r.root).join(", ") + " yet")));
        }
        stats.rows = data.sweeps.length;
      },
    };
  }

  function driverText(driver) {
    if (!driver || !driver.state) return "";
    if (driver.state === "none") return "no driver";
    if (driver.state === "unknown") return "lock unreadable: " + (driver.problem || "");
    const who = driver.pid ? "pid " + driver.pid + " on " + driver.host : "";
    return driver.state + (who ? ": " + who : "");
  }

  // ------------------------------------------------------------------ one sweep

  function sweepView(key) {
    setCrumbs(el("a", { href: sweepUrl(key) }, key));
    const head = el("div");
    const problems = el("div");
    const stages = el("div", { class: "stages" });
    const best = figureSlot("fig-best");
    const curves = figureSlot("fig-curves");
    const importance = figureSlot("fig-importance");
    const importanceNote = el("p", { class: "small" });
    const importanceMore = el("div");
    const parcoords = figureSlot("fig-parcoords");
    const params = el("div", { class: "grid" });
    const paramSlots = [];
    const tableState = { order: "top", k: 100, sort: null, data: null };
    const tableBox = el("div", { class: "scroll" });
    const tableTitle = el("h2", null, "Trials");
    const controls = el("div", { class: "controls" });

    function button(label, on, click) {
      return el("button", { class: on ? "on" : "", onclick: click, type: "button" }, label);
    }
    function renderControls() {
      fill(controls, 
        button("best", tableState.order === "top", () => setTable({ order: "top" })),
        button("latest", tableState.order === "latest", () => setTable({ order: "latest" })),
        el("span", { class: "small" }, " rows:"),
        ...[10, 100, 1000].map((k) => button(String(k), tableState.k === k,
                                              () => setTable({ k }))));
    }
    async function setTable(change) {
      Object.assign(tableState, change);
      renderControls();
      await loadTable();
    }
    async function loadTable() {
      tableState.data = await getJSON(api(key, "/table?order=" + tableState.order + "&k=" +
                                           tableState.k));
      renderTable();
    }
    function renderTable() {
      const data = tableState.data;
      if (!data || !data.columns.length) {
        fill(tableBox, el("p", { class: "empty" }, "no trial has finished yet"));
        stats.rows = 0;
        return;
      }
      tableTitle.textContent = tableState.order === "top"
        ? "Best " + Math.min(tableState.k, data.total) + " of " + data.total + " ranked trials"
        : "Last " + Math.min(tableState.k, data.total) + " of " + data.total + " trials";
      const rows = data.rows.slice();
      const sort = tableState.sort;
      if (sort) {
        rows.sort((a, b) => compare(a[sort.index], b[sort.index]) * (sort.asc ? 1 : -1));
      }
      const idIndex = data.columns.findIndex((c) => c.key === "trial_id");
      const head = el("tr", null, data.columns.map((c, i) => el("th", {
        class: sort && sort.index === i ? "sorted" + (sort.asc ? " asc" : "") : "",
        title: "sort by " + c.label,
        onclick: () => {
          tableState.sort = sort && sort.index === i ? { index: i, asc: !sort.asc }
                                                   : { index: i, asc: true };
          renderTable();
        } }, c.label)));
      const body = rows.map((row) => el("tr", {
        class: "trial", "data-trial": row[idIndex],
        onclick: (event) => {
          if (event.target.tagName !== "A") location.assign(trialUrl(key, row[idIndex]));
        } }, data.columns.map((c, i) => {
          const v = row[i];
          if (c.key === "trial_id") return el("td", null, el("a", { href: trialUrl(key, v) }, v));
          if (c.key === "parent_id" && v) return el("td", null, el("a", { href: trialUrl(key, v) }, v));
          if (c.key === "status") return el("td", { class: "status-" + v }, v);
          if (c.kind === "time") return el("td", null, fmtTime(v));
          return el("td", { class: typeof v === "number" ? "num" : "" }, fmt(v));
        })));
      fill(tableBox, el("table", { id: "trials" }, el("thead", null, head),
                                  el("tbody", null, body)));
      stats.rows = rows.length;
    }

    renderControls();
    fill(app, 
      head, problems,
      el("div", { class: "card" }, el("h2", null, "Progress by stage"), stages),
      el("div", { class: "grid2" },
         el("div", { class: "card" }, best.box),
         el("div", { class: "card" }, el("h2", null, "Parameter importance"), importanceNote,
            importance.box, importanceMore)),
      el("div", { class: "card" }, tableTitle, controls, tableBox),
      el("div", { class: "card" }, el("h2", null, "Learning curves"), curves.box),
      el("div", { class: "card" }, el("h2", null, "Metric against each parameter"), params),
      el("div", { class: "card" }, el("h2", null, "Parallel coordinates"), parcoords.box));

    let version = null;
    let importanceVersion = null;
    let importanceBusy = false;

    function renderSummary(s) {
      document.title = s.name + " \u2014 sweep dashboard";
      stats.trials = s.trials;
      fill(head, 
        el("h1", null, s.name, " ", badge(s.state)),
        el("p", { class: "sub" },
           (s.metric ? s.goal + " " + s.metric : "no metric: nothing is ranked") + " \u00b7 " +
           s.trials + " trials (" + s.ranked + " ranked)" +
           (s.pending ? " \u00b7 " + s.pending + " not yet in Parquet" : "") + " \u00b7 " +
           driverText(s.driver) + " \u00b7 " + s.location),
        ...[s.best ? el("p", null, "best " + s.metric + " = ", el("b", null, fmt(s.best.value)),
                    " (trial ", el("a", { href: trialUrl(key, s.best.trial_id) },
                                   s.best.trial_id), ", stage " + s.best.stage + ")") : null]
          .filter(Boolean));
      fill(problems, ...[problemsBox(s.error ? [s.error] : [], true),
                                   problemsBox(s.problems, false)].filter(Boolean));
      fill(stages, ...(s.stages.length ? s.stages.map((st) => el("div", { class: "stage" },
        el("div", { class: "title" }, "stage " + st.index +
           (st.plan ? " \u00b7 " + st.plan : "") +
           (Object.keys(st.fixed || {}).length ? " \u00b7 " + Object.entries(st.fixed)
             .map(([k, v]) => k + "=" + fmt(v)).join(", ") : "")),
        stageBar(st), el("div", { class: "small" }, stageLine(st)),
        st.best ? el("div", { class: "small" }, "best " + fmt(st.best.value) + " (",
                      el("a", { href: trialUrl(key, st.best.trial_id) }, st.best.trial_id), ")")
                : null))
        : [el("p", { class: "empty" }, "no trial yet")]));
    }

    function renderFigures(figs) {
      draw(best, figs.best, "no ranked trial yet");
      draw(curves, figs.curves, "no trial has reported a step yet");
      draw(parcoords, figs.parcoords, "no parameter varies yet");
      const list = figs.params || [];
      while (paramSlots.length < list.length) {
        const slot = figureSlot("fig-param-" + paramSlots.length);
        paramSlots.push(slot);
        params.append(el("div", null, slot.box));
      }
      paramSlots.forEach((slot, i) => draw(slot, list[i] ? list[i].figure : null, "\u2014"));
      if (!list.length) {
        fill(params, el("p", { class: "empty" }, "no ranked trial yet"));
        paramSlots.length = 0;
      }
      stats.curvePoints = curves.drawn ? tracePoints(curves.div) : 0;
      stats.curveTraces = curves.drawn ? (curves.div._fullData || []).length : 0;
      stats.figures = document.querySelectorAll(".js-plotly-plot").length;
    }

    async function updateImportance() {
      const imp = await getJSON(api(key, "/importance"));
      importanceBusy = imp.busy;
      importanceVersion = imp.version;
      if (!imp.result) {
        importanceNote.textContent = imp.busy ? "fitting the forest\u2026"
          : (imp.ranked < 8 ? "needs 8 ranked trials (" + imp.ranked + " so far)" : "");
        draw(importance, null, imp.busy ? "fitting\u2026" : "not yet");
        return;
      }
      const r = imp.result;
      if (!r.params.length) {
        importanceNote.textContent = (r.notes || []).join("; ");
        draw(importance, null, "not available");
        fill(importanceMore);
        return;
      }
      importanceNote.textContent = "fANOVA on " + imp.trials_seen + " of " + imp.ranked +
        " ranked trials" + (imp.busy ? " (refitting\u2026)" : "") +
        "; light: alone and with others, dark: alone; whiskers: spread over " + r.resamples +
        " resamples";
      draw(importance, imp.figure, "not available");
      const pairs = (r.pairs || []).filter((p) => p.value >= 0.01);
      fill(importanceMore, ...[
        pairs.length ? el("p", { class: "small" }, "interactions: " + pairs.map((p) =>
          p.a + " \u00d7 " + p.b + " " + (100 * p.value).toFixed(1) + "%").join(", ")) : null,
        problemsBox(r.notes, false)].filter(Boolean));
    }

    return {
      name: "sweep",
      async update() {
        const s = await getJSON(api(key, version === null ? "" : "?since=" + version));
        if (!s.same) {
          renderSummary(s);
          const [figs] = await Promise.all([getJSON(api(key, "/figures")), loadTable()]);
          renderFigures(figs);
          version = s.version;
          stats.version = version;
          stats.updates += 1;
        }
        if (importanceBusy || importanceVersion !== version) await updateImportance();
      },
    };
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  // ------------------------------------------------------------------ one trial

  function trialView(key, id) {
    setCrumbs(el("a", { href: sweepUrl(key) }, key), el("span", null, id));
    document.title = id + " \u2014 sweep dashboard";
    const head = el("div");
    const info = el("div", { class: "grid2" });
    const error = el("div");
    const curve = figureSlot("fig-trial-curve");
    const lineage = el("div");
    fill(app, head, error, info,
                        el("div", { class: "card" }, el("h2", null, "Learning curve"), curve.box),
                        el("div", { class: "card" }, el("h2", null, "Lineage"), lineage));
    let version = null;

    function kv(entries) {
      if (!entries.length) return el("p", { class: "empty" }, "none");
      return el("dl", { class: "kv" }, entries.flatMap(([k, v]) => [el("dt", null, k),
                                                                   el("dd", null, v)]));
    }
    function brief(t) {
      return el("li", null, el("a", { href: trialUrl(key, t.trial_id) }, t.trial_id),
                t.known ? " \u00b7 stage " + t.stage + " \u00b7 " + t.status +
                          (t.metric !== null ? " \u00b7 " + fmt(t.metric) : "") : " (not stored)");
    }

    return {
      name: "trial",
      async update() {
        const s = await getJSON(api(key, version === null ? "" : "?since=" + version));
        if (s.same) return;
        version = s.version;
        const t = await getJSON(api(key, "/trials/" + encodeURIComponent(id)));
        const f = t.fields || {};
        const status = t.running ? "running" : f.status;
        fill(head, 
          el("h1", null, "trial " + t.trial_id + " ", el("span", { class: "badge " +
             (status === "ok" ? "finished" : status === "running" ? "running" : "error") },
             status)),
          el("p", { class: "sub" }, "sweep ", el("a", { href: sweepUrl(key) }, key),
             t.rank ? " \u00b7 rank " + t.rank + " of " + t.ranked : "",
             f.stage !== undefined ? " \u00b7 stage " + f.stage : ""));
        fill(error, ...(t.error ? [el("div", { class: "card" },
          el("h2", null, "Error"), el("pre", { class: "error", id: "trial-error" }, t.error))] : []));
        fill(info, 
          el("div", { class: "card" }, el("h2", null, "Parameters"),
             kv(Object.entries(t.params || {}).map(([k, v]) => [k, fmt(v)]))),
          el("div", { class: "card" }, el("h2", null, "Result"),
             kv([...Object.entries(t.metrics || {}).map(([k, v]) => [k, fmt(v)]),
                 ...Object.entries(f).map(([k, v]) => [k, k.endsWith("_at") ? fmtTime(v)
                                                          : fmt(v)])])));
        draw(curve, t.figure, "this trial reported no step");
        const parents = (t.lineage && t.lineage.parents) || [];
        const children = (t.lineage && t.lineage.children) || [];
        fill(lineage, 
          el("p", { class: "small" }, parents.length ? "came from (nearest first):"
                                                     : "no parent: sampled, not refined"),
          parents.length ? el("ul", null, parents.map(brief)) : null,
          el("p", { class: "small" }, children.length ? "its children:" : "no children"),
          children.length ? el("ul", null, children.map(brief)) : null);
        stats.version = version;
        stats.updates += 1;
      },
    };
  }

  // ------------------------------------------------------------------ routing, polling

  function route() {
    const path = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (!path.length) return listView();
    if (path[0] === "sweep" && path.length === 2) return sweepView(path[1]);
    if (path[0] === "sweep" && path.length === 4 && path[2] === "trial") {
      return trialView(path[1], path[3]);
    }
    fill(app, el("p", { class: "empty" }, "no such page: ", el("a", { href: "/" },
                                                                       "all sweeps")));
    return { name: "none", async update() {} };
  }

  const view = route();
  stats.view = view.name;
  let running = false;

  async function tick() {
    if (running) return;
    running = true;
    try {
      await view.update();
      live.textContent = "live \u00b7 " + new Date().toLocaleTimeString();
      live.classList.remove("down");
      stats.lastError = null;
    } catch (error) {
      live.textContent = "cannot reach the dashboard: " + error.message;
      live.classList.add("down");
      stats.lastError = error.message;
    } finally {
      running = false;
      setTimeout(tick, POLL_MS);
    }
  }
  tick();
})();
