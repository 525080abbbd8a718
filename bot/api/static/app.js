/* The neuralbot cockpit: reads /api/v1, follows /api/v1/stream (server-sent events), and sends
   control actions after a confirmation. Every value is written as text (never as HTML). */
(function () {
  "use strict";
  const { Chart, Group, fmtTime, fmtNum, COLORS } = window.NBCharts;
  const API = "/api/v1";
  const state = { status: null, symbol: null, candles: null, equity: [], loggedIn: true };

  const $ = (id) => document.getElementById(id);
  const group = new Group();
  const equityChart = new Chart($("equity-chart"), { title: "Equity", height: 200 });
  const ddChart = new Chart($("drawdown-chart"), { title: "Drawdown from peak", height: 200, unit: "%", yMax: 0 });
  const candleChart = new Chart($("candle-chart"), { title: "", height: 320 });
  group.add(equityChart); group.add(ddChart);
  new Group().add(candleChart);

  async function api(path, options) {
    const resp = await fetch(API + path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (resp.status === 401) { askLogin(); throw new Error("unauthorized"); }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  function post(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "-" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function fill(tableId, rows, render) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren(...rows.map((r) => { const tr = document.createElement("tr"); render(r, tr); return tr; }));
  }

  function button(label, onClick, cls) {
    const b = document.createElement("button");
    b.textContent = label; if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    const td = document.createElement("td"); td.appendChild(b); return td;
  }

  function badge(id, value) { const e = $(id); e.textContent = value; e.className = "badge " + value; }
  function age(s) { return s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(0)} min` : s < 172800 ? `${(s / 3600).toFixed(1)} h` : `${(s / 86400).toFixed(1)} d`; }

  // -- confirmation and login ---------------------------------------------------------------

  function confirmAction(text) {
    return new Promise((resolve) => {
      const d = $("confirm");
      $("confirm-text").textContent = text;
      d.returnValue = "";
      d.onclose = () => resolve(d.returnValue === "ok" ? $("confirm-reason").value.trim() || "from the dashboard" : null);
      d.showModal();
    });
  }

  async function control(text, path, body) {
    const reason = await confirmAction(text);
    if (reason === null) return;
    try {
      await post(path, Object.assign({ reason }, body || {}));
    } catch (e) { if (e.message !== "unauthorized") alert(`${path}: ${e.message}`); }
    await refresh();
  }

  function askLogin() {
    if (!state.loggedIn) return;
    state.loggedIn = false;
    const d = $("login");
    d.onclose = async () => {
      try {
        const r = await fetch(API + "/login", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ token: $("login-token").value }) });
        if (!r.ok) { $("login-error").textContent = (await r.json()).error; state.loggedIn = true; askLogin(); return; }
        state.loggedIn = true; $("login-token").value = ""; await start();
      } catch (e) { $("login-error").textContent = String(e); }
    };
    d.showModal();
  }

  // -- rendering ------------------------------------------------------------------------------

  function renderStatus(s) {
    state.status = s;
    badge("mode", s.mode); badge("status", s.status); badge("trading-state", s.trading_state);
    $("state-reason").textContent = s.state_reason || "";
    $("kpi-equity").textContent = fmtNum(s.equity);
    $("kpi-cash").textContent = fmtNum(s.cash);
    $("kpi-heat").textContent = `${fmtNum(s.heat)} (${s.heat_pct.toFixed(2)}%)`;
    $("kpi-candles").textContent = String(s.candles);
    $("kpi-uptime").textContent = age(s.uptime_s);
    fill("models", Object.entries(s.models), ([name, m], tr) => tr.append(
      cell(name), cell(age(m.age_s)), cell(m.created_at), cell(m.expired ? "expired" : "ok", m.expired ? "neg" : "pos")));
    fill("feeds", Object.entries(s.feeds), ([name, f], tr) => tr.append(
      cell(name), cell(age(f.age_s)), cell(f.reconnects), cell(f.stale ? "stale" : "ok", f.stale ? "neg" : "pos")));
    fill("symbols", s.symbols, (sym, tr) => {
      const paused = s.paused[sym];
      tr.append(cell(sym), cell(paused ? `paused: ${paused}` : "allowed", paused ? "neg" : "pos"));
      tr.append(paused
        ? button("Unpause", () => control(`Allow new entries on ${sym} again?`, "/control/unpause", { symbol: sym }))
        : button("Pause", () => control(`Pause new entries on ${sym}? Exits and stops keep working.`, "/control/pause", { symbol: sym })));
    });
    const sel = $("symbol");
    if (!sel.options.length) {
      for (const sym of s.symbols) { const o = document.createElement("option"); o.value = o.textContent = sym; sel.appendChild(o); }
      state.symbol = s.symbols[0];
    }
  }

  function renderEquity(points) {
    state.equity = points;
    equityChart.series = [{ name: "equity", color: COLORS.line, fill: "rgba(79,156,249,0.12)",
      points: points.map((p) => ({ ts: p.ts, v: p.equity })) }];
    ddChart.series = [{ name: "drawdown", color: COLORS.down, fill: "rgba(239,83,80,0.15)", base: 0,
      points: points.map((p) => ({ ts: p.ts, v: p.drawdown_pct })) }];
    const dd = points.length ? Math.min(...points.map((p) => p.drawdown_pct)) : 0;
    $("kpi-dd").textContent = `${dd.toFixed(2)}%`;
    group.draw();
  }

  function renderCandles(c) {
    state.candles = c;
    candleChart.opts.title = `${c.symbol} ${c.timeframe}`;
    candleChart.candles = c.candles;
    candleChart.markers = c.markers;
    candleChart.levels = [{ price: c.stop_price, color: COLORS.stop, label: "stop" },
      { price: c.take_profit, color: COLORS.take, label: "target" }];
    candleChart.draw();
  }

  function renderPositions(rows) {
    fill("positions", rows, (p, tr) => {
      tr.append(cell(p.symbol), cell(fmtNum(p.amount)), cell(fmtNum(p.avg_price)), cell(fmtNum(p.price)),
        cell(fmtNum(p.stop_price)), cell(fmtNum(p.take_profit)),
        cell(fmtNum(p.unrealized_pnl), p.unrealized_pnl >= 0 ? "pos" : "neg"),
        button("Exit", () => control(`Close the ${p.symbol} position with a market order?`, "/control/exit", { symbol: p.symbol }), "danger"));
    });
  }

  function fillRow(f, tr) {
    tr.append(cell(fmtTime(f.ts)), cell(f.symbol), cell(f.side, f.side), cell(f.leg), cell(fmtNum(f.amount)),
      cell(fmtNum(f.price)), cell(fmtNum(f.fee)));
  }

  function renderFills(rows) { fill("fills", rows, fillRow); }

  function top(attrs, k) {
    return Object.entries(attrs).filter(([, v]) => typeof v === "number")
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, k)
      .map(([n, v]) => `${n} ${v >= 0 ? "+" : ""}${(v * 100).toFixed(0)}%`).join(", ");
  }

  function renderSignals(rows) {
    fill("signals", rows, (s, tr) => {
      const votes = Object.entries(s.votes).map(([m, v]) => `${m}:${v}`).join(" ");
      const ci = s.confidence_low === null ? "-" : `${fmtNum(s.confidence_low)}-${fmtNum(s.confidence_high)}`;
      const d = s.decision;
      const gate = d === null ? "no order" : d.approved ? "approved" : `denied: ${d.check}`;
      tr.append(cell(fmtTime(s.ts)), cell(s.strategy), cell(s.symbol), cell(s.direction, s.direction),
        cell(s.strength.toFixed(1)), cell(s.probability === null ? "-" : s.probability.toFixed(3)), cell(ci),
        cell(s.edge === null ? "-" : s.edge.toFixed(3)), cell(votes || "-", "wrap"), cell(top(s.attributions, 3) || "-", "wrap"),
        cell(gate, d && !d.approved ? "neg" : ""));
      tr.title = [s.reason, d && d.reason].filter(Boolean).join(" / ");
    });
  }

  function renderDenials(d) {
    $("denials-by-check").textContent = Object.entries(d.by_check).map(([k, n]) => `${k}: ${n}`).join(" · ") || "none";
    fill("denials", d.recent.slice(0, 15), (r, tr) => tr.append(cell(fmtTime(r.ts)), cell(r.symbol), cell(r.check), cell(r.reason, "wrap")));
  }

  function renderLogs(lines) {
    const bad = lines.filter((l) => l.level === "warning" || l.level === "error" || l.level === "critical").reverse().slice(0, 15);
    fill("errors", bad, (l, tr) => {
      const extra = Object.entries(l).filter(([k]) => !["event", "level", "timestamp", "run_id", "mode"].includes(k))
        .map(([k, v]) => `${k}=${v}`).join(" ");
      tr.append(cell(l.timestamp), cell(l.level, l.level === "error" ? "neg" : ""), cell(l.event), cell(extra, "wrap"));
    });
  }

  function renderActions(rows) {
    fill("actions", rows.slice(0, 15), (a, tr) => tr.append(cell(fmtTime(a.ts)), cell(a.action), cell(a.detail.symbol), cell(a.who), cell(a.why, "wrap")));
  }

  // -- data -------------------------------------------------------------------------------------

  async function loadCandles() {
    if (!state.symbol) return;
    renderCandles(await api(`/candles?symbol=${encodeURIComponent(state.symbol)}&limit=300`));
  }

  async function refresh() {
    const [status, equity, positions, trades, signals, denials, logs, actions] = await Promise.all([
      api("/status"), api("/equity?max_points=1500"), api("/positions"), api("/trades?limit=25"),
      api("/signals?limit=20"), api("/denials?limit=20"), api("/logs?n=300"), api("/control/actions?limit=15")]);
    renderStatus(status); renderEquity(equity.points); renderPositions(positions.positions);
    renderFills(trades.trades); renderSignals(signals.signals); renderDenials(denials); renderLogs(logs.lines);
    renderActions(actions.actions);
    await loadCandles();
  }

  let pending = null;
  function soon(fn, ms) { if (!pending) pending = setTimeout(async () => { pending = null; try { await fn(); } catch (e) { /* next event retries */ } }, ms); }

  function follow() {
    const es = new EventSource(API + "/stream");
    es.onopen = () => badge("live", "on");
    es.onerror = () => badge("live", "off");
    es.addEventListener("equity", (e) => {
      const p = JSON.parse(e.data);
      const peak = Math.max(p.equity, ...state.equity.map((q) => q.equity));
      state.equity.push({ ts: p.ts, equity: p.equity, cash: p.cash, exposure: p.exposure, heat: p.heat,
        drawdown_pct: peak > 0 ? 100 * (p.equity / peak - 1) : 0 });
      renderEquity(state.equity);
      soon(loadCandles, 500);
    });
    es.addEventListener("fill", (e) => {
      const f = JSON.parse(e.data);
      const body = $("fills").querySelector("tbody"), tr = document.createElement("tr");
      tr.className = "fresh"; tr.dataset.tradeId = f.trade_id;
      fillRow(Object.assign({ leg: f.order_id.split(":").pop() }, f), tr);
      body.prepend(tr);
      while (body.children.length > 25) body.lastChild.remove();
      soon(refresh, 300);
    });
    for (const kind of ["position", "denial", "signal", "action", "trading_state"]) es.addEventListener(kind, () => soon(refresh, 300));
    es.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      if (state.status && (s.trading_state !== state.status.trading_state || JSON.stringify(s.paused) !== JSON.stringify(state.status.paused))) soon(refresh, 0);
      if (state.status) { badge("trading-state", s.trading_state); badge("status", s.status); $("state-reason").textContent = s.state_reason || ""; }
    });
  }

  async function start() {
    await refresh();
    follow();
  }

  $("symbol").addEventListener("change", (e) => { state.symbol = e.target.value; loadCandles(); });
  $("btn-halt").addEventListener("click", () => control("Halt trading? New entries stop and open entry orders are cancelled; stops keep working.", "/control/halt", { flatten: false }));
  $("btn-flatten").addEventListener("click", () => control("Halt and close EVERY open position with market orders?", "/control/halt", { flatten: true }));
  $("btn-resume").addEventListener("click", () => control("Resume trading (state active)?", "/control/resume"));
  start().catch((e) => { if (e.message !== "unauthorized") console.warn("cockpit: first load failed:", e.message); });
})();
