// Lens page: plain JS over the JSON API (or, in a static export, over window.LENS_STATIC).
"use strict";
const L = window.LENS, S = window.LENS_STATIC || null;
const $ = (id) => document.getElementById(id);
const API = `${L.base}/api/${L.mid}/`;
let OV = null, SHAPE = null;

function fmt(x, d = 4) { return x === null || x === undefined ? "–" : (typeof x === "number" ? x.toFixed(d) : String(x)); }
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }

async function api(path, body) {
  if (S) {
    const hit = S[API + path];
    if (hit === undefined) throw new Error("not in this static export (open the live page to compute it)");
    return hit;
  }
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(API + path, opts);
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}
// One route serves every view: GET views/NAME?params (sorted, defaults filled from the view's declared
// parameters, so a static export finds the same key); job views: POST views/NAME, then poll views/NAME/jobs/ID.
const SPECS = Object.fromEntries((L.views || []).map((v) => [v.name, v.params]));
function canon(name, params) {
  const full = {};
  for (const p of SPECS[name] || []) {
    const v = params[p.name] !== undefined ? params[p.name] : p.default;
    if (v !== null && v !== undefined) full[p.name] = v;
  }
  return Object.keys(full).sort().map((k) => `${k}=${encodeURIComponent(String(full[k]))}`).join("&");
}
// Compare mode (a second model held by the session): every view's request adds compare=1; the panel draws
// model A as usual and shows the server's side-by-side fragment (both results, differences named) below it.
let COMPARE = false;
function compareBox(name) {
  const sec = $(`view-${name}`);
  if (!sec) return null;
  let box = sec.querySelector(".compare-out");
  if (!box) { box = document.createElement("div"); box.className = "compare-out"; sec.appendChild(box); }
  return box;
}
async function viewFull(name, params) {
  const q = canon(name, params || {});
  const cmp = COMPARE && !S;
  const r = await api(`views/${name}` + (q ? "?" + q : "") + (cmp ? (q ? "&" : "?") + "compare=1" : ""));
  const box = compareBox(name);
  if (box) box.innerHTML = cmp && r.compare ? r.html : "";
  return r;
}
async function view(name, params) { return (await viewFull(name, params)).data; }
async function runJob(name, params, onStep) {
  let j = await api(`views/${name}`, params);
  while (j.state === "running") {
    onStep(j);
    await new Promise((r) => setTimeout(r, 250));
    j = await api(`views/${name}/jobs/${j.id}`);
  }
  if (j.state === "error") throw new Error(j.error);
  return j;
}
function fail(el, e) { el.innerHTML = `<span class="err">${esc(e.message || e)}</span>`; }
function metricsLine(m) { return `val loss <b>${fmt(m.ce)}</b> · accuracy <b>${fmt(m.accuracy)}</b> · nnz <b>${m.nnz}</b> · score <b>${fmt(m.score)}</b> <span class="nval">(${m.n} val examples)</span>`; }
function cards(list) {
  return `<div class="imgs">${list.map((c) => `<figure><img src="${c.src}"><figcaption>#${c.index} ${esc(OV ? OV.classes[c.label] : c.label)}${c.act !== undefined ? " " + fmt(c.act, 2) : ""}</figcaption></figure>`).join("")}</div>`;
}
function dname(w) { const d = OV && OV.display_names ? OV.display_names[w] : null; return d && d !== w ? `${d} (${w})` : w; }
function plot(el, data, layout) { if (window.Plotly) Plotly.react(el, data, Object.assign({margin: {l: 40, r: 10, t: 20, b: 40}}, layout || {}), {displayModeBar: false, staticPlot: !!S}); }

