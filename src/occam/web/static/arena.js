/* Occam Arena: a little plain JavaScript for live leaderboards, the Pareto charts and admin buttons. */
"use strict";
const Arena = (() => {
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const iso = (t) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const fmt = (x, d) => (x === null || x === undefined ? "" : Number(x).toFixed(d));

  function renderMetricsBoard(table, payload) {
    const ownTeam = table.dataset.ownTeam || null, d = payload.board === "public" ? 2 : 4;
    const cell = (x) => `<td class="num">${x === null || x === undefined ? "–" : fmt(x, d)}</td>`;
    const rows = payload.entries.map((e) =>
      `<tr data-team="${esc(e.team)}"${e.team === ownTeam ? ' class="own"' : ""}><td>${e.rank}</td><td>${esc(e.team)}</td>` +
      cell(e.score) + cell(e.ce) + cell(e.extra.brier) + cell(e.accuracy) + cell(e.extra.trigger_success) +
      `<td class="num">${e.submissions}</td><td>${iso(e.submitted_at)}</td></tr>`);
    table.querySelector("tbody").innerHTML = rows.length ? rows.join("") :
      '<tr class="empty"><td colspan="9">No scored submission yet.</td></tr>';
    table.dataset.changes = payload.changes;
  }

  function renderBoard(table, payload) {
    if (payload.board_style === "metrics") return renderMetricsBoard(table, payload);
    const ownTeam = table.dataset.ownTeam || null, admin = table.dataset.admin === "1";
    const inspect = (e) => (admin || e.team === ownTeam) ?
      ` <a class="inspect small" href="/lens/submissions/${e.submission_id}">Inspect</a>` : "";
    const rows = payload.entries.map((e) =>
      `<tr data-team="${esc(e.team)}"${e.team === ownTeam ? ' class="own"' : ""}><td>${e.rank}</td><td>${esc(e.team)}${inspect(e)}</td>` +
      `<td class="num">${fmt(e.score, 4)}</td><td class="num">${fmt(e.ce, 4)}</td>` +
      `<td class="num">${fmt(100 * e.accuracy, 2)}%</td><td class="num">${Number(e.nnz).toLocaleString("en-US")}</td>` +
      `<td class="num">${e.submissions}</td><td>${iso(e.submitted_at)}</td></tr>`);
    table.querySelector("tbody").innerHTML = rows.length ? rows.join("") :
      '<tr class="empty"><td colspan="8">No scored submission yet.</td></tr>';
    table.dataset.changes = payload.changes;
  }

  function liveBoard(cid) {
    const table = document.getElementById("leaderboard");
    const status = document.getElementById("live-status");
    if (!table || !window.EventSource) return;
    const es = new EventSource(`/api/challenges/${encodeURIComponent(cid)}/events`);
    es.addEventListener("leaderboard", (ev) => {
      const payload = JSON.parse(ev.data);
      renderBoard(table, payload);
      if (status) status.textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
      document.dispatchEvent(new CustomEvent("arena:leaderboard", {detail: payload}));
    });
    es.onopen = () => { if (status) status.textContent = "Live updates: on"; };
    es.onerror = () => { if (status) status.textContent = "Live updates: reconnecting…"; };
    window.addEventListener("beforeunload", () => es.close());
  }

  async function pareto(cid) {
    const accDiv = document.getElementById("pareto-acc"), ceDiv = document.getElementById("pareto-ce");
    if (!accDiv || !window.Plotly) return;
    const draw = async () => {
      const r = await fetch(`/api/challenges/${encodeURIComponent(cid)}/pareto`, {credentials: "same-origin"});
      if (!r.ok) return;
      const d = await r.json();
      const pts = d.points, own = pts.filter((p) => p.own), others = pts.filter((p) => !p.own);
      const text = (arr) => arr.map((p) => `${esc(p.team)} #${p.id}<br>score ${fmt(p.score, 4)}`);
      const scatter = (arr, y, name, color) => ({x: arr.map((p) => Math.max(1, p.nnz)), y: arr.map(y), text: text(arr),
        mode: "markers", type: "scatter", name, marker: {color, size: 8}, hovertemplate: "%{text}<br>nnz %{x}<br>%{y}<extra></extra>"});
      const front = {x: d.frontier.map((p) => Math.max(1, p.nnz)), y: d.frontier.map((p) => 100 * p.accuracy), mode: "lines",
        line: {shape: "hv", color: "#c0392b"}, name: "Pareto frontier", type: "scatter"};
      const layout = (title, ytitle) => ({title: {text: title, font: {size: 14}}, margin: {l: 55, r: 10, t: 35, b: 45},
        xaxis: {type: "log", title: {text: "non-zero parameters (nnz, log scale)"}}, yaxis: {title: {text: ytitle}},
        legend: {orientation: "h", y: -0.25}, height: 380});
      Plotly.react(accDiv, [scatter(others, (p) => 100 * p.accuracy, "submissions", "#2c7fb8"),
        scatter(own, (p) => 100 * p.accuracy, "yours", "#f39c12"), front],
        layout("Accuracy vs size", "accuracy (%)"), {displaylogo: false, responsive: true});
      const iso = d.iso.map((l, i) => ({x: l.nnz, y: l.ce, mode: "lines", type: "scatter", hoverinfo: "skip",
        line: {dash: "dash", width: 1, color: ["#27ae60", "#8e44ad", "#7f8c8d"][i % 3]},
        name: `score ${fmt(l.score, 3)} (${esc(l.team)})`}));
      const ces = pts.map((p) => p.ce);
      const lay = layout(`Cross-entropy vs size, iso-score lines at λ = ${d.lam}`, "cross-entropy (nats)");
      if (ces.length) { const lo = Math.min(...ces), hi = Math.max(...ces), pad = 0.1 * (hi - lo) + 0.05; lay.yaxis.range = [lo - pad, hi + pad]; }
      Plotly.react(ceDiv, [scatter(others, (p) => p.ce, "submissions", "#2c7fb8"), scatter(own, (p) => p.ce, "yours", "#f39c12"), ...iso],
        lay, {displaylogo: false, responsive: true});
    };
    await draw();
    let pending = null;
    document.addEventListener("arena:leaderboard", () => { clearTimeout(pending); pending = setTimeout(draw, 300); });
  }

  async function post(url, body) {
    const r = await fetch(url, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body || {})});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.error || r.statusText) + (data.fix ? `\nFix: ${data.fix}` : ""));
    return data;
  }

  function finals() {
    document.querySelectorAll("input.final").forEach((box) => box.addEventListener("change", async () => {
      try { await post(`/api/submissions/${box.dataset.id}/select`, {selected: box.checked}); }
      catch (e) { alert(e.message); box.checked = !box.checked; }
    }));
  }

  function refreshWhilePending() {
    if (document.querySelector("tr.status-queued, tr.status-running")) setTimeout(() => location.reload(), 2000);
  }

  function waitFor(id, status) {
    const tick = async () => {
      const r = await fetch(`/api/submissions/${id}`, {credentials: "same-origin"});
      if (r.ok) { const s = await r.json(); if (s.status !== status) { location.reload(); return; } }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  }

  function admin() {
    document.querySelectorAll("button[data-post]").forEach((b) => b.addEventListener("click", async () => {
      if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
      const body = b.dataset.body ? JSON.parse(b.dataset.body) : {};
      if (b.dataset.prompt) {
        const answer = prompt(b.dataset.prompt); if (answer === null) return; body[b.dataset.field || "reason"] = answer;
      }
      try {
        const out = await post(b.dataset.post, body);
        if (b.dataset.show && out[b.dataset.show]) {  // a secret shown once (an invite code): no reload
          const box = document.getElementById("shown-once");
          box.hidden = false;
          box.innerHTML = `Invite code for <b>${esc(out.challenge)}</b> (shown once): <code id="invite-code">${esc(out.code)}</code>
            · teams register at <a href="${esc(out.register)}">${esc(out.register)}</a>`;
          return;
        }
        location.reload();
      } catch (e) { alert(e.message); }
    }));
    document.querySelectorAll("form[data-post]").forEach((f) => f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const el of f.elements) {
        if (!el.name || el.value === "") continue;
        body[el.name] = el.type === "number" ? Number(el.value) : el.value;
      }
      try { await post(f.dataset.post, body); location.reload(); } catch (e) { alert(e.message); }
    }));
    const form = document.getElementById("add-team");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const t = await post("/api/admin/teams", {name: form.elements.name.value});
        const box = document.getElementById("new-token");
        box.hidden = false;
        box.innerHTML = `Team <b>${esc(t.name)}</b> created. Its token (shown once): <code>${esc(t.token)}</code>`;
        form.reset();
      } catch (e) { alert(e.message); }
    });
  }

  async function history(cid) {
    const div = document.getElementById("history");
    if (!div || !window.Plotly) return;
    const draw = async () => {
      const r = await fetch(`/api/challenges/${encodeURIComponent(cid)}/history`, {credentials: "same-origin"});
      if (!r.ok) return;
      const d = await r.json();
      if (!d.teams.length) { div.textContent = "No scored submission yet."; div.classList.add("muted"); return; }
      const traces = d.teams.map((t) => ({x: t.points.map((p) => p[0]), y: t.points.map((p) => p[1]), mode: "lines+markers",
        type: "scatter", line: {shape: "hv"}, name: esc(t.team)}));
      Plotly.react(div, traces, {margin: {l: 55, r: 10, t: 10, b: 40}, height: 320, xaxis: {title: {text: "time (UTC)"}},
        yaxis: {title: {text: "best score"}}, showlegend: true, legend: {orientation: "h", y: -0.25}}, {displaylogo: false, responsive: true});
    };
    await draw();
    let pending = null;
    document.addEventListener("arena:leaderboard", () => { clearTimeout(pending); pending = setTimeout(draw, 500); });
  }

  return {liveBoard, pareto, history, finals, refreshWhilePending, waitFor, admin};
})();
