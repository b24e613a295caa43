/*
 * veil.js: one privacy-preserving beacon per page view.
 *
 * Readable source of sdk/veil/static/veil.js (build: cd js && npm ci && npm run build).
 * Embed as <script src="/veil/veil.js" defer></script>; optional attributes
 * data-endpoint (default: e, beside the script: /veil/e) and data-consent-endpoint (default:
 * consent, beside the script: /veil/consent).
 *
 * Sends {screen_w, screen_h, pixel_ratio, language}, plus path only while the visitor
 * has consented to the purpose "browsing_history". Sets no cookie and writes no storage
 * until veil.consent() is called; veil.optOut() withdraws. veil.record(purpose, fields)
 * sends app-declared fields to /veil/record, next to the beacon endpoint.
 */
(() => {
  // Every entry point runs through this: the snippet must never throw into the page.
  const safe = (f) => (...a) => {
    try {
      f(...a);
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

    const gpc = n.globalPrivacyControl === true || n.doNotTrack === "1" || w.doNotTrack === "1";
    // localStorage itself throws in sandboxed iframes and with storage blocked.
    const storage = safe((f) => f(localStorage));

    let purposes = [];
    storage((s) => {
      const saved = JSON.parse(s.getItem(KEY));
      // GPC/DNT switched on after a consent supersedes it (it is the later signal); a
      // consent given while GPC/DNT was already on is an explicit override and stands.
      if (Array.isArray(saved.p) && (saved.gpc || !gpc)) purposes = saved.p;
    });

    const post = (url, data) => {
      // text/plain keeps a cross-origin POST a "simple" request: no CORS preflight.
      const body = JSON.stringify(data);
      // sendBeacon survives page unload; it is missing in some webviews and returns
      // false when the browser's beacon queue is full.
      if (!(n.sendBeacon && n.sendBeacon(url, body))) {
        fetch(url, {
          method: "POST",
          body,
          keepalive: true,
          credentials: "same-origin",
          headers: { "Content-Type": "text/plain" },
        }).catch(() => {});
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
      if (purposes.includes("browsing_history")) beacon.path = path;
      post(beaconUrl, beacon);
    });

    w.veil = {
      consent: safe((p) => {
        purposes = [].concat(p);
        storage((s) => s.setItem(KEY, JSON.stringify({ p: purposes, gpc })));
        post(consentUrl, { grant: purposes });
      }),
      optOut: safe(() => {
        purposes = [];
        storage((s) => s.removeItem(KEY));
        post(consentUrl, { withdraw: "all" });
      }),
      // App-declared fields (the policy's [policy.fields]); the server checks every one.
      record: safe((purpose, fields) => post(new URL("record", beaconUrl), { purpose, fields })),
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