// ---- overview -------------------------------------------------------------------------------
async function overview() {
  OV = await view("overview");
  SHAPE = OV.info.input_shape;
  $("ov-metrics").innerHTML = metricsLine(OV.metrics) + ` · λ ${OV.metrics.lam}` +
    (OV.output_note ? `<br><span class="hint" id="ov-probs">${esc(OV.output_note)}</span>` : "");
  $("n-val").textContent = `every view uses the same ${OV.n_val} validation examples`;
  $("ov-graph").innerHTML = `<div class="node">input ${esc(OV.input)} [${SHAPE.join("×")}]</div>` + OV.nodes.map((n) =>
    `<div class="node ${n.nnz ? "w" : ""}" title="${esc(n.weights.map((w) => dname(w.name) + " " + w.shape.join("×") + " nnz " + w.nnz).join("; "))}">` +
    `${esc(n.op)} → <code>${esc(n.output)}</code> [${n.shape.join("×")}]${n.nnz ? ` · nnz ${n.nnz}` : ""}</div>`).join("");
  plot($("ov-confusion"), [{type: "heatmap", z: OV.confusion, x: OV.classes, y: OV.classes, colorscale: "Blues"}],
       {xaxis: {title: "predicted", automargin: true, tickangle: -40}, yaxis: {title: "true", autorange: "reversed", automargin: true},
        margin: {l: 10, r: 10, t: 20, b: 10}});
  const layers = OV.layers.map((l) => `<option value="${esc(l.name)}">${esc(l.name)} (${esc(l.op)}, ${l.units})</option>`).join("");
  const defaultLayer = (S && S.defaults) ? S.defaults.layer : (OV.layers.length > 1 ? OV.layers[Math.floor((OV.layers.length - 1) / 2)].name : OV.layers[0].name);
  document.querySelectorAll(".layer-select").forEach((s) => { s.innerHTML = layers; s.value = defaultLayer; });
  const imgs = OV.images.map((im) => `<option value="${im.index}">#${im.index} (${esc(OV.classes[im.label])})</option>`).join("");
  document.querySelectorAll(".image-select").forEach((s) => {  // image pickers: index and class name
    const keep = s.value;
    s.innerHTML = imgs;
    if (keep !== "" && s.querySelector(`option[value="${keep}"]`)) s.value = keep; else if (s.dataset.default) s.value = s.dataset.default;
  });
  const classes = OV.classes.map((c, i) => `<option value="${i}">${i}: ${esc(c)}</option>`).join("");
  document.querySelectorAll(".class-select").forEach((s) => {  // class pickers show the class names
    const keep = s.value;
    s.innerHTML = (s.dataset.optional ? '<option value="">(the prediction)</option>' : "") + classes;
    s.value = keep !== "" && keep !== undefined && s.querySelector(`option[value="${keep}"]`) ? keep : (s.dataset.default || "");
  });
}

// ---- units ----------------------------------------------------------------------------------
async function showUnit() {
  const layer = $("unit-layer").value, unit = +$("unit-index").value, el = $("unit-detail");
  try {
    const d = await view("units", {layer, unit});
    $("unit-link").href = S ? `#unit-${encodeURIComponent(layer)}-${unit}` : `${L.base}/m/${L.mid}/units/${encodeURIComponent(layer)}/${unit}`;
    el.innerHTML = `<p>${esc(layer)}[${unit}] of ${d.units} · ablate to 0: Δloss <b>${fmt(d.d_ce_zero)}</b>, Δacc <b>${fmt(d.d_acc_zero)}</b>` +
      ` · ablate to mean: Δloss <b>${fmt(d.d_ce_mean)}</b>, Δacc <b>${fmt(d.d_acc_mean)}</b></p>` +
      `<p>top-activating</p>${cards(d.top)}<p>bottom-activating</p>${cards(d.bottom)}<div id="unit-hist" class="plot" style="height:200px"></div>`;
    const e = d.hist.edges, centers = d.hist.counts.map((_, i) => (e[i] + e[i + 1]) / 2);
    plot($("unit-hist"), [{type: "bar", x: centers, y: d.hist.counts}], {xaxis: {title: "activation"}});
  } catch (e) { fail(el, e); }
}

