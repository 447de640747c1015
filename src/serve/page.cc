#include "serve/page.h"

namespace swa::serve {
namespace {

constexpr char kPage[] = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>swa serve</title>
<style>
  body { font-family: sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
  textarea { width: 100%; height: 6rem; font-family: monospace; }
  #out { white-space: pre-wrap; font-family: monospace; border: 1px solid #ccc; min-height: 8rem; padding: .5rem; }
  label { margin-right: 1rem; }
  input[type=number] { width: 5rem; }
  .charts { display: flex; gap: 1rem; margin-top: 1rem; }
  canvas { border: 1px solid #ccc; }
</style>
</head>
<body>
<h1>swa serve</h1>
<textarea id="prompt">def main(</textarea>
<p>
  <label>max tokens <input id="max_tokens" type="number" value="200" min="0"></label>
  <label>temperature <input id="temperature" type="number" value="0.8" min="0" step="0.1"></label>
  <label>top-k <input id="top_k" type="number" value="40" min="0"></label>
  <label>seed <input id="seed" type="number" value="0" min="0"></label>
  <button id="go">Generate</button> <button id="stop" disabled>Stop</button>
</p>
<div id="out"></div>
<p id="status"></p>
<div class="charts">
  <div>decode tokens/s<br><canvas id="rate" width="400" height="150"></canvas></div>
  <div>KV-cache bytes<br><canvas id="cache" width="400" height="150"></canvas></div>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;

// Streams /v1/completions: Server-Sent Events, one "data: {json}" per piece of text.
async function generate() {
  const body = {
    prompt: $("prompt").value, stream: true,
    max_tokens: Number($("max_tokens").value), temperature: Number($("temperature").value),
    top_k: Number($("top_k").value), seed: Number($("seed").value),
  };
  $("out").textContent = "";
  $("status").textContent = "";
  controller = new AbortController();
  $("go").disabled = true; $("stop").disabled = false;
  try {
    const res = await fetch("/v1/completions", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!res.ok) { $("status").textContent = (await res.json()).error.message; return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        $("out").textContent += chunk.choices[0].text;
        if (chunk.choices[0].finish_reason) {
          $("status").textContent = "finish: " + chunk.choices[0].finish_reason + ", " +
              chunk.usage.completion_tokens + " tokens";
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") $("status").textContent = String(e);
  } finally {
    $("go").disabled = false; $("stop").disabled = true;
  }
}
$("go").onclick = generate;
$("stop").onclick = () => controller && controller.abort();

// The charts: samples of /metrics once a second, the last 60 kept.
const history = {rate: [], cache: []};
let last = null;
function metric(text, name) {
  const m = text.match(new RegExp("^" + name + " (\\S+)$", "m"));
  return m ? Number(m[1]) : 0;
}
function draw(canvas, values) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const max = Math.max(1, ...values);
  ctx.fillStyle = "#000";
  ctx.fillText(max.toPrecision(3), 4, 12);
  ctx.strokeStyle = "#2a6";
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / 59) * canvas.width;
    const y = canvas.height - (v / max) * (canvas.height - 16);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
async function poll() {
  try {
    const text = await (await fetch("/metrics")).text();
    const now = performance.now() / 1000;
    const decoded = metric(text, "swa_generated_tokens_total");
    if (last) history.rate.push((decoded - last.decoded) / (now - last.time));
    last = {decoded, time: now};
    history.cache.push(metric(text, "swa_kv_cache_bytes_total"));
    for (const k in history) if (history[k].length > 60) history[k].shift();
    draw($("rate"), history.rate);
    draw($("cache"), history.cache);
  } catch (e) {}
}
setInterval(poll, 1000);
poll();
</script>
</body>
</html>
)PAGE";

}  // namespace

std::string_view IndexPage() { return {kPage, sizeof(kPage) - 1}; }

}  // namespace swa::serve
