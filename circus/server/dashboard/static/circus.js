// Circus dashboard: the few live parts. Every page works without this file; it only
// adds live updates (server-sent events), the growing build log and confirmations.
"use strict";

(function () {
  function statusClass(name) {
    if (name === "succeeded") return "ok";
    if (name === "queued" || name === "running") return name;
    if (name === "cancelled" || name === "aborted" || name === "unsupported") return "muted";
    return "bad";
  }

  // Re-read this page and swap in its live regions (elements with data-live and an id).
  var refreshing = false, again = false;
  function refreshLive() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            el.innerHTML = fresh.innerHTML;
            bindConfirms(el);
          }
        });
      })
      .catch(function () {})
      .finally(function () {
        refreshing = false;
        if (again) { again = false; setTimeout(refreshLive, 300); }
      });
  }

  function bindConfirms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
  }

  function watchEvents(filter) {
    if (!window.EventSource) return;
    var source = new EventSource("/dashboard/events");
    var timer = null;
    source.addEventListener("change", function (ev) {
      var data = {};
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (filter && !filter(data)) return;
      clearTimeout(timer);
      timer = setTimeout(refreshLive, 200);
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  function setStatus(status) {
    var holder = document.getElementById("build-status");
    if (!holder) return;
    holder.innerHTML = "";
    var span = document.createElement("span");
    span.className = "status status-" + statusClass(status);
    span.textContent = status;
    holder.appendChild(span);
  }

  function followLog(pre) {
    var id = pre.dataset.build;
    var live = document.getElementById("log-live");
    var empty = document.getElementById("log-empty");
    var url = "/dashboard/build/" + id + "/log/live?offset=" + encodeURIComponent(pre.dataset.offset);
    var source = new EventSource(url);
    if (live) live.hidden = false;
    source.addEventListener("log", function (ev) {
      var nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      if (empty) { empty.remove(); empty = null; }
      pre.insertAdjacentHTML("beforeend", JSON.parse(ev.data).html);
      if (nearBottom) window.scrollTo(0, document.body.scrollHeight);
    });
    source.addEventListener("state", function (ev) {
      var data = JSON.parse(ev.data);
      if (data.state !== pre.dataset.state) {
        pre.dataset.state = data.state;
        setStatus(data.status);
        refreshLive();
      }
    });
    source.addEventListener("done", function (ev) {
      var data = JSON.parse(ev.data);
      source.close();
      pre.dataset.state = "finished";
      if (live) live.hidden = true;
      setStatus(data.status);
      var head = document.getElementById("build-head");
      if (head) head.dataset.state = "finished";
      refreshLive();
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  function loadMore(link, pre) {
    link.addEventListener("click", function (ev) {
      ev.preventDefault();
      var url = "/dashboard/build/" + pre.dataset.build + "/log?end=" + link.dataset.end +
        "&lines=" + link.dataset.lines;
      // The server sends at most its page of bytes before `end`; offsets are bytes.
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("log: " + r.status); return r.json(); })
        .then(function (data) {
          pre.insertAdjacentHTML("afterbegin", data.html);
          link.dataset.end = String(data.start);
          if (data.start === 0) {
            link.parentNode.remove();
            var info = document.getElementById("log-info");
            if (info) info.textContent = "whole log";
          }
        })
        .catch(function () { link.textContent = "Could not load earlier lines: try again"; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindConfirms(document);
    var pre = document.getElementById("log");
    if (pre) {
      var more = document.getElementById("load-more");
      if (more) loadMore(more, pre);
      if (pre.dataset.state !== "finished") followLog(pre);
    } else if (document.body.dataset.livePage) {
      watchEvents(null);
    }
  });
})();