// ---- feature visualization ------------------------------------------------------------------
async function featvis() {
  const el = $("fv-out"), kind = $("fv-kind").value, i = +$("fv-index").value;
  el.textContent = "optimizing…";
  try {
    const p = kind === "cls" ? {cls: i} : {layer: $("fv-layer").value, unit: i};
    if (!S && +$("fv-steps").value !== 128) p.steps = +$("fv-steps").value;
    const d = await view("featvis", p);
    el.innerHTML = `<figure><img id="fv-img" src="${d.src}"><figcaption>${esc(d.target)} · activation ${fmt(d.activation, 3)}${d.cached ? " (cached)" : ""}</figcaption></figure>`;
  } catch (e) { fail(el, e); }
}

// ---- readouts -------------------------------------------------------------------------------
async function readouts() {
  const el = $("ro-table");
  el.textContent = "training probes…";
  try {
    const d = await view("readouts");
    el.innerHTML = `<table class="t"><tr><th>layer</th><th>units</th><th>probe acc</th><th>direct acc</th></tr>` +
      d.layers.map((r) => `<tr><td>${esc(r.layer)}</td><td>${r.units}</td><td>${fmt(r.probe_acc, 3)}</td><td>${fmt(r.direct_acc, 3)}</td></tr>`).join("") + "</table>";
    plot($("ro-plot"), [
      {type: "scatter", mode: "lines+markers", name: "linear probe", x: d.layers.map((r) => r.layer), y: d.layers.map((r) => r.probe_acc)},
      {type: "scatter", mode: "markers", name: "direct projection", x: d.layers.map((r) => r.layer), y: d.layers.map((r) => r.direct_acc)}],
      {yaxis: {title: "val accuracy", range: [0, 1]}, legend: {orientation: "h"}});
  } catch (e) { fail(el, e); }
}

// ---- attribution ----------------------------------------------------------------------------
async function attribution() {
  const el = $("attr-out");
  el.textContent = "…";
  try {
    const d = await view("attribution", {index: +$("attr-index").value});
    const fig = (src, cap) => `<figure><img src="${src}"><figcaption>${cap}</figcaption></figure>`;
    el.innerHTML = `<p>label ${esc(OV.classes[d.label])}, explaining class ${esc(OV.classes[d.target])} (p=${fmt(d.probs[d.target], 3)})</p><div class="imgs">` +
      fig(d.image, "image") + fig(d.saliency, "saliency") + fig(d.integrated_gradients, "integrated gradients") + fig(d.occlusion, "occlusion") + "</div>";
  } catch (e) { fail(el, e); }
}

// ---- adversarial + painting -------------------------------------------------------------------
let PIX = null;
function probsBar(p) { return p.map((v, i) => `${esc(OV.classes[i])}: ${fmt(v, 3)}`).join(" · "); }
async function adversarial() {
  const el = $("adv-out");
  el.textContent = "…";
  try {
    const eps = +$("adv-eps").value;
    const d = await view("adversarial", {index: +$("adv-index").value, eps, method: $("adv-method").value});
    const fig = (src, cap) => `<figure><img src="${src}"><figcaption>${cap}</figcaption></figure>`;
    el.innerHTML = `<div class="imgs">${fig(d.image, "original → " + esc(OV.classes[d.pred_before]))}${fig(d.perturbation, "perturbation (L∞ " + fmt(d.linf, 3) + ")")}${fig(d.adv, "adversarial → " + esc(OV.classes[d.pred_after]))}</div>` +
      `<p id="adv-pred">prediction ${esc(OV.classes[d.pred_before])} → <b>${esc(OV.classes[d.pred_after])}</b></p><p class="hint">before: ${probsBar(d.probs_before)}<br>after: ${probsBar(d.probs_after)}</p>`;
    PIX = d.pixels.slice();
    drawPaint();
    paintPredict();
  } catch (e) { fail(el, e); }
}
function paintDims() { return SHAPE.length === 3 ? [SHAPE[1], SHAPE[2], SHAPE[0]] : [1, SHAPE[0], 1]; }
function drawPaint() {
  const c = $("paint"), ctx = c.getContext("2d"), [h, w, ch] = paintDims();
  const cw = c.width / w, chh = c.height / h;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = Math.round(255 * PIX[y * w + x]);  // first channel
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect(x * cw, y * chh, cw + 1, chh + 1);
  }
}
let paintTimer = null;
async function paintPredict() {
  if (S) { $("paint-pred").textContent = "(painting needs the live page)"; return; }
  try {
    const d = await api("predict", {pixels: PIX});
    $("paint-pred").innerHTML = `prediction <b id="paint-class">${esc(OV.classes[d.pred])}</b> (p=${fmt(d.probs[d.pred], 3)})`;
  } catch (e) { fail($("paint-pred"), e); }
}
function paintAt(ev) {
  if (!PIX) return;
  const c = $("paint"), r = c.getBoundingClientRect(), [h, w, ch] = paintDims();
  const x = Math.floor((ev.clientX - r.left) / r.width * w), y = Math.floor((ev.clientY - r.top) / r.height * h);
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  for (let k = 0; k < ch; k++) PIX[k * h * w + y * w + x] = ev.shiftKey ? 0 : 1;
  drawPaint();
  clearTimeout(paintTimer);
  paintTimer = setTimeout(paintPredict, 30);
}

