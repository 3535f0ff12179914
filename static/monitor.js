// Space: the live monitor. Listens on /ws/monitor/ and keeps the page's feed, door states and devices current.
// No build step: plain script, loaded with defer by templates/accesscontrol/monitor/monitor.html.
(function () {
  "use strict";

  const script = document.currentScript;
  const wsPath = (script && script.dataset.wsPath) || "/ws/monitor/";
  const maxRows = parseInt((script && script.dataset.maxRows) || "300", 10);
  const feed = document.getElementById("monitor-feed");
  const empty = document.getElementById("monitor-empty");
  const state = document.getElementById("monitor-connection");
  const pauseButton = document.getElementById("monitor-pause");
  const buffered = document.getElementById("monitor-buffered");
  const kindSelect = document.getElementById("monitor-kind");
  if (!feed || !state) return;

  const alertKinds = new Set(JSON.parse(document.getElementById("monitor-alert-kinds").textContent));
  const kindLabels = new Map(JSON.parse(document.getElementById("monitor-kinds").textContent));
  const reasonSource = document.getElementById("monitor-reasons");
  const reasonLabels = new Map(reasonSource ? JSON.parse(reasonSource.textContent) : []);
  const alarmsPanel = document.getElementById("monitor-alarms");
  // Door states the SDP/1 bridge and the device runtime publish, and how each looks.
  const doorAlerts = new Set(["forced", "left_open"]);
  const doorBusy = new Set(["open", "released"]);
  const doorQuiet = new Set(["closed", "locked"]);
  // Events that come with an alarm raised, cleared or acknowledged: the alarm panel is asked for again.
  const alarmKinds = new Set(["door_forced", "door_left_open", "tamper", "tamper_cleared", "device_offline",
    "power_failure", "power_restored", "secure_channel_failed", "alarm_acknowledged"]);
  let paused = false;
  let held = [];
  let socket = null;
  let attempt = 0;
  let retryTimer = null;

  // --- connection state -------------------------------------------------------------------------
  function showState(text, kind) {
    state.textContent = text;
    state.className = "badge connection" + (kind ? " badge-" + kind : "");
  }

  function connect() {
    clearTimeout(retryTimer);
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    showState(attempt ? "Reconnecting…" : "Connecting…", "warn");
    socket = new WebSocket(scheme + window.location.host + wsPath);
    socket.addEventListener("message", function (message) {
      let data;
      try { data = JSON.parse(message.data); } catch (error) { return; }
      if (data.type === "hello") {
        attempt = 0;
        showState("Live", "ok");
      } else if (data.type === "batch" && Array.isArray(data.items)) {
        data.items.forEach(receive);
      }
    });
    socket.addEventListener("close", function (event) {
      socket = null;
      if (event.code === 4403) {
        // Not (or no longer) allowed: the session may have ended. A reload shows the login page if so.
        showState("Not allowed — reload the page", "danger");
        return;
      }
      attempt += 1;
      // Exponential backoff with jitter, 1 s up to 30 s, so a restarted server is not stampeded.
      const delay = Math.min(30, Math.pow(2, attempt - 1)) * (0.75 + Math.random() * 0.5);
      let left = Math.ceil(delay);
      showState("Disconnected — retrying in " + left + " s", "danger");
      const countdown = setInterval(function () {
        left -= 1;
        if (left > 0) showState("Disconnected — retrying in " + left + " s", "danger");
        else clearInterval(countdown);
      }, 1000);
      retryTimer = setTimeout(function () { clearInterval(countdown); connect(); }, delay * 1000);
    });
  }

  // --- items --------------------------------------------------------------------------------------
  function receive(item) {
    if (item.type === "door_state") {
      showDoor(item);
    } else if (item.type === "audit_event") {
      if (item.kind === "device_online" || item.kind === "device_offline") showDevice(item);
      if (alarmKinds.has(item.kind)) refreshAlarms();
      if (paused) {
        held.push(item);
        if (held.length > maxRows) held.shift();  // only the newest would be shown anyway
        buffered.textContent = held.length + " new while paused";
      } else {
        addEvent(item, true);
      }
    }
  }

  function refreshAlarms() {
    if (alarmsPanel && window.htmx) window.htmx.trigger(alarmsPanel, "refresh");
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text || "—";
    return td;
  }

  function pad(number) { return String(number).padStart(2, "0"); }

  function localTime(iso) {
    const at = new Date(iso);
    if (isNaN(at)) return iso;
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " +
      pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
  }

  function addEvent(item, fresh) {
    const row = document.createElement("tr");
    row.dataset.kind = item.kind;
    const alert = alertKinds.has(item.kind);
    if (alert) row.classList.add("row-alert");
    if (fresh) row.classList.add("new");
    row.appendChild(cell(localTime(item.at), "when"));
    const kindCell = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge" + (alert ? " badge-danger" : item.kind === "access_granted" ? " badge-ok" : "");
    badge.textContent = kindLabels.get(item.kind) || item.kind;
    kindCell.appendChild(badge);
    row.appendChild(kindCell);
    row.appendChild(cell(item.access_point_name || (item.detail && item.detail.device)));
    const who = cell(item.cardholder_name);
    if (item.cardholder_photo) {
      // The face beside the name; an operator who may not see the cardholder gets a 404: no broken image then.
      const photo = document.createElement("img");
      photo.className = "monitor-photo";
      photo.alt = "";
      photo.width = 36;
      photo.height = 36;
      photo.addEventListener("error", function () { photo.remove(); });
      photo.src = item.cardholder_photo;
      who.insertBefore(photo, who.firstChild);
    }
    if (item.key_uid) {
      const uid = document.createElement("small");
      uid.className = "mono";
      uid.textContent = " " + item.key_uid;
      who.appendChild(uid);
    }
    row.appendChild(who);
    row.appendChild(cell(reasonLabels.get(item.reason) || (item.reason || "").replace(/_/g, " ")));
    row.hidden = !matches(item.kind);
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > maxRows) feed.deleteRow(feed.rows.length - 1);
    if (empty) empty.hidden = true;
  }

  function showDoor(item) {
    const row = item.access_point && document.getElementById("access-point-" + item.access_point);
    if (!row) return;
    const badge = row.querySelector(".door-state");
    badge.textContent = (item.state || "unknown").replace(/_/g, " ");
    badge.className = "badge door-state " + (doorAlerts.has(item.state) ? "badge-danger" :
      doorBusy.has(item.state) ? "badge-warn" : doorQuiet.has(item.state) ? "badge-ok" : "");
    // A door that turns forced or left open has raised an alarm: show the alarm panel again at once.
    if (doorAlerts.has(item.state)) refreshAlarms();
  }

  function showDevice(item) {
    const entry = item.device && document.getElementById("device-" + item.device);
    if (!entry) return;
    const badge = entry.querySelector(".device-presence");
    const online = item.kind === "device_online";
    badge.textContent = online ? "online" : "offline";
    badge.className = "badge device-presence " + (online ? "badge-ok" : "badge-danger");
  }

  // --- pause and filter -------------------------------------------------------------------------
  function matches(kind) {
    const wanted = kindSelect ? kindSelect.value : "";
    if (!wanted) return true;
    if (wanted === "alerts") return alertKinds.has(kind);
    return kind === wanted;
  }

  if (kindSelect) {
    kindSelect.addEventListener("change", function () {
      Array.prototype.forEach.call(feed.rows, function (row) { row.hidden = !matches(row.dataset.kind); });
    });
  }

  if (pauseButton) {
    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
      pauseButton.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        held.forEach(function (item) { addEvent(item, true); });
        held = [];
        buffered.textContent = "";
      }
    });
  }

  connect();
})();
