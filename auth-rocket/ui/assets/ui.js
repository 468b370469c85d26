// The hosted pages' one script (served with the page's CSP nonce). The pages'
// forms work without it; it adds passkeys (WebAuthn needs script), a silent
// refresh on the sign-in page, and `AuthPlatform.fetch` for a host's own pages.
"use strict";
(() => {
  const api = document.body.dataset.api;

  const cookie = (name) => {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  };

  // A same-origin request with the browser session: the CSRF header on unsafe
  // methods, and after a 401 one refresh (the refresh cookie) and one retry.
  const send = (url, init = {}) => {
    const headers = new Headers(init.headers || {});
    const method = (init.method || "GET").toUpperCase();
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers.set("X-CSRF-Token", cookie("__Host-csrf"));
    return fetch(url, { ...init, headers, credentials: "same-origin" });
  };
  const refresh = () => send(api + "/refresh", json({ session: "cookie" })).then((r) => r.ok);
  const authFetch = async (url, init = {}) => {
    const first = await send(url, init);
    if (first.status !== 401 || !(await refresh())) return first;
    return send(url, init);
  };
  const json = (body) => ({
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const post = async (path, body) => {
    const answer = await send(api + path, json(body));
    const text = await answer.text();
    const parsed = text ? JSON.parse(text) : {};
    if (!answer.ok) throw new Error((parsed.error && parsed.error.message) || "The request failed.");
    return parsed;
  };
  const show = (error) => {
    const box = document.getElementById("script-error");
    box.textContent = error.name === "NotAllowedError" ? "The passkey prompt was closed." : error.message;
    box.hidden = false;
  };
  const go = (next) => window.location.assign(next || document.body.dataset.ui + "/account");

  const getPasskey = async (options) => {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
    return (await navigator.credentials.get({ publicKey })).toJSON();
  };
  const webauthn = typeof PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  const reveal = (id, onClick) => {
    const element = document.getElementById(id);
    if (!element || !webauthn) return element;
    element.hidden = false;
    element.addEventListener(element.tagName === "FORM" ? "submit" : "click", (event) => {
      event.preventDefault();
      onClick(element).catch(show);
    });
    return element;
  };

  reveal("passkey-sign-in", async (button) => {
    const challenge = await post("/webauthn/login/start", {});
    const credential = await getPasskey(challenge);
    await post("/webauthn/login/finish", { challenge_id: challenge.challenge_id, credential, session: "cookie" });
    go(button.dataset.next);
  });

  reveal("passkey-second-factor", async (button) => {
    const mfa_token = button.dataset.mfaToken;
    const credential = await getPasskey(await post("/login/mfa/webauthn/start", { mfa_token }));
    await post("/login/mfa", { mfa_token, credential, session: "cookie" });
    go(button.dataset.next);
  });

  reveal("add-passkey", async (form) => {
    const options = await post("/webauthn/register/start", {});
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
    const credential = (await navigator.credentials.create({ publicKey })).toJSON();
    await post("/webauthn/register/finish", { credential, name: form.elements.name.value });
    window.location.reload();
  });

  // A form that acts for the signed-in user, sent after the access cookie
  // expired, would find no session: refresh first, and send the rotated token.
  document.querySelectorAll("form[data-needs-session]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await refresh().catch(() => false);
      form.elements.csrf.value = cookie("__Host-csrf");
      HTMLFormElement.prototype.submit.call(form);
    });
  });

  // A browser whose access cookie expired may still hold a session: try the
  // refresh cookie once before asking for the password.
  const login = document.getElementById("login");
  if (login && "resume" in login.dataset && cookie("__Host-csrf")) {
    refresh().then((ok) => ok && go(login.dataset.next), () => {});
  }

  window.AuthPlatform = { fetch: authFetch, refresh };
})();
