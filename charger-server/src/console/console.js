// MyBox console. Three things, nothing else:
// - destructive actions ask first (a button or form with data-confirm);
// - times are shown in the reader's time zone (UTC on hover, and without script);
// - the live part of a page (#live) is fetched again every 5 s, alone (?fragment=live),
//   with its ETag (the page carries the first): when nothing changed the server answers
//   304 and nothing is swapped.
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    var text = (b && b.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
    if (text && !window.confirm(text)) e.preventDefault();
  });

  var pad = function (n) { return (n < 10 ? "0" : "") + n; };
  function localTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      t.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
        " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      t.classList.add("local");
    }
  }
  localTimes(document);

  if (document.body.dataset.live !== "on") return;
  var first = document.getElementById("live");
  var etag = first ? first.getAttribute("data-etag") : null;
  var busy = false;
  var url = new URL(location.href);
  url.searchParams.set("fragment", "live");
  setInterval(function () {
    var live = document.getElementById("live");
    if (!live || busy || document.hidden) return;
    // Do not swap under a focused control of the live part.
    if (live.contains(document.activeElement) && document.activeElement !== document.body) return;
    busy = true;
    var headers = { "Accept": "text/html" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(url.toString(), { credentials: "same-origin", headers: headers, cache: "no-cache" })
      .then(function (r) {
        if (r.status === 304 || !r.ok) return null;
        etag = r.headers.get("ETag");
        return r.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var next = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html").getElementById("live");
        if (next) { live.innerHTML = next.innerHTML; localTimes(live); }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }, 5000);
})();
