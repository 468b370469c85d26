// The demo page's script: what a host app writes to use the browser session.
"use strict";
(() => {
  const status = document.getElementById("whoami");
  const signOut = document.getElementById("sign-out");
  const show = async () => {
    const answer = await window.AuthPlatform.fetch("/api/protected");
    const signedIn = answer.ok;
    status.textContent = signedIn ? "Signed in as user " + (await answer.json()).user_id + "." : "Not signed in.";
    document.body.dataset.state = signedIn ? "signed-in" : "signed-out";
    signOut.hidden = !signedIn;
  };
  document.getElementById("check").addEventListener("click", show);
  signOut.addEventListener("click", async () => {
    await window.AuthPlatform.fetch("/api/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    show();
  });
  show();
})();
