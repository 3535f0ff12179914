// Space: the little script every page shares. Confirmations, the idle log-off and its keep-alive.
(function () {
  "use strict";

  // Confirmation before a consequential action: <form data-confirm="Open the door Lobby?"> or a button with it.
  const dialog = document.getElementById("confirm-dialog");
  document.addEventListener("submit", function (event) {
    const form = event.target;
    const message = (event.submitter && event.submitter.dataset.confirm) || form.dataset.confirm;
    if (!message || form.dataset.confirmed === "yes" || !dialog) return;
    event.preventDefault();
    document.getElementById("confirm-text").textContent = message;
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue !== "confirm") return;
      form.dataset.confirmed = "yes";
      if (event.submitter && event.submitter.name) {
        const carry = document.createElement("input");
        carry.type = "hidden";
        carry.name = event.submitter.name;
        carry.value = event.submitter.value;
        form.appendChild(carry);
      }
      form.requestSubmit();
      delete form.dataset.confirmed;
    });
  });

  // A print button (backup codes).
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) window.print();
  });

  // Automatic log-off after the configured idle time, also on pages that make no requests (the monitor).
  const body = document.body;
  const idleSeconds = parseInt(body.dataset.idleSeconds || "0", 10);
  const logoutUrl = body.dataset.logoutUrl;
  if (idleSeconds > 0 && logoutUrl) {
    const token = document.querySelector('meta[name="csrf-token"]');
    const keepaliveUrl = body.dataset.keepaliveUrl;
    let last = Date.now();
    let renewed = last; // the page's own request renewed the server's session
    const touch = function () {
      last = Date.now();
      // Keep-alive: a page that makes no requests of its own (the live monitor) would otherwise lose its
      // session on the server while its operator works; at most one ping a minute, and only on activity.
      if (!keepaliveUrl || last - renewed < 60000) return;
      renewed = last;
      fetch(keepaliveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.content : "" },
      }).then(function (response) {
        // Logged off elsewhere: reloading leads to the login page, which brings the operator back here.
        if (response.status === 401) window.location.reload();
      }).catch(function () { /* offline for a moment: the next activity tries again */ });
    };
    ["keydown", "mousedown", "mousemove", "wheel", "touchstart"].forEach(function (name) {
      document.addEventListener(name, touch, { passive: true });
    });
    document.addEventListener("htmx:afterRequest", function () { renewed = Date.now(); });
    let leaving = false;
    setInterval(function () {
      if (leaving || Date.now() - last < idleSeconds * 1000) return;
      leaving = true;
      const form = document.createElement("form");
      form.method = "post";
      form.action = logoutUrl;
      form.innerHTML = '<input type="hidden" name="csrfmiddlewaretoken"><input type="hidden" name="reason" value="idle">';
      form.firstChild.value = token ? token.content : "";
      document.body.appendChild(form);
      form.submit();
    }, 1000);
  }
})();
