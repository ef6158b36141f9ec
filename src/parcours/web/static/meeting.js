// The meeting room: one WebSocket to the server for signalling, the waiting room and the
// slide; audio and video peer to peer (WebRTC, a mesh of up to four browsers). The page
// exposes its state on #room (data-state, data-peers, data-slide) for people and tests.
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("meeting-config").textContent);
  const W = cfg.words;
  const room = document.getElementById("room");
  const statusEl = document.getElementById("room-status");
  const videos = document.getElementById("videos");
  const slideImg = document.getElementById("slide");
  const noSlide = document.getElementById("no-slide");
  const cover = document.getElementById("cover");
  const coverText = document.getElementById("cover-text");
  const pcs = new Map(); // peer id → RTCPeerConnection
  const states = new Map(); // peer id → connection state
  let ws = null;
  let me = cfg.host ? "host" : null;
  let local = null;
  let admitted = cfg.host;
  let closedForGood = false;
  let current = null; // {version_id, page}

  const say = (text, state) => {
    statusEl.textContent = text;
    if (state) room.dataset.state = state;
  };
  const end = (text, state) => {
    closedForGood = true;
    say(text, state);
    coverText.textContent = text;
    cover.hidden = false;
    for (const peer of [...pcs.keys()]) drop(peer);
    if (local) local.getTracks().forEach((t) => t.stop());
  };
  const send = (msg) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };
  const publishPeers = () => {
    room.dataset.peers = [...states.entries()].map(([p, s]) => `${p}:${s}`).join(" ");
  };

  async function media() {
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
      document.getElementById("local").srcObject = local;
    } catch (err) {
      local = new MediaStream();
      say(W.no_camera);
    }
  }

  function tile(peer) {
    let fig = document.getElementById(`tile-${peer}`);
    if (!fig) {
      fig = document.createElement("figure");
      fig.className = "tile";
      fig.id = `tile-${peer}`;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      const cap = document.createElement("figcaption");
      cap.textContent = (cfg.names || {})[peer] || "";
      fig.append(video, cap);
      videos.append(fig);
    }
    return fig;
  }

  function connection(peer) {
    if (pcs.has(peer)) return pcs.get(peer);
    const pc = new RTCPeerConnection({ iceServers: cfg.iceServers || [] });
    pcs.set(peer, pc);
    states.set(peer, "new");
    publishPeers();
    if (local) local.getTracks().forEach((t) => pc.addTrack(t, local));
    pc.onicecandidate = (e) => {
      if (e.candidate) send({ type: "signal", to: peer, data: { candidate: e.candidate.toJSON() } });
    };
    pc.ontrack = (e) => {
      tile(peer).querySelector("video").srcObject = e.streams[0];
    };
    pc.onconnectionstatechange = () => {
      states.set(peer, pc.connectionState);
      publishPeers();
      if (pc.connectionState === "connected") say(W.connected, "connected");
    };
    return pc;
  }

  async function call(peer) {
    const pc = connection(peer);
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "signal", to: peer, data: { sdp: pc.localDescription.toJSON() } });
  }

  async function signal(from, data) {
    if (!data) return;
    const pc = connection(from);
    if (data.sdp) {
      await pc.setRemoteDescription(data.sdp);
      if (data.sdp.type === "offer") {
        await pc.setLocalDescription(await pc.createAnswer());
        send({ type: "signal", to: from, data: { sdp: pc.localDescription.toJSON() } });
      }
    } else if (data.candidate) {
      try {
        await pc.addIceCandidate(data.candidate);
      } catch (err) {
        /* a candidate for a description not set yet: the next ones will do */
      }
    }
  }

  function drop(peer) {
    const pc = pcs.get(peer);
    if (pc) pc.close();
    pcs.delete(peer);
    states.delete(peer);
    publishPeers();
    const fig = document.getElementById(`tile-${peer}`);
    if (fig) fig.remove();
  }

  function showSlide(msg) {
    current = { version_id: msg.version_id, page: msg.page };
    slideImg.src = cfg.pageUrl.replace("{v}", msg.version_id).replace("{p}", msg.page);
    slideImg.alt = W.slide.replace("{n}", msg.page);
    slideImg.hidden = false;
    noSlide.hidden = true;
    room.dataset.slide = `${msg.version_id}:${msg.page}`;
    if (cfg.host) pageOf();
  }

  // ---------------------------------------------------------------- host: roster and slides

  function roster(msg) {
    const list = document.getElementById("roster");
    if (!list) return;
    list.replaceChildren();
    const present = msg.attendees.filter((a) => ["waiting", "admitted"].includes(a.state));
    if (!present.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = W.nobody_waiting;
      list.append(li);
    }
    for (const a of present) {
      const li = document.createElement("li");
      li.dataset.attendee = a.id;
      li.dataset.state = a.state;
      const name = document.createElement("span");
      name.textContent = `${a.name} · ${a.state === "waiting" ? W.waiting : W.in_room}`;
      li.append(name);
      const actions = a.state === "waiting" ? [["admit", W.admit], ["refuse", W.refuse]] : [["mute", W.mute], ["remove", W.remove]];
      for (const [kind, label] of actions) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = `btn btn-${kind === "admit" ? "primary" : "secondary"} btn-sm`;
        b.dataset.action = kind;
        b.textContent = label;
        b.onclick = () => (kind === "mute" ? send({ type: "mute", peer: `a${a.id}` }) : send({ type: kind, attendee: a.id }));
        li.append(b);
      }
      list.append(li);
    }
    const lock = document.getElementById("lock");
    lock.setAttribute("aria-pressed", String(msg.locked));
    room.dataset.locked = String(msg.locked);
  }

  const deck = document.getElementById("deck");
  let page = 1;
  function pageOf() {
    const el = document.getElementById("page-of");
    if (el && current) el.textContent = W.slide.replace("{n}", current.page);
  }
  function present(p) {
    if (!deck) return;
    const pages = Number(deck.selectedOptions[0].dataset.pages || 1);
    page = Math.min(Math.max(1, p), pages);
    send({ type: "present", version_id: Number(deck.value), page });
  }
  if (cfg.host) {
    if (deck) {
      document.getElementById("show").onclick = () => present(1);
      document.getElementById("next").onclick = () => present(page + 1);
      document.getElementById("prev").onclick = () => present(page - 1);
      deck.onchange = () => {
        send({ type: "prepare", version_id: Number(deck.value) });
        present(1);
      };
    }
    document.getElementById("lock").onclick = (e) => {
      send({ type: "lock", locked: e.currentTarget.getAttribute("aria-pressed") !== "true" });
    };
    document.getElementById("end").onclick = () => send({ type: "end" });
    for (const b of document.querySelectorAll("[data-reaction]")) {
      b.onclick = () => {
        const again = b.getAttribute("aria-pressed") === "true";
        send({ type: "react", reaction: again ? null : b.dataset.reaction });
      };
    }
  }

  // ---------------------------------------------------------------- own microphone and camera

  const toggle = (id, kind) => {
    const btn = document.getElementById(id);
    btn.onclick = () => {
      const on = btn.getAttribute("aria-pressed") !== "true";
      btn.setAttribute("aria-pressed", String(on));
      if (local) local.getTracks().filter((t) => t.kind === kind).forEach((t) => (t.enabled = on));
    };
  };
  toggle("mic", "audio");
  toggle("cam", "video");

  // ---------------------------------------------------------------- quality reports

  const last = new Map();
  async function stats() {
    for (const [peer, pc] of pcs) {
      if (pc.connectionState !== "connected") continue;
      const report = await pc.getStats();
      const out = { type: "stats" };
      let bytes = 0;
      report.forEach((s) => {
        if (s.type === "candidate-pair" && s.state === "succeeded" && s.currentRoundTripTime !== undefined) out.rtt_ms = s.currentRoundTripTime * 1000;
        if (s.type === "inbound-rtp" && s.kind === "video") {
          out.jitter_ms = (s.jitter || 0) * 1000;
          const lost = s.packetsLost || 0;
          const got = s.packetsReceived || 0;
          out.loss_pct = got + lost ? (100 * lost) / (got + lost) : 0;
          if (s.frameWidth) out.width = s.frameWidth;
          if (s.frameHeight) out.height = s.frameHeight;
          bytes = s.bytesReceived || 0;
        }
      });
      const prev = last.get(peer);
      const now = performance.now();
      if (prev) out.bitrate_kbps = ((bytes - prev.bytes) * 8) / (now - prev.at);
      last.set(peer, { bytes, at: now });
      send(out);
    }
  }
  setInterval(stats, 5000);

  // ---------------------------------------------------------------- the socket

  function connect() {
    const url = new URL(cfg.socket, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url);
    ws.onmessage = async (e) => {
      const msg = JSON.parse(e.data);
      switch (msg.type) {
        case "waiting":
          say(W.waiting, "waiting");
          break;
        case "admitted":
          admitted = true;
          me = msg.you;
          if (cfg.host && deck) send({ type: "prepare", version_id: Number(deck.value) });
          say(W.admitted, "admitted");
          for (const peer of msg.peers) await call(peer);
          break;
        case "peer-joined":
          break; // the newcomer calls
        case "peer-left":
          drop(msg.peer);
          if (msg.peer === "host") say(W.host_left);
          break;
        case "signal":
          await signal(msg.from, msg.data);
          break;
        case "slide":
          showSlide(msg);
          document.querySelectorAll("[data-reaction]").forEach((b) => b.setAttribute("aria-pressed", "false"));
          break;
        case "reacted":
          document.querySelectorAll("[data-reaction]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.reaction === msg.reaction)));
          break;
        case "slide-stopped": // withdrawn or expired while on screen
          slideImg.hidden = true;
          noSlide.hidden = false;
          delete room.dataset.slide;
          break;
        case "roster":
          roster(msg);
          break;
        case "mute":
          if (local) local.getAudioTracks().forEach((t) => (t.enabled = false));
          document.getElementById("mic").setAttribute("aria-pressed", "false");
          break;
        case "refused":
        case "removed":
        case "locked":
        case "ended":
        case "replaced":
          end(W[msg.type], msg.type);
          if (msg.type === "ended" && cfg.host) location.href = cfg.callUrl;
          if (msg.type === "ended" && !cfg.host && admitted) {
            const rating = document.getElementById("rating");
            if (rating) rating.hidden = false; // a short rating, for those who were in
          }
          break;
        case "error":
          say(msg.message);
          break;
      }
    };
    ws.onclose = () => {
      if (!closedForGood) setTimeout(connect, 1500);
    };
  }

  media().then(connect);
  window.addEventListener("pagehide", () => {
    closedForGood = true;
    if (ws) ws.close();
  });
})();
