// parcours CLM player: slides, swipe and keys, reactions, and the queue of slide events that
// survives poor hospital Wi-Fi (kept in localStorage until the server says it has them).
// On the content chooser it only sends what an earlier presentation of the call left behind.
(function () {
  "use strict";

  var PREFIX = "parcours.clm.";
  var BATCH = 100;
  var RETRY_MS = 5000;
  var STATUS_MS = 10000;
  var MAX_MS = 4 * 3600 * 1000;

  // ---------------------------------------------------------------- storage

  var store = (function () {
    try {
      var probe = PREFIX + "probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (e) {
      return null; // private mode or storage off: keep the events in memory for this page
    }
  })();
  var memory = {};

  function read(key, fallback) {
    var raw = store ? store.getItem(key) : memory[key];
    if (raw === null || raw === undefined) return fallback;
    try { return JSON.parse(raw); } catch (e) { return fallback; }
  }

  function write(key, value) {
    var raw = JSON.stringify(value);
    if (store) {
      try { store.setItem(key, raw); return; } catch (e) { store = null; } // full: memory from now on
    }
    memory[key] = raw;
  }

  function remove(key) {
    if (store) store.removeItem(key);
    delete memory[key];
  }

  function keys(prefix) {
    var out = [];
    if (store) {
      for (var i = 0; i < store.length; i++) {
        var k = store.key(i);
        if (k && k.indexOf(prefix) === 0) out.push(k);
      }
    }
    Object.keys(memory).forEach(function (k) { if (k.indexOf(prefix) === 0 && out.indexOf(k) < 0) out.push(k); });
    return out;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)); // plain-HTTP pages have no randomUUID
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function csrf() {
    var el = document.querySelector('input[name="_csrf"]');
    return el ? el.value : "";
  }

  // ---------------------------------------------------------------- the queue of one call

  // One queue per call and content version (key parcours.clm.<call>.v<version>); the sender
  // sends every version's queue of the call, oldest first, and forgets only acknowledged ids.
  function Sender(activityId, url, onChange, onResult) {
    this.prefix = PREFIX + activityId + ".v";
    this.url = url;
    this.onChange = onChange || function () {};
    this.onResult = onResult || function () {};
    this.busy = null;
    this.state = navigator.onLine === false ? "offline" : "ok";
  }

  Sender.prototype.add = function (versionId, event) {
    var key = this.prefix + versionId;
    var list = read(key, []);
    list.push(event);
    write(key, list);
    this.onChange(this);
  };

  Sender.prototype.pending = function () {
    return keys(this.prefix).reduce(function (n, k) { return n + read(k, []).length; }, 0);
  };

  Sender.prototype.forget = function (ids) {
    if (!ids.length) return;
    var gone = {};
    ids.forEach(function (id) { gone[id] = true; });
    keys(this.prefix).forEach(function (k) {
      var left = read(k, []).filter(function (e) { return !gone[e.event_id]; });
      if (left.length) write(k, left); else remove(k);
    });
  };

  Sender.prototype.batch = function () {
    var out = [];
    keys(this.prefix).forEach(function (k) { out = out.concat(read(k, [])); });
    out.sort(function (a, b) { return a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : a.seq - b.seq; });
    return out.slice(0, BATCH);
  };

  Sender.prototype.set = function (state) {
    this.state = state;
    this.onChange(this);
  };

  // Resolves once nothing is left or a try failed; never rejects.
  Sender.prototype.flush = function () {
    var self = this;
    if (self.busy) return self.busy;
    if (navigator.onLine === false) { self.set("offline"); return Promise.resolve(); }
    var events = self.batch();
    if (!events.length) { if (self.state !== "refused") self.set("ok"); return Promise.resolve(); }
    self.busy = fetch(self.url, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ events: events })
    }).then(function (resp) {
      if (resp.type === "opaqueredirect" || resp.status === 401) { self.set("login"); return false; }
      var isJson = (resp.headers.get("content-type") || "").indexOf("json") >= 0;
      if (!isJson) { self.set("error"); return false; }
      return resp.json().then(function (body) {
        if (resp.ok) {
          (body.rejected || []).forEach(function (r) {
            console.warn("parcours: slide event refused", r.event_id, r.field, r.message);
          });
          self.forget((body.stored || []).concat((body.rejected || []).map(function (r) { return r.event_id; })));
          self.set("ok");
          self.onResult(body);
          return true;
        }
        if (resp.status === 422) {
          // malformed events would be refused forever: drop the ones named (or the batch)
          var bad = [];
          (body.errors || []).forEach(function (e) {
            var m = /^events\.(\d+)/.exec(e.field || "");
            if (m && events[+m[1]]) bad.push(events[+m[1]].event_id);
          });
          if (!bad.length) bad = events.map(function (e) { return e.event_id; });
          console.error("parcours: slide events refused", body);
          self.forget(bad);
          return true;
        }
        if (resp.status === 403 || resp.status === 404 || resp.status === 409) {
          // the call is locked or not this rep's: these slides can never be recorded
          console.error("parcours: slide events refused", body);
          self.forget(events.map(function (e) { return e.event_id; }));
          self.set("refused");
          self.onResult({ refused: body.detail || "" });
          return false;
        }
        self.set("error");
        return false;
      });
    }).catch(function () {
      self.set(navigator.onLine === false ? "offline" : "error");
      return false;
    }).then(function (goOn) {
      self.busy = null;
      if (goOn && self.batch().length) return self.flush();
    });
    return self.busy;
  };

  Sender.prototype.keepRetrying = function () {
    var self = this;
    window.addEventListener("online", function () { self.flush(); });
    window.addEventListener("offline", function () { self.set("offline"); });
    setInterval(function () { if (self.batch().length) self.flush(); }, RETRY_MS);
  };

  // ---------------------------------------------------------------- the player

  function Player(root, cfg) {
    var self = this;
    self.root = root;
    self.cfg = cfg;
    self.msg = cfg.messages || {};
    self.count = cfg.pageCount;
    self.index = 0;
    self.current = null;
    self.recording = true;
    self.ending = false;
    self.img = root.querySelector("#slide");
    self.stage = root.querySelector("#stage");
    self.sender = new Sender(cfg.activityId, cfg.eventsUrl,
      function () { self.showNetwork(); },
      function (body) { self.onFlushed(body); });
  }

  Player.prototype.$ = function (sel) { return this.root.querySelector(sel); };

  Player.prototype.start = function () {
    var self = this;
    self.bind();
    self.render();
    self.enter();
    self.sender.keepRetrying();
    self.sender.flush(); // anything an earlier visit left behind
    self.statusTimer = setInterval(function () { self.poll(); }, STATUS_MS);
    self.showNetwork();
  };

  Player.prototype.url = function (page) {
    return this.cfg.pageUrl + page + ".jpg";
  };

  Player.prototype.nextSeq = function () {
    var key = PREFIX + this.cfg.activityId + ".seq";
    var n = read(key, -1) + 1;
    write(key, n);
    return n;
  };

  // A slide starts being shown: its clock runs only while the page is visible.
  Player.prototype.enter = function () {
    if (!this.recording) return;
    this.current = {
      page: this.index + 1,
      startedAt: new Date().toISOString(),
      visibleMs: 0,
      since: document.hidden ? null : performance.now(),
      reaction: null
    };
    this.showReaction();
  };

  // The slide is left: it becomes an event in the queue.
  Player.prototype.leave = function () {
    var c = this.current;
    this.current = null;
    if (!c || !this.recording) return;
    var ms = c.visibleMs + (c.since === null ? 0 : performance.now() - c.since);
    this.sender.add(this.cfg.versionId, {
      event_id: uuid(),
      activity_id: this.cfg.activityId,
      version_id: this.cfg.versionId,
      page: c.page,
      seq: this.nextSeq(),
      started_at: c.startedAt,
      duration_ms: Math.max(0, Math.min(MAX_MS, Math.round(ms))),
      reaction: c.reaction
    });
    this.showReaction();
  };

  Player.prototype.go = function (i) {
    if (this.ending || this.stopped) return;
    i = Math.max(0, Math.min(this.count - 1, i));
    if (i === this.index) return;
    var forward = i > this.index;
    this.leave();
    this.index = i;
    this.render(forward ? "from-right" : "from-left");
    this.enter();
    this.sender.flush();
  };

  Player.prototype.render = function (motion) {
    var page = this.index + 1;
    var img = this.img;
    img.src = this.url(page);
    img.alt = (this.msg.slide || "{n} / {total}").replace("{n}", page).replace("{total}", this.count);
    img.classList.remove("from-right", "from-left");
    if (motion) { void img.offsetWidth; img.classList.add(motion); }
    this.$("#slide-n").textContent = page;
    this.$("[data-prev]").disabled = page === 1;
    this.$("[data-next]").disabled = page === this.count;
    this.root.querySelectorAll("[data-goto]").forEach(function (b) {
      if (+b.getAttribute("data-goto") === page) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
    [page + 1, page - 1].forEach(function (n) {
      if (n >= 1 && n <= this.count) { var pre = new Image(); pre.src = this.url(n); }
    }, this);
  };

  Player.prototype.react = function (r) {
    if (!this.current) return;
    this.current.reaction = this.current.reaction === r ? null : r;
    this.showReaction();
  };

  Player.prototype.showReaction = function () {
    var chosen = this.current ? this.current.reaction : null;
    this.root.querySelectorAll("[data-reaction]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-reaction") === chosen ? "true" : "false");
    });
  };

  Player.prototype.showNetwork = function () {
    var n = this.sender.pending();
    var state = this.sender.state;
    var box = this.$("#net");
    this.root.setAttribute("data-pending", String(n));
    this.root.setAttribute("data-net", state);
    var text = "";
    if (state === "offline") text = n === 1 ? this.msg.offline_one : this.msg.offline;
    else if (state === "login" && n) text = this.msg.login;
    else if (state === "error" && n) text = n === 1 ? this.msg.pending_one : this.msg.pending;
    box.hidden = !text;
    box.querySelector("span").textContent = (text || "").replace("{n}", n);
    if (this.ending) this.showEnding();
  };

  Player.prototype.poll = function () {
    var self = this;
    if (!self.recording || navigator.onLine === false) return;
    fetch(self.cfg.statusUrl, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (body) { if (body) self.applyStatus(body); })
      .catch(function () { /* offline: asked again in ten seconds */ });
  };

  Player.prototype.onFlushed = function (body) {
    if (body.refused !== undefined) {
      this.stop(body.refused || this.msg.refused);
    } else if (body.status && body.status[String(this.cfg.versionId)]) {
      this.applyStatus(body.status[String(this.cfg.versionId)]);
    }
    if (this.ending) this.tryFinish();
  };

  Player.prototype.applyStatus = function (st) {
    if (st.presentable === false) this.stop(st.message || st.reason || this.msg.refused);
  };

  // The content can no longer be shown (withdrawn, expired, call locked): cover it and
  // stop recording; the time it was shown until now still counts.
  Player.prototype.stop = function (message) {
    if (this.stopped) return;
    this.leave();
    this.recording = false;
    this.stopped = true;
    clearInterval(this.statusTimer);
    this.img.removeAttribute("src");
    this.img.hidden = true;
    var cover = this.$("#cover");
    cover.querySelector("[data-cover-text]").textContent = message;
    cover.hidden = false;
    this.root.classList.add("is-stopped");
    this.root.querySelectorAll("[data-reaction],[data-prev],[data-next],[data-goto]").forEach(function (b) { b.disabled = true; });
    this.sender.flush();
  };

  // "End presentation": record the slide, send everything, then prefill the call report.
  Player.prototype.end = function () {
    this.leave();
    this.ending = true;
    this.showEnding();
    var self = this;
    this.sender.flush().then(function () { self.tryFinish(); });
  };

  Player.prototype.tryFinish = function () {
    if (!this.ending || this.finishing) return;
    if (this.sender.pending() === 0) {
      this.finishing = true;
      this.showEnding();
      this.$("#finish-form").submit();
    } else {
      this.showEnding();
    }
  };

  Player.prototype.resume = function () {
    this.ending = false;
    this.$("#ending").hidden = true;
    if (!this.stopped) this.enter();
    this.$("[data-end]").focus();
  };

  Player.prototype.showEnding = function () {
    var box = this.$("#ending");
    var n = this.sender.pending();
    var waiting = !this.finishing && n > 0 && this.sender.state !== "ok";
    var text = this.finishing || !waiting ? this.msg.sending : (n === 1 ? this.msg.sent_later_one : this.msg.sent_later);
    box.querySelector("[data-ending-text]").textContent = (text || "").replace("{n}", n);
    box.querySelector("[data-resume]").hidden = !waiting;
    box.classList.toggle("is-waiting", waiting);
    if (box.hidden) { box.hidden = false; box.querySelector("[data-ending-text]").focus(); }
  };

  Player.prototype.fullscreen = function () {
    var d = document;
    if (d.fullscreenElement || d.webkitFullscreenElement) {
      (d.exitFullscreen || d.webkitExitFullscreen).call(d);
    } else {
      var el = d.documentElement;
      var req = el.requestFullscreen || el.webkitRequestFullscreen;
      if (req) { var p = req.call(el); if (p && p.catch) p.catch(function () {}); }
    }
  };

  Player.prototype.bind = function () {
    var self = this;
    var root = self.root;

    root.addEventListener("click", function (ev) {
      var t = ev.target.closest("button");
      if (!t || t.disabled) return;
      if (t.hasAttribute("data-next")) self.go(self.index + 1);
      else if (t.hasAttribute("data-prev")) self.go(self.index - 1);
      else if (t.hasAttribute("data-reaction")) self.react(t.getAttribute("data-reaction"));
      else if (t.hasAttribute("data-goto")) { self.go(+t.getAttribute("data-goto") - 1); self.thumbs(false); }
      else if (t.hasAttribute("data-thumbs")) self.thumbs(t.getAttribute("aria-expanded") !== "true");
      else if (t.hasAttribute("data-fullscreen")) self.fullscreen();
      else if (t.hasAttribute("data-end")) self.end();
      else if (t.hasAttribute("data-resume")) self.resume();
    });

    document.addEventListener("keydown", function (ev) {
      if (ev.altKey || ev.ctrlKey || ev.metaKey || self.ending) return;
      var onButton = ev.target.closest && ev.target.closest("button, a, input");
      switch (ev.key) {
        case "ArrowRight": case "ArrowDown": case "PageDown": self.go(self.index + 1); break;
        case "ArrowLeft": case "ArrowUp": case "PageUp": self.go(self.index - 1); break;
        case " ": if (onButton) return; self.go(self.index + (ev.shiftKey ? -1 : 1)); break;
        case "Home": self.go(0); break;
        case "End": self.go(self.count - 1); break;
        case "Escape": self.thumbs(false); return;
        default: return;
      }
      ev.preventDefault();
    });

    var fsButton = self.$("[data-fullscreen]");
    if (!(document.fullscreenEnabled || document.webkitFullscreenEnabled)) fsButton.hidden = true;
    ["fullscreenchange", "webkitfullscreenchange"].forEach(function (name) {
      document.addEventListener(name, function () {
        var on = !!(document.fullscreenElement || document.webkitFullscreenElement);
        fsButton.setAttribute("aria-pressed", on ? "true" : "false");
      });
    });

    // Swipe: the slide follows the finger, and a short flick is enough.
    var drag = null;
    var stage = self.stage;
    stage.addEventListener("pointerdown", function (ev) {
      if (!ev.isPrimary || (ev.pointerType === "mouse" && ev.button !== 0) || self.stopped) return;
      drag = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, t: performance.now(), dx: 0 };
      try { stage.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic pointer */ }
      self.img.classList.add("dragging");
    });
    stage.addEventListener("pointermove", function (ev) {
      if (!drag || ev.pointerId !== drag.id) return;
      drag.dx = ev.clientX - drag.x;
      drag.dy = ev.clientY - drag.y;
      var atEdge = (drag.dx > 0 && self.index === 0) || (drag.dx < 0 && self.index === self.count - 1);
      self.img.style.transform = "translateX(" + (atEdge ? drag.dx / 4 : drag.dx) + "px)";
    });
    function release(ev) {
      if (!drag || ev.pointerId !== drag.id) return;
      var d = drag;
      drag = null;
      d.dx = ev.clientX - d.x;
      d.dy = ev.clientY - d.y;
      self.img.classList.remove("dragging");
      self.img.style.transform = "";
      if (ev.type === "pointercancel") return;
      var speed = Math.abs(d.dx) / Math.max(1, performance.now() - d.t);
      var horizontal = Math.abs(d.dx) > Math.abs(d.dy || 0);
      if (horizontal && (Math.abs(d.dx) > 60 || (Math.abs(d.dx) > 25 && speed > 0.4))) {
        self.go(self.index + (d.dx < 0 ? 1 : -1));
      }
    }
    stage.addEventListener("pointerup", release);
    stage.addEventListener("pointercancel", release);

    document.addEventListener("visibilitychange", function () {
      var c = self.current;
      if (!c) return;
      if (document.hidden) {
        if (c.since !== null) { c.visibleMs += performance.now() - c.since; c.since = null; }
      } else if (c.since === null) {
        c.since = performance.now();
      }
    });

    // Leaving the page (tab closed, app killed): keep the slide on this tablet and try to
    // send it; whatever the server did not acknowledge is sent again next time.
    window.addEventListener("pagehide", function () {
      if (self.finishing) return;
      self.leave();
      var events = self.sender.batch();
      if (events.length && navigator.onLine !== false) {
        try {
          fetch(self.cfg.eventsUrl, {
            method: "POST", keepalive: true, credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
            body: JSON.stringify({ events: events.slice(0, 50) })
          }).catch(function () {});
        } catch (e) { /* keepalive body too large: sent next time */ }
      }
    });
    window.addEventListener("pageshow", function (ev) {
      if (ev.persisted && !self.current && !self.ending) self.enter();
    });
  };

  Player.prototype.thumbs = function (open) {
    var strip = this.$("#thumbs");
    var btn = this.$("[data-thumbs]");
    strip.hidden = !open;
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    this.root.classList.toggle("thumbs-open", open);
    if (open) {
      var cur = strip.querySelector('[aria-current="true"]');
      if (cur) { cur.scrollIntoView({ block: "nearest", inline: "center" }); cur.focus(); }
    }
  };

  // ---------------------------------------------------------------- start

  function init() {
    var data = document.getElementById("player-config");
    var root = document.getElementById("player");
    if (data && root) {
      var player = new Player(root, JSON.parse(data.textContent));
      player.start();
      window.parcoursPlayer = player;
      return;
    }
    // The content chooser: send what an earlier presentation of this call left unsent.
    var tag = document.querySelector("script[data-flush-call]");
    if (tag) {
      var call = tag.getAttribute("data-flush-call");
      var sender = new Sender(call, "/present/" + call + "/events");
      if (sender.batch().length) { sender.keepRetrying(); sender.flush(); }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