// ---- weight editor ----------------------------------------------------------------------------
let WV = null, SEL = null, edBusy = false, edPending = null;
function showMetrics(m) {
  $("ed-loss").textContent = fmt(m.ce); $("ed-acc").textContent = fmt(m.accuracy);
  $("ed-nnz").textContent = m.nnz; $("ed-score").textContent = fmt(m.score);
  if (m.history !== undefined) $("ed-hist").textContent = m.history;
  $("ed-ms").textContent = m.server_ms !== undefined ? `server ${fmt(m.server_ms, 1)} ms` : "";
}
async function editorInit() {
  try {
    const d = await view("editor");
    $("ed-weight").innerHTML = d.weights.map((w) => `<option value="${esc(w.name)}">${esc(dname(w.name))} [${w.shape.join("×")}] nnz ${w.nnz}</option>`).join("");
    $("pr-layer").innerHTML = $("ed-weight").innerHTML;
    showMetrics(d.metrics);
    await loadWeight();
  } catch (e) { fail($("ed-grid"), e); }
}
function color(v, a) { const t = Math.max(-1, Math.min(1, v / a)); const r = t > 0 ? 255 : Math.round(255 * (1 + t)), b = t < 0 ? 255 : Math.round(255 * (1 - t)), g = Math.round(255 * (1 - Math.abs(t))); return `rgb(${r},${g},${b})`; }
async function loadWeight() {
  WV = (await view("editor", {weight: $("ed-weight").value, row: +$("ed-row").value})).weight;
  const [c, h, w] = WV.shape.length === 3 ? WV.shape : [1, WV.shape[0], WV.shape[1]];
  let html = "";
  for (let k = 0; k < c; k++) {
    html += "<table>";
    for (let y = 0; y < h; y++) {
      html += "<tr>";
      for (let x = 0; x < w; x++) {
        const i = k * h * w + y * w + x, v = WV.values[i];
        html += `<td data-i="${i}" style="background:${color(v, WV.absmax)}" title="${v.toFixed(4)}"></td>`;
      }
      html += "</tr>";
    }
    html += "</table>";
  }
  $("ed-grid").innerHTML = html;
  $("ed-grid").querySelectorAll("td").forEach((td) => td.addEventListener("click", () => selectWeight(+td.dataset.i)));
  selectWeight(0);
}
function selectWeight(i) {
  SEL = i;
  $("ed-grid").querySelectorAll("td").forEach((td) => td.classList.toggle("sel", +td.dataset.i === i));
  const a = Math.max(WV.absmax, 1e-3) * 2, s = $("ed-slider");
  s.min = -a; s.max = a; s.step = a / 500; s.value = WV.values[i];
  $("ed-sel").textContent = `${WV.name}[${WV.base + i}]`;
  $("ed-value").textContent = fmt(WV.values[i]);
}
async function sendEdit(value) {
  if (S) { $("ed-ms").textContent = "(editing needs the live page)"; return; }
  if (edBusy) { edPending = value; return; }
  edBusy = true;
  try {
    const m = await api("edit", {name: WV.name, index: WV.base + SEL, value});
    WV.values[SEL] = value;
    const td = $("ed-grid").querySelector(`td[data-i="${SEL}"]`);
    if (td) { td.style.background = color(value, WV.absmax); td.title = value.toFixed(4); }
    $("ed-value").textContent = fmt(value);
    showMetrics(m);
  } catch (e) { fail($("ed-ms"), e); }
  edBusy = false;
  if (edPending !== null) { const v = edPending; edPending = null; sendEdit(v); }
}
async function edAction(path) {
  if (S) return;
  const m = await api(path, {});
  showMetrics(m);
  const keep = SEL;
  await loadWeight();
  selectWeight(keep);
}

