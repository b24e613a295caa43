/*
 * veil.js: one privacy-preserving beacon per page view.
 *
 * Readable source of sdk/veil/static/veil.js (build: cd js && npm ci && npm run build).
 * Embed as <script src="/veil/veil.js" defer></script>; optional attributes, each by
 * default beside the script: data-endpoint (e: /veil/e), data-consent-endpoint (consent:
 * /veil/consent) and data-record-endpoint (record: /veil/record).
 *
 * Sends {screen_w, screen_h, pixel_ratio, language}, plus path only while the server says
 * a purpose that collects the path collects for this visitor. The snippet learns that from
 * the consent endpoint's answer to veil.consent(), so a visitor who never consented causes
 * no request, no cookie and no storage. veil.consent(purposes) returns a promise that
 * settles once the server answered; veil.optOut() withdraws everything, at once locally.
 * veil.record(purpose, fields) sends app-declared fields to the record endpoint.
 */
(() => {
  // Every entry point runs through this: the snippet must never throw into the page.
  const safe = (f) => (...a) => {
    try {
      return f(...a);
    } catch (e) {}
  };

  safe(() => {
    const w = window;
    const n = navigator;
    // A page that includes the snippet twice must not wrap pushState twice or count twice.
    if (w.veil) return;

    const KEY = "veil_consent";
    const script = document.currentScript;
    const src = script && script.src;
    // Resolved against the script's own URL, so a snippet loaded from a collector on
    // another origin reports to that collector rather than to the page's origin. The
    // defaults sit beside the script, as veil serves them: an app mounted at /app (ASGI
    // root_path) serves /app/veil/veil.js and takes beacons at /app/veil/e.
    const endpoint = (attr, name) =>
      new URL((script && script.getAttribute(attr)) || (src ? name : "/veil/" + name),
        src || location.href).href;
    const beaconUrl = endpoint("data-endpoint", "e");
    const consentUrl = endpoint("data-consent-endpoint", "consent");
    const recordUrl = endpoint("data-record-endpoint", "record");

    const gpc = n.globalPrivacyControl === true || n.doNotTrack === "1" || w.doNotTrack === "1";
    // localStorage itself throws in sandboxed iframes and with storage blocked.
    const storage = safe((f) => f(localStorage));

    // The purposes that collect the page's path for this visitor, as the server last said.
    // Stored only while there is one: no consent, no storage.
    let purposes = [];
    const save = () =>
      storage((s) =>
        purposes[0] ? s.setItem(KEY, JSON.stringify({ p: purposes, gpc })) : s.removeItem(KEY));
    storage((s) => {
      // getItem is null on a first visit, and JSON.parse(null) is null: nothing saved.
      const saved = JSON.parse(s.getItem(KEY)) || {};
      // GPC/DNT switched on after a consent supersedes it (it is the later signal); a
      // consent given while GPC/DNT was already on is an explicit override and stands.
      if (Array.isArray(saved.p) && (saved.gpc || !gpc)) purposes = saved.p;
    });

    // With `read`, the answer is wanted: fetch, and `read` gets the response.
    const post = (url, data, read) => {
      // text/plain keeps a cross-origin POST a "simple" request: no CORS preflight.
      const body = JSON.stringify(data);
      // sendBeacon survives page unload; it is missing in some webviews and returns
      // false when the browser's beacon queue is full.
      if (read || !(n.sendBeacon && n.sendBeacon(url, body))) {
        return fetch(url, {
          method: "POST",
          body,
          keepalive: true, // credentials: fetch's default, same-origin
          headers: { "Content-Type": "text/plain" },
        })
          .then(read)
          .catch(() => {});
      }
    };

    let last;
    const view = safe(() => {
      const path = location.pathname;
      if (path === last) return;
      last = path;
      const beacon = {
        screen_w: screen.width,
        screen_h: screen.height,
        pixel_ratio: devicePixelRatio,
        language: n.language,
      };
      if (purposes[0]) beacon.path = path;
      post(beaconUrl, beacon);
    });

    w.veil = {
      // The server's answer is the visitor's whole state, every grant so far included: the
      // local list becomes what it says, never just the purposes of this call. A refused or
      // failed grant changes nothing here, as it changed nothing there.
      consent: safe((p) =>
        post(consentUrl, { grant: [].concat(p) }, (r) =>
          r.ok &&
          r.json().then(({ purposes: all }) => {
            purposes = Object.keys(all).filter(
              (k) => all[k].collected && all[k].fields.includes("path"));
            save();
          }))),
      // A withdrawal takes effect here at once, whether or not the server is reachable.
      optOut: safe(() => {
        purposes = [];
        save();
        post(consentUrl, { withdraw: "all" });
      }),
      // App-declared fields (the policy's [policy.fields]); the server checks every one.
      record: safe((purpose, fields) => post(recordUrl, { purpose, fields })),
    };

    // SPA navigation. An error thrown by the original pushState is the page's own and
    // propagates unchanged; view() itself cannot throw.
    const push = history.pushState;
    history.pushState = function (...a) {
      const r = push.apply(this, a);
      view();
      return r;
    };
    addEventListener("popstate", view);
    view();
  })();
})();
