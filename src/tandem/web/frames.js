// --- series of frames: a series is a list of T frames, each a list of C numbers ---
const COLOURS = ["#2f6fde", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285",
                 "#c2255c", "#5c940d", "#364fc7", "#862e9c", "#a61e4d", "#495057"];

// the SVG namespace as the HTML parser sets it, so the page names no URL
const SVG_NS = Object.assign(document.createElement("div"), { innerHTML: "<svg></svg>" })
  .firstChild.namespaceURI;

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function exampleSeries(c, n = 30) {
  const rows = [];
  for (let t = 0; t < n; t++) {
    const row = [];
    for (let k = 0; k < c; k++) {
      row.push(Math.round(1000 * Math.sin(2 * Math.PI * (k + 1) * t / n + k)) / 1000);
    }
    rows.push(`  ${JSON.stringify(row)}`);
  }
  return `[\n${rows.join(",\n")}\n]`;
}

function readSeries(text, c) {
  // one series or a list of series; the message names the series and frame at fault
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`not JSON: ${e.message}`); }
  if (!Array.isArray(v) || !v.length) {
    throw new Error(`give a list of frames of ${c} numbers, or a list of such series`);
  }
  const all = Array.isArray(v[0]) && Array.isArray(v[0][0]) ? v : [v];
  all.forEach((s, i) => {
    if (!Array.isArray(s) || !s.length) throw new Error(`series ${i}: give a list of frames`);
    s.forEach((f, t) => {
      if (!Array.isArray(f) || f.length !== c || !f.every((x) => typeof x === "number")) {
        throw new Error(`series ${i}, frame ${t}: ${JSON.stringify(f).slice(0, 40)} is not ` +
                        `a list of ${c} numbers (frames count from 0)`);
      }
    });
  });
  return all;
}

function plotSeries(series, { bands = [], caption = "" } = {}) {
  // one line per channel (at most 12) over the frame index; tag segments as bands behind
  const W = 480, H = 160, L = 36, R = 6, T = 18, B = 16;
  const n = series.length, channels = Math.min(series[0].length, COLOURS.length);
  const step = (W - L - R) / n;
  let lo = Infinity, hi = -Infinity;
  for (const f of series) {
    for (let k = 0; k < channels; k++) { lo = Math.min(lo, f[k]); hi = Math.max(hi, f[k]); }
  }
  if (hi === lo) { hi += 1; lo -= 1; }
  const y = (v) => (T + (H - T - B) * (hi - v) / (hi - lo)).toFixed(1);
  const root = svg("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
                            role: "img", "aria-label": caption || `${n} frames` });
  for (const [first, end, tag] of bands) {
    const colour = COLOURS[Math.max(0, tagNames.indexOf(tag)) % COLOURS.length];
    const band = svg("rect", { class: "band", x: L + first * step, y: T,
                               width: (end - first) * step, height: H - T - B, fill: colour,
                               "fill-opacity": 0.15 });
    band.append(svg("title", {}, `${tag}: frames ${first}–${end - 1}`));
    root.append(band);
    if ((end - first) * step >= 6 * tag.length + 4) {
      root.append(svg("text", { class: "band-tag", x: L + (first + end) / 2 * step, y: T + 11,
                                "text-anchor": "middle", style: `fill: ${colour}` }, tag));
    }
  }
  root.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none",
                            stroke: "#d6dbe2" }));
  root.append(svg("text", { x: L - 3, y: T + 8, "text-anchor": "end" }, +hi.toPrecision(3)));
  root.append(svg("text", { x: L - 3, y: H - B, "text-anchor": "end" }, +lo.toPrecision(3)));
  root.append(svg("text", { x: L + step / 2, y: H - 4, "text-anchor": "middle" }, 0));
  root.append(svg("text", { x: L + (n - 0.5) * step, y: H - 4, "text-anchor": "middle" }, n - 1));
  root.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "frame"));
  for (let k = 0; k < channels; k++) {
    const points = series.map((f, t) => `${(L + (t + 0.5) * step).toFixed(1)},${y(f[k])}`);
    const line = svg("polyline", { class: "channel", points: points.join(" "), fill: "none",
                                   stroke: COLOURS[k], "stroke-width": 1.5 });
    line.append(svg("title", {}, `channel ${k}`));
    root.append(line);
  }
  if (caption) root.append(svg("text", { class: "caption", x: L, y: 13 }, caption));
  return root;