// ---- pruning --------------------------------------------------------------------------------
let prTimer = null;
async function prune() {
  const t = +$("pr-slider").value, scope = $("pr-scope").value;
  $("pr-val").textContent = t;
  try {
    const p = {threshold: t, scope};
    if (scope === "layer") p.layer = $("pr-layer").value;
    const d = await view("pruning", p);
    $("pr-out").innerHTML = metricsLine(d.metrics) + ` · removed ${d.removed} weights`;
  } catch (e) { fail($("pr-out"), e); }
}

// ---- steering -------------------------------------------------------------------------------
async function steer() {
  const st = +$("st-slider").value;
  $("st-val").textContent = st;
  try {
    const kind = $("st-kind").value, b = +$("st-b").value;
    const p = {layer: $("st-layer").value, strength: st, direction: kind};
    if (kind === "classes") { p.a = +$("st-a").value; p.b = b; } else { p.unit = b; }
    const d = await view("steering", p);
    $("st-out").innerHTML = metricsLine(d.metrics) + `<br>unsteered: ${metricsLine(d.base)}`;
    plot($("st-plot"), [{type: "bar", name: "before", x: OV.classes, y: d.pred_counts_before}, {type: "bar", name: "steered", x: OV.classes, y: d.pred_counts_after}],
         {barmode: "group", yaxis: {title: "predictions"}, legend: {orientation: "h"}});
  } catch (e) { fail($("st-out"), e); }
}

// ---- SAE ------------------------------------------------------------------------------------
function saeResult(j) {
  const r = j.result;
  $("sae-out").innerHTML = `<p>reconstruction: MSE ${fmt(r.mse)} · FVU ${fmt(r.fvu, 3)} · L0 ${fmt(r.l0, 1)} · dead ${r.dead}/${r.size}</p>` +
    `<p>spliced in: ${metricsLine(r.spliced)}<br>original: ${metricsLine(r.base)}</p>` +
    r.features.slice(0, 12).map((f) => `<div>feature ${f.feature} (fires on ${fmt(100 * f.freq, 1)}% of images)${cards(f.top)}</div>`).join("");
}
async function sae() {
  const pre = S && S.views && S.views.sae;
  if (S) { if (pre) { $("sae-status").textContent = `${pre.layer}, ${pre.size} features (precomputed)`; $("sae-progress").value = 1; saeResult({result: pre}); } return; }
  try {
    const j = await runJob("sae", {layer: $("sae-layer").value, size: +$("sae-size").value, l1: +$("sae-l1").value, steps: +$("sae-steps").value}, (j) => {
      $("sae-progress").value = j.step / j.steps;
      $("sae-status").textContent = `step ${j.step}/${j.steps} loss ${fmt(j.loss)}`;
    });
    $("sae-progress").value = 1;
    $("sae-status").textContent = "done";
    saeResult(j);
  } catch (e) { fail($("sae-out"), e); }
}

// ---- clusters -------------------------------------------------------------------------------
async function clusters() {
  const el = $("cl-out");
  try {
    const d = await view("clusters", {layer: $("cl-layer").value, k: +$("cl-k").value});
    el.innerHTML = `<table class="t"><tr><th>cluster</th><th>units</th><th>responds to</th></tr>` + d.clusters.map((c) =>
      `<tr><td>${c.cluster}</td><td style="text-align:left">${c.units.join(", ")}</td><td>${c.tags.map(esc).join(", ")}</td></tr>`).join("") + "</table>";
  } catch (e) { fail(el, e); }
}

