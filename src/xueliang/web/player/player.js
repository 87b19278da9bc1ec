// The embeddable player: live view (fragmented MP4 over WebSocket into Media Source
// Extensions) and playback by time range. Uses only the public HTTP API.
"use strict";

const api = (path, opts = {}) => {
  const token = sessionStorage.getItem("xl-token");
  const headers = Object.assign({}, opts.headers || {}, token ? { Authorization: `Bearer ${token}` } : {});
  return fetch(`/api/v1${path}`, Object.assign({}, opts, { headers }));
};
const $ = (id) => document.getElementById(id);
const video = $("video");
const say = (text) => { $("status").textContent = text; };
let session = null; // the running live or playback session, closed before the next

class MseSink {
  // Appends fMP4 pieces in order; keeps playback near the newest data when `live`.
  constructor(mime, live) {
    this.queue = [];
    this.live = live;
    this.ms = new MediaSource();
    this.ready = new Promise((resolve) => this.ms.addEventListener("sourceopen", resolve, { once: true }));
    video.src = URL.createObjectURL(this.ms);
    this.ready.then(() => {
      this.sb = this.ms.addSourceBuffer(mime);
      this.sb.addEventListener("updateend", () => this.pump());
      this.pump();
    });
  }
  push(chunk) { this.queue.push(chunk); this.pump(); }
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.queue.length) return;
    this.edge();
    try { sb.appendBuffer(this.queue.shift()); } catch (e) { say(`播放错误: ${e.message}`); }
  }
  edge() {
    const b = video.buffered;
    if (!b.length) return;
    const start = b.start(0), end = b.end(b.length - 1);
    if (video.currentTime < start) video.currentTime = start;
    if (this.live && end - video.currentTime > 1.0) video.currentTime = Math.max(start, end - 0.2);
    if (this.live && !this.sb.updating && video.currentTime - start > 30) {
      this.sb.remove(start, video.currentTime - 10);
    }
  }
  close() { try { if (this.ms.readyState === "open") this.ms.endOfStream(); } catch (e) { /* closed */ } }
}

function stop() {
  if (session) session.close();
  session = null;
}

function playLive(channel) {
  stop();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const token = encodeURIComponent(sessionStorage.getItem("xl-token") || "");
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/channels/${channel}/live?token=${token}`);
  ws.binaryType = "arraybuffer";
  let sink = null;
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const msg = JSON.parse(ev.data);
      if (msg.type === "init") {
        if (!MediaSource.isTypeSupported(msg.mime)) { say(`浏览器不支持此编码: ${msg.codec}`); ws.close(); return; }
        if (sink) sink.close();
        sink = new MseSink(msg.mime, true);
        say(`实时 ${channel} (${msg.codec})`);
      } else {
        say(msg.message || msg.type);
      }
    } else if (sink) {
      sink.push(ev.data);
    }
  };
  ws.onclose = (ev) => { if (session && session.ws === ws) say(`连接已关闭 (${ev.code})`); };
  session = { ws, close: () => { ws.close(); if (sink) sink.close(); } };
  video.playbackRate = 1;
  video.play().catch(() => {});
}

async function playRange(channel, start, end) {
  stop();
  const controller = new AbortController();
  session = { close: () => controller.abort() };
  const q = new URLSearchParams({ start: new Date(start).toISOString(), end: new Date(end).toISOString() });
  const res = await api(`/channels/${channel}/playback?${q}`, { signal: controller.signal });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    say((body.error && body.error.message) || `回放失败 (${res.status})`);
    return;
  }
  const codec = res.headers.get("X-Codec") || "avc1.640028";
  const sink = new MseSink(`video/mp4; codecs="${codec}"`, false);
  video.playbackRate = Number($("rate").value);
  say(`回放 ${channel}`);
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sink.push(value);
  }
  video.play().catch(() => {});
}

async function loadChannels() {
  const res = await api("/channels?limit=1000");
  if (res.status === 401) { showLogin(); return; }
  const { items } = await res.json();
  const sel = $("channel");
  sel.replaceChildren(...items.map((c) => new Option(`${c.name} (${c.status === "online" ? "在线" : "离线"})`, c.id)));
  const wanted = new URLSearchParams(location.search).get("channel");
  if (wanted) sel.value = wanted;
  const now = Date.now();
  const local = (t) => new Date(t - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  if (!$("start").value) { $("start").value = local(now - 120000); $("end").value = local(now); }
  $("main").hidden = false;
  $("login").hidden = true;
}

function showLogin() { $("main").hidden = true; $("login").hidden = false; }

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const res = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  const body = await res.json();
  if (!res.ok) { $("login-error").textContent = body.error.message; return; }
  sessionStorage.setItem("xl-token", body.access_token);
  $("who").textContent = body.user.username;
  loadChannels();
});
$("live").addEventListener("click", () => playLive($("channel").value));
$("playback").addEventListener("click", () => playRange($("channel").value, $("start").value, $("end").value));
$("rate").addEventListener("change", () => { video.playbackRate = Number($("rate").value); });

const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) { sessionStorage.setItem("xl-token", fromHash); history.replaceState(null, "", location.pathname + location.search); }
loadChannels();
