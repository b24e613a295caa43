// The /veil/rights page: calls veil's own endpoints with the visitor's cookie, same origin.
(function () {
  "use strict";
  var base = location.pathname.replace(/\/veil\/rights\/?$/, "");
  var status = document.getElementById("status");
  var data = document.getElementById("data");

  function say(text) { status.textContent = text; }

  function call(method, verb, body, query) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + "/veil/" + verb + (query || ""), init).then(function (r) {
      var type = r.headers.get("Content-Type") || "";
      var parsed = type.indexOf("json") >= 0 ? r.json() : r.text();
      return parsed.then(function (payload) { return { ok: r.ok, payload: payload, response: r }; });
    });
  }

  function report(result, done) {
    var p = result.payload || {};
    if (!result.ok) { say(p.detail || "The request was refused."); return; }
    if (p.linked === false) { say(p.detail); return; }
    say((done || "Done") + (p.request ? " (reference " + p.request + ")" : "") + ".");
  }

  function download(name, text, type) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: type }));
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function on(id, handler) { document.getElementById(id).addEventListener("click", handler); }

  on("access", function () {
    call("GET", "rights/access").then(function (r) {
      report(r, "Here is what we hold");
      if (r.ok && r.payload.data) {
        data.hidden = false;
        data.textContent = JSON.stringify(r.payload.data, null, 2);
      }
    });
  });
  on("export-json", function () {
    call("GET", "rights/export").then(function (r) {
      report(r, "Downloaded");
      if (r.ok && r.payload.data) {
        download("veil-" + r.payload.request + ".json", JSON.stringify(r.payload.data, null, 2), "application/json");
      }
    });
  });
  on("export-csv", function () {
    call("GET", "rights/export", undefined, "?format=csv").then(function (r) {
      if (r.ok && typeof r.payload === "string") {
        say("Downloaded (reference " + r.response.headers.get("X-Veil-Request") + ").");
        download("veil-data.csv", r.payload, "text/csv");
      } else { report(r); }
    });
  });
  on("restrict", function () { call("POST", "rights/restrict", {}).then(function (r) { report(r, "Restricted"); }); });
  on("lift", function () { call("POST", "rights/restrict", { lift: true }).then(function (r) { report(r, "Restriction lifted"); }); });
  on("suspend", function () { call("POST", "rights/suspend", {}).then(function (r) { report(r, "Suspended"); }); });
  on("resume", function () { call("POST", "rights/suspend", { resume: true }).then(function (r) { report(r, "Resumed"); }); });
  on("object", function () { call("POST", "rights/object", { purpose: "connection" }).then(function (r) { report(r, "Objection recorded"); }); });
  on("withdraw", function () {
    call("POST", "consent", { withdraw: "all" }).then(function (r) {
      say(r.ok ? "Every consent is withdrawn." : ((r.payload && r.payload.detail) || "Refused."));
    });
  });
  on("delete", function () {
    if (!window.confirm("Delete everything this site holds about you? This cannot be undone.")) { return; }
    call("POST", "rights/delete", {}).then(function (r) { report(r, "Deleted"); data.hidden = true; });
  });
  on("complaint", function () {
    call("POST", "rights/complaint", {}).then(function (r) {
      report(r, "Your complaint is recorded");
      var a = r.payload && r.payload.authority;
      document.getElementById("authority").textContent = r.ok
        ? "You may also complain to " + (a ? a.name + " (" + a.url + ")" : "the supervisory authority where you live") + "."
        : "";
    });
  });
})();