// ---- triggers (Neural Cleanse) ----------------------------------------------------------------
function triggersResult(r) {
  const k = r.smallest_class, flagged = r.flagged;
  // One model's MAD rule is not calibrated: it is worded as a statistic with its basis, never as a red verdict
  // (the "Trigger evidence (calibrated)" view compares it with clean reference models).
  $("trg-summary").innerHTML = `anomaly index <b id="trg-index">${fmt(r.anomaly_index, 2)}</b> · ` +
    `<span id="trg-verdict">${flagged ? "above" : "not above"} the MAD rule's ${r.threshold} for class ${esc(r.classes[k].name)} (${k}), ` +
    `the smallest trigger (uncalibrated: this model's classes only; see Trigger evidence for a comparison with clean models)</span>` +
    ` · median mask L1 ${fmt(r.median_l1, 1)}, MAD ${fmt(r.mad, 2)} · ${r.steps} steps on ${r.images} images` +
    (r.seconds !== undefined ? ` · ${fmt(r.seconds, 1)} s` : "");
  const rows = r.classes.map((c) => {
    const cls = c.class === k ? "smallest" : "";
    return `<tr class="trg-row ${cls}" data-class="${c.class}"><td>${c.class}</td><td style="text-align:left">${esc(c.name)}</td>` +
      `<td><img class="trg-mask" src="${c.mask_src}" title="mask"></td><td><img class="trg-stamp" src="${c.stamp_src}" title="mask × pattern"></td>` +
      `<td><img src="${c.example_src}" title="pasted on a val image of another class"></td><td>${esc(OV.classes[c.example_pred])}</td>` +
      `<td>${fmt(c.mask_l1, 1)}</td><td>${fmt(c.success, 2)}</td><td>${fmt(c.val_success, 2)}</td><td>${fmt(c.anomaly, 2)}</td></tr>`;
  }).join("");
  $("trg-table").innerHTML = `<table class="t trg"><tr><th>class</th><th></th><th>mask</th><th>mask × pattern</th><th title="the trigger pasted on a val image of another class">pasted</th>` +
    `<th>→ prediction</th><th>mask L1</th><th title="on the images the search used">success</th>` +
    `<th title="pasted on up to 500 val images of other classes">val success</th><th>anomaly</th></tr>${rows}</table>`;
  const colors = r.classes.map((c) => c.class === k ? "#ff7f0e" : "#1f77b4");
  plot($("trg-plot"), [{type: "bar", x: r.classes.map((c) => c.name), y: r.classes.map((c) => c.mask_l1), marker: {color: colors},
    text: r.classes.map((c) => fmt(c.mask_l1, 1)), textposition: "outside", cliponaxis: false}],
    {yaxis: {title: "mask L1 (trigger size)"}, xaxis: {tickangle: -40, automargin: true}, margin: {l: 50, r: 10, t: 20, b: 90},
     shapes: [{type: "line", xref: "paper", x0: 0, x1: 1, y0: r.median_l1, y1: r.median_l1, line: {dash: "dash", color: "#888"}}]});
}
async function triggers() {
  if (S) {
    const pre = S.views && S.views.triggers;
    if (pre) { $("trg-status").textContent = `precomputed (${pre.steps} steps)`; $("trg-progress").value = 1; triggersResult(pre); }
    else $("trg-status").textContent = "(the trigger search needs the live page)";
    return;
  }
  const btn = $("trg-go");
  btn.disabled = true;
  $("trg-status").textContent = "starting…";
  $("trg-progress").value = 0;
  try {
    const j = await runJob("triggers", {steps: +$("trg-steps").value, images: +$("trg-images").value}, (j) => {
      $("trg-progress").value = j.step / j.steps;
      $("trg-status").textContent = `step ${j.step}/${j.steps}`;
    });
    $("trg-progress").value = 1;
    $("trg-status").textContent = j.cached ? "done (cached)" : "done";
    triggersResult(j.result);
  } catch (e) { $("trg-status").textContent = "failed"; fail($("trg-summary"), e); }
  btn.disabled = false;
}

