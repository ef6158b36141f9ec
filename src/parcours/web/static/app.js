// parcours: the little the browser must do itself (navigation rail, toasts, confirm dialogs).
(function () {
  "use strict";

  function toast(text, kind) {
    var box = document.getElementById("toasts");
    if (!box || !text) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "success");
    el.textContent = text;
    box.appendChild(el);
    dismissLater(el);
  }

  function dismissLater(el) {
    setTimeout(function () {
      el.classList.add("leaving");
      setTimeout(function () { el.remove(); }, 400);
    }, 4000);
  }

  function setNav(open) {
    document.body.classList.toggle("nav-open", open);
    var btn = document.querySelector("[data-nav-toggle]");
    if (btn) btn.setAttribute("aria-expanded", open ? "true" : "false");
    var scrim = document.querySelector("[data-nav-close]");
    if (scrim) scrim.hidden = !open;
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.closest("[data-nav-toggle]")) {
      setNav(!document.body.classList.contains("nav-open"));
      return;
    }
    if (t.closest("[data-nav-close]")) { setNav(false); return; }
    // Close an open user menu when tapping elsewhere.
    document.querySelectorAll("details.user-menu[open]").forEach(function (d) {
      if (!d.contains(t)) d.removeAttribute("open");
    });
    var opener = t.closest("[data-open-dialog]");
    if (opener) {
      var dlg = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dlg && dlg.showModal) { ev.preventDefault(); dlg.showModal(); }
      return;
    }
    var closer = t.closest("[data-close-dialog]");
    if (closer) { var d = closer.closest("dialog"); if (d) d.close(); }
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      setNav(false);
      document.querySelectorAll("details.user-menu[open]").forEach(function (d) { d.removeAttribute("open"); });
    }
  });

  // "Add a key message": becomes a checked chip at once; the server keeps it on save.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-add-chip]");
    if (!btn) return;
    ev.preventDefault();
    var input = document.getElementById(btn.getAttribute("data-add-chip"));
    var list = document.getElementById(btn.getAttribute("data-chip-list"));
    var text = (input.value || "").trim();
    if (!text || !list) return;
    var label = document.createElement("label");
    label.className = "chip";
    var box = document.createElement("input");
    box.type = "checkbox"; box.name = input.getAttribute("data-chip-name"); box.value = text; box.checked = true;
    var face = document.createElement("span");
    face.className = "chip-face";
    var span = document.createElement("span");
    span.textContent = text;
    face.appendChild(span);
    label.appendChild(box); label.appendChild(face);
    list.appendChild(label);
    input.value = "";
    input.focus();
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var input = ev.target.closest("[data-chip-name]");
    if (!input) return;
    ev.preventDefault();
    var btn = document.querySelector('[data-add-chip="' + input.id + '"]');
    if (btn) btn.click();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(dismissLater);
    var dlg = document.querySelector("dialog[data-open-on-load]");
    if (dlg && dlg.showModal) { dlg.removeAttribute("open"); dlg.showModal(); }
    var alert = document.getElementById("form-alert");
    if (alert) {
      var first = document.querySelector('[aria-invalid="true"]');
      (first || alert).focus();
    }
  });

  // HTMX: errors become a toast instead of a silent failure; a success may carry a toast too.
  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var h = doc.querySelector("h1");
      text = h ? h.textContent.trim() : "";
    } catch (e) { /* keep the generic message */ }
    toast(text || document.body.getAttribute("data-error-text"), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast(document.body.getAttribute("data-error-text"), "error");
  });
  document.addEventListener("htmx:afterRequest", function (ev) {
    var xhr = ev.detail.xhr;
    var msg = xhr && xhr.getResponseHeader("X-Toast");
    if (msg && ev.detail.successful) toast(decodeURIComponent(msg), "success");
  });
  // a form that destroys something asks first (data-confirm="question")
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) ev.preventDefault();
  });
})();
