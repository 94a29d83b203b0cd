// A recruiter's live view of one session (realtime/live.py): the candidate's words as
// they are recognised (interim), every finished turn of both speakers, status and
// progress. The socket's first message is a snapshot; on every reconnect the view is
// rebuilt from a fresh one, so nothing said while it was away is missing. Turns are kept
// by sequence: one that arrives in both the snapshot and an event is shown once.
(function () {
  "use strict";
  var root, list, interim, connection, statusEl, progressEl;
  var turns = {};  // sequence -> element
  var questionCount = 0;
  var spoken = [];  // the sentences of the reply the interviewer is speaking now
  var socket = null, retryMs = 1000, MAX_RETRY_MS = 10000, MAX_TURNS = 2000;

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function setStatus(status) {
    if (!status || !statusEl) return;
    statusEl.textContent = status;
    statusEl.className = "status-" + status;
    root.dataset.status = status;
  }

  function setProgress(index, count) {
    if (typeof count === "number") questionCount = count;
    if (!progressEl || typeof index !== "number" || !questionCount) return;
    progressEl.textContent = index >= questionCount ? "all " + questionCount + " answered"
      : "question " + (index + 1) + " of " + questionCount;
  }

  function addTurn(turn) {
    if (typeof turn.sequence !== "number" || turns[turn.sequence]) return;
    var item = document.createElement("li");
    item.className = "live-turn live-turn-" + turn.speaker + (turn.interrupted ? " live-turn-interrupted" : "");
    item.dataset.sequence = String(turn.sequence);
    var who = document.createElement("strong");
    who.textContent = (turn.speaker === "interviewer" ? "Interviewer" : "Candidate") + (turn.interrupted ? " (interrupted)" : "") + ": ";
    var text = document.createElement("span");
    text.className = "live-turn-text";
    text.textContent = turn.text;
    item.appendChild(who);
    item.appendChild(text);
    // Keep them in order even if an event overtakes another.
    var next = null;
    Object.keys(turns).forEach(function (key) {
      var seq = Number(key);
      if (seq > turn.sequence && (next === null || seq < Number(next.dataset.sequence))) next = turns[key];
    });
    list.insertBefore(item, next);
    turns[turn.sequence] = item;
    var keys = Object.keys(turns);
    if (keys.length > MAX_TURNS) {  // bounded: the table below the view has them all
      var oldest = Math.min.apply(null, keys.map(Number));
      list.removeChild(turns[oldest]);
      delete turns[oldest];
    }
    if (turn.speaker === "candidate" || interim.dataset.speaker === turn.speaker) {
      interim.textContent = "";
      interim.dataset.speaker = "";
    }
  }

  function lastSequence() {
    var keys = Object.keys(turns).map(Number);
    return keys.length ? Math.max.apply(null, keys) : 0;
  }

  function onEvent(event) {
    switch (event.event) {
      case "snapshot":
        list.textContent = "";
        turns = {};
        interim.textContent = "";
        (event.turns || []).forEach(addTurn);
        setStatus(event.status);
        setProgress(event.questionIndex, event.questionCount);
        root.dataset.synced = String(Date.now());
        break;
      case "turn":
        // A gap in the sequence means events were lost (channels-redis drops group messages
        // to a full channel without a word): start again from a fresh snapshot.
        if (event.sequence > lastSequence() + 1 && socket) { socket.close(4000, "resync"); return; }
        addTurn(event);
        break;
      case "interviewer-speaking":
        // Sentence by sentence as the candidate hears them; the stored turn replaces them.
        if (interim.dataset.response !== event.responseId) spoken = [];
        interim.dataset.response = event.responseId;
        interim.dataset.speaker = "interviewer";
        spoken.push(event.text);
        interim.textContent = "Interviewer (speaking): " + spoken.join(" ");
        break;
      case "live-transcript":
        interim.dataset.speaker = "candidate";
        interim.textContent = event.transcript ? "Candidate (speaking): " + event.transcript : "";
        root.dataset.interims = String(Number(root.dataset.interims || 0) + 1);  // seen, for tests
        break;
      case "status": setStatus(event.status); setProgress(event.questionIndex, event.questionCount); break;
      case "question": setProgress(event.questionIndex); break;
      default: break;
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    setConnection("connecting", "connecting…");
    socket = new WebSocket(scheme + location.host + root.dataset.socketPath);
    socket.onopen = function () { retryMs = 1000; setConnection("open", "live"); };
    socket.onmessage = function (message) {
      try { onEvent(JSON.parse(message.data)); } catch (error) { /* one bad frame is skipped */ }
    };
    socket.onclose = function (close) {
      socket = null;
      if (close.code === 4003 || close.code === 4004) {  // not allowed / gone: retrying will not help
        setConnection("refused", close.code === 4003 ? "not allowed" : "no such session");
        return;
      }
      setConnection("reconnecting", "reconnecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    };
  }

  function start() {
    root = document.getElementById("live-view");
    if (!root) return;
    list = document.getElementById("live-turns");
    interim = document.getElementById("live-interim");
    connection = document.getElementById("live-connection");
    statusEl = document.getElementById("session-status");
    progressEl = document.getElementById("session-progress");
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
