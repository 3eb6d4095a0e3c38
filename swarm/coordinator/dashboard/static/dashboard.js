// The swarm dashboard: follows /events (one snapshot a second) and redraws the page from each.
"use strict";

(function () {
  const WINDOW_S = 600; // the charts show the last ten minutes
  const RETRY_MS = 2000;
  const STALE_MS = 5000; // snapshots come every second: this long without one means the coordinator is stuck
  const COLORS = { blue: "#2f6fde", purple: "#8a4fd8", teal: "#138a8a", orange: "#d9822b" };
  let history = [];
  let source = null;
  let lastMessage = 0;

  // ------------------------------------------------------------ small DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "style") node.setAttribute("style", value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function replaceChildren(id, ...children) {
    document.getElementById(id).replaceChildren(...children);
  }

  // ------------------------------------------------------------ formatting

  function fmtNumber(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toFixed(digits);
  }

  function fmtSeconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return Math.round(value * 1000) + " ms";
    return value.toFixed(value < 10 ? 2 : 1) + " s";
  }

  function fmtBytes(bytes) {
    if (!bytes) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return value.toFixed(value < 10 && unit > 0 ? 1 : 0) + " " + units[unit];
  }

  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "never";
    if (seconds < 60) return seconds.toFixed(1) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    return Math.floor(seconds / 3600) + " h ago";
  }

  // ------------------------------------------------------------ charts

  // Ticks at a round step (1, 2 or 5 times a power of ten) from 0 to at least `max`.
  function niceTicks(max, integer) {
    const raw = Math.max(max, integer ? 1 : 1e-3) / 4;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw);
    if (integer) step = Math.max(1, Math.round(step));
    const ticks = [];
    for (let value = 0; value < max + step * 0.999 || ticks.length < 2; value += step) ticks.push(value);
    return { ticks, decimals: Math.max(0, -Math.floor(Math.log10(step))) };
  }

  function drawChart(id, series, format, integer) {
    const chart = document.getElementById(id);
    const width = chart.clientWidth || 500;
    const height = chart.clientHeight || 150;
    const left = 46;
    const right = 8;
    const top = 8;
    const bottom = 20;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const nodes = [];
    const now = Date.now() / 1000;
    const x = (t) => left + ((t - (now - WINDOW_S)) / WINDOW_S) * (width - left - right);
    let max = 0;
    for (const s of series) for (const p of s.points) if (p[1] !== null) max = Math.max(max, p[1]);
    const scale = niceTicks(max, integer);
    const topValue = scale.ticks[scale.ticks.length - 1];
    const y = (v) => top + (1 - v / topValue) * (height - top - bottom);
    for (const value of scale.ticks) {
      nodes.push(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
      const label = svg("text", { class: "axis-label", x: left - 6, y: y(value) + 4, "text-anchor": "end" });
      label.textContent = format(value, scale.decimals);
      nodes.push(label);
    }
    for (const minutesAgo of [10, 8, 6, 4, 2, 0]) {
      const anchor = minutesAgo === 10 ? "start" : minutesAgo === 0 ? "end" : "middle";
      const label = svg("text", { class: "axis-label", x: x(now - minutesAgo * 60), y: height - 4, "text-anchor": anchor });
      label.textContent = minutesAgo === 0 ? "now" : `-${minutesAgo} min`;
      nodes.push(label);
    }
    let anyPoint = false;
    for (const s of series) {
      let line = "";
      let pen = false;
      for (const [t, v] of s.points) {
        if (v === null || t < now - WINDOW_S) {
          pen = false;
          continue;
        }
        anyPoint = true;
        line += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      if (line) nodes.push(svg("path", { class: "series", d: line, stroke: s.color }));
      if (line && s.fill && s.points.length > 1) {
        const first = s.points.find((p) => p[1] !== null && p[0] >= now - WINDOW_S);
        const last = s.points[s.points.length - 1];
        if (first && last[1] !== null) {
          const area = `${line}L${x(last[0]).toFixed(1)},${y(0)}L${x(first[0]).toFixed(1)},${y(0)}Z`;
          nodes.push(svg("path", { class: "area", d: area, fill: s.color }));
        }
      }
    }
    if (!anyPoint) {
      const empty = svg("text", { class: "empty", x: (left + width) / 2, y: height / 2, "text-anchor": "middle" });
      empty.textContent = "no data yet";
      nodes.push(empty);
    }
    chart.replaceChildren(...nodes);
  }

  function drawCharts() {
    const points = (key) => history.map((s) => [s.at, s[key]]);
    const plain = (v, decimals) => v.toFixed(decimals);
    const duration = (v, decimals) => (v === 0 ? "0" : v < 1 ? `${(v * 1000).toFixed(Math.max(0, decimals - 3))} ms` : `${v.toFixed(decimals)} s`);
    drawChart("chart-rps", [{ points: points("requests_per_second"), color: COLORS.blue, fill: true }], plain, false);
    drawChart("chart-tps", [{ points: points("tokens_per_second"), color: COLORS.purple, fill: true }], plain, false);
    drawChart("chart-queue", [{ points: points("queue_depth"), color: COLORS.orange, fill: true }], plain, true);
    drawChart(
      "chart-latency",
      [
        { points: points("latency_p50_s"), color: COLORS.blue },
        { points: points("latency_p95_s"), color: COLORS.purple },
        { points: points("ttft_p50_s"), color: COLORS.teal },
        { points: points("ttft_p95_s"), color: COLORS.orange },
      ],
      duration,
      false,
    );
  }

  function drawLegend() {
    const entries = [
      ["latency p50", COLORS.blue],
      ["p95", COLORS.purple],
      ["TTFT p50", COLORS.teal],
      ["p95", COLORS.orange],
    ];
    const legend = entries.flatMap(([label, color]) => [el("i", { style: `background:${color}` }), label]);
    replaceChildren("legend-latency", ...legend);
  }

  // ------------------------------------------------------------ panels

  function setTile(id, value, note, level) {
    const tile = document.getElementById(id);
    tile.classList.toggle("bad", level === "bad");
    tile.classList.toggle("warn", level === "warn");
    tile.querySelector(".tile-value").textContent = value;
    if (note !== null) tile.querySelector(".tile-note").textContent = note;
  }

  function drawTiles(snapshot) {
    const workers = snapshot.workers;
    const up = workers.filter((w) => w.state === "up").length;
    const down = workers.filter((w) => w.state === "down").length;
    const draining = workers.length - up - down;
    const notes = [down ? `${down} down` : "", draining ? `${draining} draining` : ""].filter(Boolean);
    const level = down || !up ? "bad" : draining ? "warn" : "";
    setTile("tile-workers", `${up} / ${workers.length}`, notes.join(", ") || "all up", level);
    const growing = snapshot.problems.some((p) => p.text.startsWith("queue growing"));
    setTile("tile-queue", String(snapshot.queue_depth), growing ? "growing" : "waiting for a worker", growing ? "warn" : "");
    const s = snapshot.sample || {};
    setTile("tile-rps", fmtNumber(s.requests_per_second, 1), null, "");
    setTile("tile-tps", fmtNumber(s.tokens_per_second, 1), null, "");
    const usage = snapshot.usage || {};
    const perMillion = usage.cost_per_million;
    setTile(
      "tile-cost",
      perMillion === null || perMillion === undefined ? "–" : perMillion.toPrecision(3),
      usage.wh_per_million === null || usage.wh_per_million === undefined ? null : `${usage.wh_per_million} Wh per million`,
      "",
    );
    setTile("tile-latency", `${fmtSeconds(s.latency_p50_s)} / ${fmtSeconds(s.latency_p95_s)}`, null, "");
    setTile("tile-ttft", `${fmtSeconds(s.ttft_p50_s)} / ${fmtSeconds(s.ttft_p95_s)}`, null, "");
  }

  function drawProblems(problems) {
    if (!problems.length) {
      replaceChildren("problems", el("div", { class: "problem problem-none" }, "All workers up, nothing waiting too long."));
      return;
    }
    replaceChildren("problems", ...problems.map((p) => el("div", { class: `problem problem-${p.level}` }, p.text)));
  }

  function badge(state) {
    const kind = state === "up" ? "up" : state === "down" ? "down" : "other";
    return el("span", { class: `badge badge-${kind}` }, state);
  }

  function drawWorkers(workers) {
    if (!workers.length) {
      replaceChildren("workers-body", el("tr", {}, el("td", { colspan: "9", class: "muted" }, "no worker has joined")));
      return;
    }
    const rows = workers.map((w) => {
      const share = w.slots ? Math.min(100, (100 * w.slots_busy) / w.slots) : 0;
      const serves = w.stage_count ? `stage ${w.stage_index + 1}/${w.stage_count} · layers ${w.layer_start}–${w.layer_end - 1}` : "whole model";
      return el(
        "tr",
        { class: w.state, "data-worker": w.worker_id },
        el("td", { class: "wid" }, w.worker_id),
        el("td", {}, w.host),
        el("td", {}, w.model),
        el("td", {}, serves),
        el("td", {}, badge(w.away || w.state)),
        el("td", {}, el("span", { class: "slotbar" }, el("span", { style: `width:${share}%` })), `${w.slots_busy} / ${w.slots}`),
        el("td", { class: "num" }, fmtNumber(w.tokens_per_second, 1)),
        el("td", { class: "num" }, fmtBytes(w.rss_bytes)),
        el("td", { class: "num" }, fmtAge(w.heartbeat_age_s)),
      );
    });
    replaceChildren("workers-body", ...rows);
  }

  function chip(member) {
    const kind = ["up", "down", "draining"].includes(member.state) ? member.state : "draining";
    return el("span", { class: `chip chip-${kind}`, title: member.state }, member.worker_id);
  }

  function drawModels(models) {
    if (!models.length) {
      replaceChildren("models", el("p", { class: "muted" }, "no model is served yet"));
      return;
    }
    const cards = models.map((m) => {
      const parts = [
        el(
          "div",
          { class: "model-head" },
          el("span", { class: "model-name" }, m.name),
          m.is_default ? el("span", { class: "tag" }, "default") : null,
          el("span", { class: "muted" }, `${m.workers_up} taking requests`),
        ),
      ];
      if (m.replicas.length) {
        parts.push(el("div", { class: "row-label" }, `Whole replicas (${m.replicas.length})`));
        parts.push(el("div", {}, ...m.replicas.map(chip)));
      }
      for (const p of m.pipelines) {
        parts.push(el("div", { class: "row-label" }, `Pipeline of ${p.stage_count} stages`));
        const boxes = [];
        p.stages.forEach((stage, i) => {
          if (i > 0) boxes.push(el("span", { class: "arrow" }, "→"));
          const up = stage.workers.some((w) => w.state === "up");
          const layers = stage.layer_start === null ? "layers unknown" : `layers ${stage.layer_start}–${stage.layer_end - 1}`;
          boxes.push(
            el(
              "div",
              { class: `stage${up ? "" : " bad"}` },
              el("div", { class: "stage-title" }, `Stage ${stage.index + 1}/${p.stage_count}`),
              el("div", { class: "stage-layers" }, layers),
              ...(stage.workers.length ? stage.workers.map(chip) : [el("span", { class: "chip chip-none" }, "no worker")]),
            ),
          );
        });
        parts.push(el("div", { class: "pipeline" }, ...boxes));
      }
      return el("div", { class: `model${m.workers_up ? "" : " bad"}` }, ...parts);
    });
    replaceChildren("models", ...cards);
  }

  function drawBatchJobs(jobs) {
    if (!jobs.length) {
      replaceChildren("batch-jobs", el("p", { class: "muted" }, "none"));
      return;
    }
    const rows = jobs.map((j) => {
      const share = j.total ? (100 * (j.done + j.failed)) / j.total : 0;
      return el(
        "tr",
        { "data-job": j.job_id },
        el("td", { class: "wid" }, j.job_id),
        el("td", {}, j.model || "default"),
        el("td", {}, j.state),
        el("td", {}, el("span", { class: "progress" }, el("span", { style: `width:${share}%` })), `${j.done + j.failed} / ${j.total}`),
        el("td", {}, String(j.failed)),
      );
    });
    const head = el("tr", {}, ...["Job", "Model", "State", "Progress", "Failed"].map((h) => el("th", {}, h)));
    replaceChildren("batch-jobs", el("table", { class: "jobs" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  function drawUsage(usage) {
    const tenants = (usage && usage.tenants) || [];
    if (!tenants.length) {
      replaceChildren("usage", el("p", { class: "muted" }, "none yet"));
      return;
    }
    // Small figures keep three significant digits: a few seconds of a 65 W PC is a fraction of a Wh.
    const money = (v) => (v === null || v === undefined ? "–" : v === 0 ? "0" : v.toPrecision(3));
    const rows = tenants.map((t) =>
      el(
        "tr",
        { "data-tenant": t.tenant },
        el("td", { class: "wid" }, t.tenant || "(no key)"),
        el("td", { class: "num" }, String(t.requests)),
        el("td", { class: "num" }, String(t.prompt_tokens)),
        el("td", { class: "num" }, String(t.cached_prompt_tokens)),
        el("td", { class: "num" }, String(t.completion_tokens)),
        el("td", { class: "num" }, money(t.energy_wh)),
        el("td", { class: "num" }, money(t.cost)),
        el("td", { class: "num" }, money(t.cost_per_million)),
      ),
    );
    const names = ["Key", "Requests", "Prompt", "Cached", "Completion", "Energy Wh", "Cost", "Cost / M tokens"];
    const head = el("tr", {}, ...names.map((h, i) => el("th", i ? { class: "num" } : {}, h)));
    replaceChildren("usage", el("table", { class: "usage" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  function render(snapshot) {
    if (snapshot.history) history = snapshot.history;
    else if (snapshot.sample) history.push(snapshot.sample);
    const oldest = Date.now() / 1000 - WINDOW_S - 5;
    while (history.length && history[0].at < oldest) history.shift();
    document.getElementById("default-model").textContent = snapshot.default_model ? `default model: ${snapshot.default_model}` : "";
    drawProblems(snapshot.problems);
    drawTiles(snapshot);
    drawCharts();
    drawWorkers(snapshot.workers);
    drawModels(snapshot.models);
    drawBatchJobs(snapshot.batch_jobs);
    drawUsage(snapshot.usage);
  }

  // ------------------------------------------------------------ connection and API key

  function setConnection(text, kind) {
    const badgeNode = document.getElementById("connection");
    badgeNode.textContent = text;
    badgeNode.className = `conn conn-${kind}`;
  }

  function askForKey() {
    setConnection("API key needed", "bad");
    const dialog = document.getElementById("key-dialog");
    if (!dialog.open) dialog.showModal();
  }

  function saveKey(key) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `swarm_api_key=${encodeURIComponent(key)}; path=/; SameSite=Strict${secure}`;
  }

  // EventSource hides the status of a refused stream: ask once more with fetch to tell a
  // missing key (401) from a coordinator that is restarting.
  function probe() {
    const abort = new AbortController();
    fetch("/events", { signal: abort.signal, headers: { Accept: "text/event-stream" }, credentials: "same-origin" })
      .then((response) => {
        abort.abort();
        if (response.status === 401 || response.status === 403) askForKey();
        else setTimeout(connect, RETRY_MS);
      })
      .catch(() => setTimeout(connect, RETRY_MS));
  }

  function connect() {
    if (source) source.close();
    setConnection("connecting…", "wait");
    source = new EventSource("/events");
    source.onmessage = (event) => {
      lastMessage = Date.now();
      setConnection("live", "live");
      render(JSON.parse(event.data));
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("disconnected", "bad");
        probe();
      } else {
        setConnection("reconnecting…", "wait");
      }
    };
  }

  document.getElementById("key-form").addEventListener("submit", () => {
    const key = document.getElementById("key-input").value.trim();
    if (key) saveKey(key);
    connect();
  });
  window.addEventListener("resize", drawCharts);
  setInterval(() => {
    const open = source && source.readyState === EventSource.OPEN;
    if (open && lastMessage && Date.now() - lastMessage > STALE_MS) setConnection("stale: no update for a while", "wait");
  }, 1000);
  drawLegend();
  connect();
})();
