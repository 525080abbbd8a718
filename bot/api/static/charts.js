/* neuralbot charts: candles with trade markers, and line/area series, drawn on the platform's
   own <canvas> (no library, no network). Shared by the dashboard (/ui) and `neuralbot plot`.
   Charts in one group share their time range: the wheel zooms, dragging pans, double-click resets;
   hovering shows the values under the cursor. */
(function () {
  "use strict";
  const PAD = { l: 8, r: 70, t: 18, b: 20 };
  const COLORS = { up: "#26a69a", down: "#ef5350", grid: "#2a2e39", text: "#9aa0aa", line: "#4f9cf9",
    entry: "#26a69a", exit: "#f5a623", stop: "#ef5350", take: "#26a69a", cross: "#6b7280" };

  function fmtTime(ts) {
    const d = new Date(ts);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
  }

  function fmtNum(v) {
    if (v === null || v === undefined || !isFinite(v)) return "-";
    const a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(2) : a >= 1 ? v.toFixed(3) : v.toFixed(4);
  }

  class Group {
    constructor() { this.charts = []; this.view = null; }
    add(chart) { this.charts.push(chart); chart.group = this; }
    extent() {
      let lo = Infinity, hi = -Infinity;
      for (const c of this.charts) { const e = c.extent(); if (e) { lo = Math.min(lo, e[0]); hi = Math.max(hi, e[1]); } }
      return isFinite(lo) ? [lo, hi] : null;
    }
    range() { return this.view || this.extent(); }
    setView(v) { this.view = v; this.draw(); }
    hover(ts) { for (const c of this.charts) { c.hoverTs = ts; c.draw(); } }
    draw() { for (const c of this.charts) c.draw(); }
  }

  class Chart {
    constructor(canvas, opts) {
      this.canvas = canvas;
      this.opts = Object.assign({ title: "", height: 220 }, opts || {});
      this.group = null;
      this.hoverTs = null;
      this.series = [];      // line series: {name, color, points: [{ts, v}], fill, axis}
      this.candles = [];     // [{ts, open, high, low, close}]
      this.markers = [];     // [{ts, price, kind, side, amount}]
      this.levels = [];      // [{price, color, label}]
      this.bands = [];       // [{v, color}] horizontal reference lines
      this.attach();
    }

    attach() {
      const cv = this.canvas;
      let drag = null;
      cv.addEventListener("mousemove", (e) => {
        const r = this.range(); if (!r) return;
        const x = e.offsetX;
        if (drag) {
          const span = drag.r[1] - drag.r[0];
          const dt = (drag.x - x) / this.plotW() * span;
          this.group.setView([drag.r[0] + dt, drag.r[1] + dt]);
          return;
        }
        this.group.hover(this.tsAt(x, r));
      });
      cv.addEventListener("mouseleave", () => { drag = null; this.group.hover(null); });
      cv.addEventListener("mousedown", (e) => { const r = this.range(); if (r) drag = { x: e.offsetX, r }; });
      window.addEventListener("mouseup", () => { drag = null; });
      cv.addEventListener("wheel", (e) => {
        const r = this.range(); if (!r) return;
        e.preventDefault();
        const at = this.tsAt(e.offsetX, r), k = e.deltaY > 0 ? 1.2 : 1 / 1.2;
        this.group.setView([at - (at - r[0]) * k, at + (r[1] - at) * k]);
      }, { passive: false });
      cv.addEventListener("dblclick", () => this.group.setView(null));
      window.addEventListener("resize", () => this.draw());
    }

    range() { return this.group ? this.group.range() : this.extent(); }
    plotW() { return this.canvas.clientWidth - PAD.l - PAD.r; }
    tsAt(x, r) { return r[0] + (x - PAD.l) / this.plotW() * (r[1] - r[0]); }

    extent() {
      const ts = [];
      if (this.candles.length) ts.push(this.candles[0].ts, this.candles[this.candles.length - 1].ts);
      for (const s of this.series) if (s.points.length) ts.push(s.points[0].ts, s.points[s.points.length - 1].ts);
      return ts.length ? [Math.min(...ts), Math.max(...ts)] : null;
    }

    visible(points, r) { return points.filter((p) => p.ts >= r[0] && p.ts <= r[1]); }

    yRange(r) {
      let lo = Infinity, hi = -Infinity;
      for (const c of this.visible(this.candles, r)) { lo = Math.min(lo, c.low); hi = Math.max(hi, c.high); }
      for (const s of this.series) for (const p of this.visible(s.points, r)) {
        if (p.v === null || !isFinite(p.v)) continue; lo = Math.min(lo, p.v); hi = Math.max(hi, p.v);
      }
      for (const l of this.levels) if (l.price !== null && this.candles.length) { lo = Math.min(lo, l.price); hi = Math.max(hi, l.price); }
      for (const b of this.bands) { lo = Math.min(lo, b.v); hi = Math.max(hi, b.v); }
      if (!isFinite(lo)) return null;
      if (this.opts.yMin !== undefined) lo = Math.min(lo, this.opts.yMin);
      if (this.opts.yMax !== undefined) hi = Math.max(hi, this.opts.yMax);
      if (hi === lo) { hi += Math.abs(hi) * 0.01 || 1; lo -= Math.abs(lo) * 0.01 || 1; }
      const pad = (hi - lo) * 0.06;
      return [lo - pad, hi + pad];
    }

    draw() {
      const cv = this.canvas, dpr = window.devicePixelRatio || 1;
      const w = cv.clientWidth, h = this.opts.height;
      if (!w) return;
      cv.style.height = h + "px";
      if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
        cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
      }
      const g = cv.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      g.font = "11px system-ui, sans-serif";
      g.fillStyle = COLORS.text;
      g.fillText(this.opts.title, PAD.l, 12);
      const r = this.range(), yr = r && this.yRange(r);
      cv.dataset.points = String(this.series.reduce((n, s) => n + s.points.length, 0) + this.candles.length);
      cv.dataset.markers = String(this.markers.length);
      const first = this.series.length ? this.series[0].points : this.candles;
      cv.dataset.lastTs = first.length ? String(first[first.length - 1].ts) : "";
      if (!r || !yr) { g.fillText("no data yet", w / 2 - 30, h / 2); return; }
      const pw = w - PAD.l - PAD.r, ph = h - PAD.t - PAD.b;
      const X = (ts) => PAD.l + (ts - r[0]) / ((r[1] - r[0]) || 1) * pw;
      const Y = (v) => PAD.t + (1 - (v - yr[0]) / (yr[1] - yr[0])) * ph;
      this.grid(g, yr, Y, w, h, r);
      g.save();
      g.beginPath(); g.rect(PAD.l, PAD.t, pw, ph); g.clip();
      for (const b of this.bands) { g.strokeStyle = b.color; g.setLineDash([3, 3]); this.hline(g, Y(b.v), pw); g.setLineDash([]); }
      this.drawCandles(g, r, X, Y, pw);
      for (const s of this.series) this.drawSeries(g, s, r, X, Y, yr);
      for (const l of this.levels) if (l.price !== null) {
        g.strokeStyle = l.color; g.setLineDash([6, 4]); this.hline(g, Y(l.price), pw); g.setLineDash([]);
        g.fillStyle = l.color; g.fillText(`${l.label} ${fmtNum(l.price)}`, PAD.l + 4, Y(l.price) - 3);
      }
      this.drawMarkers(g, r, X, Y);
      g.restore();
      if (this.hoverTs !== null) this.drawHover(g, X, Y, w, h, r);
    }

    grid(g, yr, Y, w, h, r) {
      g.strokeStyle = COLORS.grid; g.fillStyle = COLORS.text; g.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const v = yr[0] + (yr[1] - yr[0]) * i / 4, y = Y(v);
        g.beginPath(); g.moveTo(PAD.l, y); g.lineTo(w - PAD.r, y); g.stroke();
        g.fillText(fmtNum(v) + (this.opts.unit || ""), w - PAD.r + 4, y + 4);
      }
      g.fillText(fmtTime(r[0]), PAD.l, h - 5);
      const last = fmtTime(r[1]);
      g.fillText(last, w - PAD.r - g.measureText(last).width, h - 5);
    }

    hline(g, y, pw) { g.beginPath(); g.moveTo(PAD.l, y); g.lineTo(PAD.l + pw, y); g.stroke(); }

    drawCandles(g, r, X, Y, pw) {
      const vis = this.visible(this.candles, r);
      if (!vis.length) return;
      const step = vis.length > 1 ? (X(vis[vis.length - 1].ts) - X(vis[0].ts)) / (vis.length - 1) : pw / 2;
      const bw = Math.max(1, Math.min(14, step * 0.7));
      for (const c of vis) {
        const x = X(c.ts), up = c.close >= c.open;
        g.strokeStyle = g.fillStyle = up ? COLORS.up : COLORS.down;
        g.beginPath(); g.moveTo(x, Y(c.high)); g.lineTo(x, Y(c.low)); g.stroke();
        const top = Y(Math.max(c.open, c.close)), bot = Y(Math.min(c.open, c.close));
        g.fillRect(x - bw / 2, top, bw, Math.max(1, bot - top));
      }
    }

    drawSeries(g, s, r, X, Y, yr) {
      const pts = this.visible(s.points, r).filter((p) => p.v !== null && isFinite(p.v));
      if (!pts.length) return;
      g.strokeStyle = s.color || COLORS.line; g.lineWidth = 1.5;
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(X(p.ts), Y(p.v)) : g.moveTo(X(p.ts), Y(p.v))));
      g.stroke();
      if (s.fill) {
        const base = Y(Math.max(yr[0], Math.min(yr[1], s.base !== undefined ? s.base : yr[0])));
        g.lineTo(X(pts[pts.length - 1].ts), base); g.lineTo(X(pts[0].ts), base); g.closePath();
        g.fillStyle = s.fill; g.fill();
      }
      if (pts.length === 1) { g.fillStyle = s.color || COLORS.line; g.fillRect(X(pts[0].ts) - 2, Y(pts[0].v) - 2, 4, 4); }
      g.lineWidth = 1;
    }

    drawMarkers(g, r, X, Y) {
      for (const m of this.visible(this.markers, r)) {
        const x = X(m.ts), y = Y(m.price), up = m.kind === "entry";
        g.fillStyle = COLORS[m.kind] || COLORS.exit;
        g.beginPath();
        if (up) { g.moveTo(x, y + 3); g.lineTo(x - 6, y + 13); g.lineTo(x + 6, y + 13); }
        else { g.moveTo(x, y - 3); g.lineTo(x - 6, y - 13); g.lineTo(x + 6, y - 13); }
        g.closePath(); g.fill();
      }
    }

    nearest(points, ts) {
      let best = null;
      for (const p of points) if (best === null || Math.abs(p.ts - ts) < Math.abs(best.ts - ts)) best = p;
      return best;
    }

    drawHover(g, X, Y, w, h) {
      const ts = this.hoverTs, lines = [];
      const c = this.nearest(this.candles, ts);
      let at = c ? c.ts : null;
      if (c) lines.push(`O ${fmtNum(c.open)}  H ${fmtNum(c.high)}  L ${fmtNum(c.low)}  C ${fmtNum(c.close)}`);
      for (const s of this.series) {
        const p = this.nearest(s.points, ts);
        if (p) { at = at === null ? p.ts : at; lines.push(`${s.name} ${fmtNum(p.v)}${this.opts.unit || ""}`); }
      }
      for (const m of this.markers) if (c && m.ts === c.ts) lines.push(`${m.kind} ${m.side} ${fmtNum(m.amount)} @ ${fmtNum(m.price)}`);
      if (at === null) return;
      const x = X(at);
      g.strokeStyle = COLORS.cross; g.beginPath(); g.moveTo(x, PAD.t); g.lineTo(x, h - PAD.b); g.stroke();
      lines.unshift(fmtTime(at));
      const bw = Math.max(...lines.map((l) => g.measureText(l).width)) + 10;
      const bx = x + bw + 12 > w - PAD.r ? x - bw - 8 : x + 8;
      g.fillStyle = "rgba(20,22,28,0.9)"; g.fillRect(bx, PAD.t + 2, bw, lines.length * 14 + 6);
      g.fillStyle = "#e6e6e6";
      lines.forEach((l, i) => g.fillText(l, bx + 5, PAD.t + 15 + i * 14));
    }
  }

  window.NBCharts = { Chart, Group, fmtTime, fmtNum, COLORS };
})();
