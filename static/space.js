// Space: the little script every page shares. Confirmations and the idle log-off.
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

  // Automatic log-off after the configured idle time, also on pages that make no requests (the monitor).
  const body = document.body;
  const idleSeconds = parseInt(body.dataset.idleSeconds || "0", 10);
  const logoutUrl = body.dataset.logoutUrl;
  if (idleSeconds > 0 && logoutUrl) {
    let last = Date.now();
    const touch = function () { last = Date.now(); };
    ["keydown", "mousedown", "mousemove", "wheel", "touchstart"].forEach(function (name) {
      document.addEventListener(name, touch, { passive: true });
    });
    const token = document.querySelector('meta[name="csrf-token"]');
    setInterval(function () {
      if (Date.now() - last < idleSeconds * 1000) return;
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