// ---- any other registered view: its parameters as a form, its server-rendered fragment --------------
async function genericView(sec) {
  const name = sec.dataset.view, out = sec.querySelector(".generic-out"), params = {};
  sec.querySelectorAll("[data-param]").forEach((el) => {
    const spec = (SPECS[name] || []).find((p) => p.name === el.dataset.param);
    if (el.type === "checkbox") params[spec.name] = el.checked;
    else if (el.value !== "") params[spec.name] = ["int", "float", "image", "class"].includes(spec.type) ? +el.value : el.value;
  });
  out.textContent = "computing…";
  try {
    const q = canon(name, params), cmp = COMPARE && !S;
    const r = await api(`views/${name}` + (q ? "?" + q : "") + (cmp ? (q ? "&" : "?") + "compare=1" : ""));
    out.innerHTML = r.html || "(this view needs the live page)";
  } catch (e) { fail(out, e); }
}

// ---- wiring ---------------------------------------------------------------------------------
function snap(el, values) {  // static export: snap a slider to a precomputed position
  if (!S) return;
  const v = +el.value; let best = values[0];
  for (const x of values) if (Math.abs(x - v) < Math.abs(best - v)) best = x;
  el.value = best;
}
// Lazy panels: the overview first; every other panel computes when it first scrolls into view (or is
// asked for); its section gets data-loaded="1". lensLoadAll() loads every panel (tests, benchmarks).
const LOADERS = {};
const LOADED = new Set();
async function load(sec) {
  const name = sec.dataset.view || sec.id.replace(/^view-/, "");
  if (LOADED.has(name)) return;
  LOADED.add(name);
  const job = (L.views || []).some((v) => v.name === name && v.job);
  let fn = sec.classList.contains("generic") ? () => genericView(sec) : LOADERS[name];
  if (job && !S && sec.classList.contains("generic")) {  // long computations wait for their Show button
    fn = null;
    sec.querySelector(".generic-out").innerHTML = '<span class="hint">takes a while: press Show</span>';
  }
  try { if (fn) await fn(); } finally { sec.dataset.loaded = "1"; }
}
async function reloadOpen() {  // after a checkpoint change: every opened panel re-requests its data
  await overview();
  const secs = [...document.querySelectorAll("section.view")].filter((x) => x.id !== "view-overview");
  await Promise.all(secs.filter((x) => LOADED.has(x.dataset.view || x.id.replace(/^view-/, ""))).map((sec) => {
    const name = sec.dataset.view || sec.id.replace(/^view-/, "");
    const job = (L.views || []).some((v) => v.name === name && v.job);
    if (job && sec.classList.contains("generic")) {  // long: stale now, recomputed when asked
      sec.querySelector(".generic-out").innerHTML = '<span class="hint">the model changed: press Show to recompute</span>';
      return null;
    }
    const fn = sec.classList.contains("generic") ? () => genericView(sec) : LOADERS[name];
    return fn ? fn().catch(() => null) : null;
  }));
}
window.lensLoadAll = async () => {
  await Promise.all([...document.querySelectorAll("section.view")].filter((x) => x.id !== "view-overview").map(load));
  document.body.dataset.all = "1";
};
function scrubber() {
  const sl = $("checkpoint");
  if (!sl) return;
  const labels = L.checkpoints || [];
  const show = () => { $("checkpoint-label").textContent = labels[+sl.value] || sl.value; };
  sl.oninput = show;
  sl.onchange = async () => {
    show();
    sl.disabled = true;
    try {
      await api("checkpoint", {index: +sl.value});
      await reloadOpen();
      document.body.dataset.checkpoint = sl.value;
    } catch (e) { fail($("ov-metrics"), e); }
    sl.disabled = false;
  };
}
function compareControls() {
  const sel = $("compare-with");
  if (!sel || S) return;
  COMPARE = sel.value === "held";  // opened with a second model (occam lens A --compare B)
  sel.onchange = async () => {
    const v = sel.value;
    try {
      if (v === "held") { COMPARE = true; }
      else if (v === "") { await api("compare", {clear: true}); COMPARE = false; }
      else if (v === "snapshot") { await api("compare", {snapshot: true}); COMPARE = true; }
      else { await api("compare", {checkpoint: +v}); COMPARE = true; }
      document.querySelectorAll(".compare-out").forEach((b) => { b.innerHTML = ""; });
      await reloadOpen();
      document.body.dataset.compare = COMPARE ? "1" : "0";
    } catch (e) { fail($("ov-metrics"), e); }
  };
}
async function main() {
  if (!$("view-overview")) return genericOnly();  // a kind without the image panels (e.g. toy runs)
  compareControls();
  try { await overview(); } catch (e) { fail($("ov-metrics"), e); return; }
  const f = L.focus || {};
  if (f.layer) { $("unit-layer").value = f.layer; $("unit-index").value = f.unit || 0; }
  $("unit-go").onclick = showUnit;
  $("fv-go").onclick = featvis;
  $("ro-go").onclick = readouts;
  $("attr-go").onclick = attribution;
  $("adv-go").onclick = adversarial;
  $("adv-eps").oninput = () => { snap($("adv-eps"), [0.05, 0.1, 0.2]); $("adv-eps-val").textContent = $("adv-eps").value; };
  const c = $("paint"); let down = false;
  c.addEventListener("mousedown", (e) => { down = true; paintAt(e); });
  c.addEventListener("mousemove", (e) => { if (down) paintAt(e); });
  window.addEventListener("mouseup", () => { down = false; });
  $("ed-weight").onchange = () => { $("ed-row").value = 0; loadWeight(); };
  $("ed-row").onchange = loadWeight;
  $("ed-slider").oninput = () => sendEdit(+$("ed-slider").value);
  $("ed-slider").onchange = () => { if (!S) setTimeout(() => { if (!edBusy) api("sync", {}).then(showMetrics); }, 50); };
  $("ed-zero").onclick = () => { $("ed-slider").value = 0; sendEdit(0); };
  $("ed-undo").onclick = () => edAction("undo");
  $("ed-reset").onclick = () => edAction("reset");
  $("ed-save").href = S ? "#" : API + "save";
  $("pr-slider").oninput = () => { snap($("pr-slider"), [0, 0.01, 0.02, 0.05, 0.1, 0.2]); clearTimeout(prTimer); prTimer = setTimeout(prune, 20); };
  $("pr-scope").onchange = prune;
  $("pr-layer").onchange = prune;
  $("st-slider").oninput = steer;
  $("st-layer").onchange = steer;
  $("st-kind").onchange = steer;
  $("sae-go").onclick = sae;
  $("cl-go").onclick = clusters;
  if ($("trg-go")) $("trg-go").onclick = triggers;
  const generic = [...document.querySelectorAll("section.generic")];
  generic.forEach((sec) => { sec.querySelector(".generic-go").onclick = () => genericView(sec); });
  Object.assign(LOADERS, {units: showUnit, editor: editorInit, pruning: prune, steering: steer, featvis, attribution,
                          adversarial, clusters});
  if (S) Object.assign(LOADERS, {readouts, sae, triggers: () => ($("trg-go") ? triggers() : null)});
  scrubber();
  if (f.layer) await load($("view-units"));
  document.body.dataset.ready = "1";  // the overview is on screen: the page is usable
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) if (e.isIntersecting) { io.unobserve(e.target); load(e.target); }
  }, {rootMargin: "200px"});
  document.querySelectorAll("section.view").forEach((sec) => { if (sec.id !== "view-overview") io.observe(sec); });
}
async function genericOnly() {  // only the generic panels, and the checkpoint selector they follow
  if ($("checkpoint")) $("checkpoint").onchange = async () => {
    try { await api("checkpoint", {index: +$("checkpoint").value}); location.reload(); }
    catch (e) { fail(document.querySelector(".generic-out") || document.body, e); }
  };
  const generic = [...document.querySelectorAll("section.generic")];
  generic.forEach((sec) => { sec.querySelector(".generic-go").onclick = () => genericView(sec); });
  await Promise.all(generic.map(genericView));
  document.body.dataset.ready = "1";
}
main();
