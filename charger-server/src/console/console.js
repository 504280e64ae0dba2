// MyBox console: the live part of a page (#live) is fetched again every few seconds and
// swapped in place, without a reload. Nothing else runs here.
(function () {
  "use strict";
  // Destructive actions ask first: a button or form with data-confirm.
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    var text = (b && b.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
    if (text && !window.confirm(text)) e.preventDefault();
  });
  if (document.body.dataset.live !== "on") return;
  var busy = false;
  setInterval(function () {
    var live = document.getElementById("live");
    if (!live || busy || document.hidden) return;
    // Do not swap under a focused control of the live part.
    if (live.contains(document.activeElement) && document.activeElement !== document.body) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (next) live.innerHTML = next.innerHTML;
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }, 2000);
})();
