// The candidate's interview page: connects the microphone, the speaker and the
// conversation window to the interview socket (see docs/protocol.md).

import { AccessToken } from "./access-token.js";
import { BargeInDetector } from "./barge-in.js";
import { InterviewConnection } from "./connection.js";
import { Microphone, int16ToBase64 } from "./microphone.js";
import { SpeechPlayer } from "./player.js";

const MAX_SOCKET_BACKLOG_BYTES = 64 * 1024; // beyond this the network is behind: drop mic audio

const FINAL_MESSAGES = {
  1000: ["Interview ended", "The interview has ended."],
  4001: ["This link has expired", "Your access link is no longer valid. Please open the interview again from your invitation."],
  4003: ["This interview is not yours", "This interview belongs to a different account. Check that you are signed in as the right person."],
  4004: ["Interview not found", "We could not find this interview. Please check the link in your invitation."],
  4005: ["Interview already finished", "This interview has already been completed, so there is nothing left to resume."],
  4409: ["Opened in another window", "This interview is now open in another window or tab, so it was closed here."],
};

const STATUS_TEXT = {
  idle: "Not started",
  connecting: "Connecting…",
  live: "Live",
  paused: "Paused",
  reconnecting: "Reconnecting…",
  ended: "Ended",
  failed: "Disconnected",
};

const TOKEN_EXPIRED_MESSAGE = [
  "Your sign-in expired",
  "Your access to this interview ran out and could not be renewed. Your answers so far are saved: open the interview again from your invitation to continue.",
];

// --- the page -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const root = $("app");
const sessionId = root.dataset.sessionId;

// The access token (from the link's fragment, then out of the address bar) and its renewal
// before it expires (access-token.js): each renewed token goes to the server on the open
// socket and is used for any later reconnect.
const accessToken = new AccessToken({
  sessionId,
  authUrl: root.dataset.authUrl || "",
  apiKey: root.dataset.authKey || "",
  onRenewed: (renewed) => {
    hooks.tokenRenewals++;
    if (connection && connection.updateToken(renewed)) hooks.tokenRefreshesSent++;
  },
  onRetrying: ({ secondsLeft }) => {
    hooks.tokenRenewalFailures++;
    if (secondsLeft < 120) toast("Renewing your sign-in is taking a moment; still trying.", { tone: "error" });
  },
  onGaveUp: ({ refused }) => {
    hooks.tokenRenewalFailures++;
    if (refused && state.phase !== "ended" && state.phase !== "failed") {
      toast("Your sign-in could not be renewed. The interview goes on until it runs out.", { tone: "error", ms: 9000 });
    }
  },
});
const token = accessToken.load();

const ui = {
  status: $("status"),
  statusText: $("status-text"),
  progress: $("progress"),
  progressLabel: $("progress-label"),
  progressFill: $("progress-fill"),
  join: $("join-screen"),
  joinNote: $("join-note"),
  start: $("start-button"),
  session: $("session"),
  avatar: $("avatar"),
  activity: $("speaker-activity"),
  caption: $("caption"),
  thinking: $("thinking"),
  mic: $("mic"),
  micLevel: $("mic-level"),
  micStatus: $("mic-status"),
  interrupt: $("interrupt-button"),
  mute: $("mute-button"),
  pause: $("pause-button"),
  end: $("end-button"),
  turnsScroll: $("turns-scroll"),
  turns: $("turns"),
  interim: $("interim"),
  interimText: $("interim-text"),
  emptyNote: $("empty-note"),
  composer: $("composer"),
  input: $("answer-input"),
  send: $("send-button"),
  endScreen: $("end-screen"),
  endMark: $("end-mark"),
  endTitle: $("end-title"),
  endReason: $("end-reason"),
  endDetail: $("end-detail"),
  retry: $("retry-button"),
  toast: $("toast"),
  endDialog: $("end-dialog"),
};

const state = {
  phase: "idle", // idle | connecting | live | paused | reconnecting | ended | failed
  sessionStatus: "live", // as the server last said: live | paused
  questionIndex: 0,
  questionCount: 0,
  muted: false,
  micState: "off", // off | on | unavailable
  currentResponseId: null, // the interviewer response in flight
  thinkingResponseId: null,
  turns: [], // {id, speaker, text, interrupted, source, speaking}
  interim: "",
};

const hooks = {
  stateHistory: [],
  messageCounts: {},
  interimShown: 0,
  interruptsSent: 0,
  bargeIns: 0,
  micChunksSent: 0,
  micChunksDropped: 0,
  authSuccesses: 0,
  lastAuth: null,
  endReason: null,
  finalCloseCode: null,
  errors: [],
  interruptedResponses: [],
  tokenRenewals: 0,
  tokenRefreshesSent: 0,
  tokenRenewalFailures: 0,
  tokenExpiresAt: null,
};

let context = null;
let player = null;
let microphone = null;
let connection = null;
const detector = new BargeInDetector();

// --- rendering ------------------------------------------------------------------------

function setPhase(phase) {
  if (state.phase === phase) return;
  state.phase = phase;
  hooks.stateHistory.push(phase);
  root.dataset.state = phase;
  ui.status.dataset.state = phase;
  ui.statusText.textContent = STATUS_TEXT[phase] || phase;
  renderSpeaking();
}

function renderProgress() {
  const { questionIndex, questionCount } = state;
  if (!questionCount) {
    ui.progress.hidden = true;
    return;
  }
  ui.progress.hidden = false;
  const done = questionIndex >= questionCount;
  ui.progressLabel.textContent = done ? "All questions answered" : `Question ${questionIndex + 1} of ${questionCount}`;
  const share = Math.min(questionIndex + (done ? 0 : 0.5), questionCount) / questionCount;
  ui.progressFill.style.transform = `scaleX(${share})`;
}

function renderControls() {
  const open = connection !== null && connection.authenticated;
  const live = open && state.phase === "live";
  const paused = open && state.phase === "paused";
  const speaking = Boolean(player && player.speaking) || state.currentResponseId !== null;
  ui.interrupt.disabled = !(live && speaking);
  ui.pause.disabled = !(live || paused);
  ui.pause.textContent = paused ? "Resume" : "Pause";
  ui.pause.classList.toggle("btn-primary", paused);
  ui.end.disabled = !(live || paused);
  ui.mute.disabled = state.micState !== "on" || !(live || paused || state.phase === "reconnecting");
  ui.mute.setAttribute("aria-pressed", String(state.muted));
  ui.mute.textContent = state.muted ? "Unmute mic" : "Mute mic";
  ui.input.disabled = !live;
  ui.send.disabled = !live;
  ui.input.placeholder = paused ? "Resume the interview to answer" : "Or simply speak your answer";
  renderMic();
}

function renderMic() {
  let text;
  let mode = "off";
  if (state.micState === "unavailable") {
    text = "Microphone unavailable: type your answers";
  } else if (state.micState === "off") {
    text = "Microphone off";
  } else if (state.muted) {
    text = "Microphone muted";
    mode = "muted";
  } else if (state.phase === "paused") {
    text = "Paused: not listening";
    mode = "muted";
  } else if (state.phase === "live") {
    text = "Listening";
    mode = "on";
  } else {
    text = "Waiting for the connection";
    mode = "muted";
  }
  ui.mic.dataset.state = mode;
  ui.micStatus.textContent = text;
}

function renderSpeaking() {
  const speaking = Boolean(player && player.speaking);
  ui.avatar.dataset.speaking = String(speaking);
  let activity = "waiting";
  if (speaking) activity = "speaking";
  else if (state.thinkingResponseId) activity = "thinking";
  else if (state.phase === "live") activity = "listening";
  else if (state.phase === "paused") activity = "paused";
  ui.activity.textContent = activity;
  ui.thinking.hidden = !state.thinkingResponseId;
  renderControls();
}

function nearBottom() {
  const el = ui.turnsScroll;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

function scrollToEnd(force = false) {
  if (force || nearBottom()) ui.turnsScroll.scrollTop = ui.turnsScroll.scrollHeight;
}

function turnElement(turn) {
  let li = ui.turns.querySelector(`li[data-turn-id="${CSS.escape(turn.id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.className = `turn turn--${turn.speaker}`;
    li.dataset.turnId = turn.id;
    li.dataset.speaker = turn.speaker;
    const who = document.createElement("span");
    who.className = "turn-speaker";
    who.textContent = turn.speaker === "candidate" ? "You" : "Interviewer";
    const tag = document.createElement("span");
    tag.className = "turn-tag";
    who.append(" ", tag);
    const text = document.createElement("p");
    text.className = "turn-text";
    li.append(who, text);
    ui.turns.append(li);
  }
  return li;
}

function renderTurn(turn) {
  const stick = nearBottom();
  const li = turnElement(turn);
  li.querySelector(".turn-text").textContent = turn.text;
  li.classList.toggle("turn--typing", !turn.text && turn.speaking);
  li.classList.toggle("turn--interrupted", Boolean(turn.interrupted));
  if (turn.source) li.dataset.source = turn.source;
  const tag = li.querySelector(".turn-tag");
  tag.textContent = turn.interrupted ? "interrupted" : turn.source === "text" ? "typed" : "";
  ui.emptyNote.hidden = state.turns.length > 0 || Boolean(state.interim);
  if (stick) scrollToEnd(true);
}

function findTurn(id) {
  return state.turns.find((turn) => turn.id === id) || null;
}

function upsertTurn(fields) {
  let turn = findTurn(fields.id);
  if (!turn) {
    turn = { text: "", interrupted: false, source: null, speaking: false, ...fields };
    state.turns.push(turn);
  } else {
    Object.assign(turn, fields);
  }
  renderTurn(turn);
  return turn;
}

function removeTurn(id) {
  state.turns = state.turns.filter((turn) => turn.id !== id);
  const li = ui.turns.querySelector(`li[data-turn-id="${CSS.escape(id)}"]`);
  if (li) li.remove();
  ui.emptyNote.hidden = state.turns.length > 0 || Boolean(state.interim);
}

function replaceConversation(history) {
  // The server's record is the truth after a (re)connection: what it stored, once each.
  state.turns = [];
  ui.turns.replaceChildren();
  for (const line of history || []) {
    if (!line || !line.text || !line.text.trim()) continue;
    if (findTurn(line.turnId)) continue;
    upsertTurn({
      id: line.turnId,
      speaker: line.speaker === "candidate" ? "candidate" : "interviewer",
      text: line.text,
      interrupted: Boolean(line.interrupted),
    });
  }
  ui.emptyNote.hidden = state.turns.length > 0;
  scrollToEnd(true);
}

function setInterim(text) {
  state.interim = text || "";
  ui.interimText.textContent = state.interim;
  ui.interim.hidden = !state.interim;
  ui.emptyNote.hidden = state.turns.length > 0 || Boolean(state.interim);
  if (state.interim) {
    hooks.interimShown++;
    scrollToEnd();
  }
}

function setCaption(text) {
  ui.caption.textContent = text;
}

let toastTimer = null;
function toast(message, { tone = "info", ms = 5000 } = {}) {
  ui.toast.textContent = message;
  ui.toast.dataset.tone = tone;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, ms);
}

function showEnd(title, reason, { finished = true, detail = null, retry = false } = {}) {
  setPhase(finished ? "ended" : "failed");
  stopAudio();
  root.classList.add("is-over");
  ui.join.hidden = true;
  ui.session.hidden = state.turns.length === 0;
  ui.endScreen.hidden = false;
  ui.endScreen.dataset.tone = finished ? "done" : "problem";
  ui.endMark.textContent = finished ? "✓" : "!";
  ui.endTitle.textContent = title;
  ui.endReason.textContent = reason;
  ui.endDetail.textContent = detail || (finished ? "Thank you. You can close this window now." : "");
  ui.endDetail.hidden = !ui.endDetail.textContent;
  ui.retry.hidden = !retry;
  setCaption("");
  setInterim("");
  state.thinkingResponseId = null;
  ui.thinking.hidden = true;
  ui.endScreen.focus();
}

// --- audio ----------------------------------------------------------------------------

function canSendAudio() {
  return Boolean(connection && connection.authenticated) && state.phase === "live" && !state.muted;
}

function onMicChunk(pcm, level) {
  const width = Math.max(0, Math.min(1, (level + 60) / 50));
  ui.micLevel.style.transform = `scaleX(${state.muted || state.phase !== "live" ? 0 : width})`;
  if (!canSendAudio()) return;
  const interviewerAudible = Boolean(player && player.speaking);
  if (detector.update(level, interviewerAudible, performance.now())) {
    hooks.bargeIns++;
    interrupt("barge-in");
  }
  if (connection.buffered > MAX_SOCKET_BACKLOG_BYTES) {
    hooks.micChunksDropped++;
    return;
  }
  if (connection.send("client-audio-chunk", { data: int16ToBase64(pcm) })) hooks.micChunksSent++;
}

function stopAudio() {
  if (player) player.flush(state.currentResponseId);
  if (microphone) microphone.stop();
  if (state.micState === "on") state.micState = "off";
  ui.micLevel.style.transform = "scaleX(0)";
}

/** Stop the interviewer now (button, barge-in, or a test) and tell the server. */
function interrupt(origin = "button") {
  const responseId = state.currentResponseId;
  if (player) player.flush(responseId);
  if (responseId) {
    const turn = findTurn(responseId);
    if (turn) upsertTurn({ id: responseId, interrupted: true, speaking: false });
    if (turn && !turn.text) removeTurn(responseId);
    hooks.interruptedResponses.push(responseId);
  }
  state.currentResponseId = null;
  state.thinkingResponseId = null;
  renderSpeaking();
  if (connection && connection.send("client-interrupt")) hooks.interruptsSent++;
  return { origin, responseId };
}

// --- messages from the server ---------------------------------------------------------

const handlers = {
  "server-auth-success"(payload) {
    hooks.authSuccesses++;
    hooks.lastAuth = { resumed: payload.resumed, questionIndex: payload.questionIndex, status: payload.status };
    const output = payload.audio && payload.audio.output;
    if (player && output && output.sampleRate) player.configure({ sampleRate: output.sampleRate });
    const input = payload.audio && payload.audio.input;
    if (microphone && input && input.sampleRate) microphone.configure({ sampleRate: input.sampleRate });
    state.questionIndex = payload.questionIndex ?? 0;
    state.questionCount = payload.questionCount ?? 0;
    replaceConversation(payload.conversation);
    setInterim("");
    renderProgress();
    state.sessionStatus = payload.status === "paused" ? "paused" : "live";
    setPhase(state.sessionStatus);
    hooks.tokenExpiresAt = payload.expiresAt ?? null;
    accessToken.expiresAtIs(payload.expiresAt); // plans the renewal
    if (hooks.authSuccesses > 1) toast("Reconnected. Picking up where you left off.");
    // The start button is gone: give keyboard users somewhere useful to be.
    const focused = document.activeElement;
    if (!focused || focused === document.body || focused === ui.start) ui.input.focus({ preventScroll: true });
  },

  "server-auth-failure"(payload) {
    hooks.errors.push(payload.code || "auth_failure");
  },

  "server-token-refreshed"(payload) {
    // The server holds the renewed token: the socket lives until its expiry.
    hooks.tokenExpiresAt = payload.expiresAt ?? null;
    accessToken.expiresAtIs(payload.expiresAt);
  },

  "server-session-state"(payload) {
    state.sessionStatus = payload.status === "paused" ? "paused" : "live";
    if (typeof payload.questionIndex === "number") state.questionIndex = payload.questionIndex;
    if (typeof payload.questionCount === "number") state.questionCount = payload.questionCount;
    renderProgress();
    if (state.phase !== "ended" && state.phase !== "failed") setPhase(state.sessionStatus);
    if (state.sessionStatus === "paused") setInterim("");
    renderSpeaking();
  },

  "server-ai-thinking"(payload) {
    const id = payload.responseId;
    if (!id || (player && player.isStale(id))) return;
    state.currentResponseId = id;
    state.thinkingResponseId = id;
    upsertTurn({ id, speaker: "interviewer", speaking: true });
    renderSpeaking();
  },

  "server-ai-text"(payload) {
    const id = payload.responseId;
    if (!id || (player && player.isStale(id))) return;
    state.currentResponseId = id;
    if (state.thinkingResponseId === id) state.thinkingResponseId = null;
    const turn = findTurn(id);
    const text = turn && turn.text ? `${turn.text} ${payload.text}` : payload.text;
    upsertTurn({ id, speaker: "interviewer", text, speaking: true });
    setCaption(payload.text);
    renderSpeaking();
  },

  "server-ai-speech-chunk"(payload) {
    if (!player) return;
    if (state.thinkingResponseId === payload.responseId) {
      state.thinkingResponseId = null;
      renderSpeaking();
    }
    player.enqueue(payload.responseId, payload.seq, payload.data);
  },

  "server-ai-speech-end"(payload) {
    const turn = findTurn(payload.responseId);
    if (turn) upsertTurn({ id: turn.id, speaking: false });
    if (state.currentResponseId === payload.responseId) state.currentResponseId = null;
    if (state.thinkingResponseId === payload.responseId) state.thinkingResponseId = null;
    renderSpeaking();
  },

  "server-ai-interrupted"(payload) {
    const id = payload.responseId;
    if (player) player.flush(id);
    if (id) {
      const turn = findTurn(id);
      if (turn && payload.wasSpeaking) {
        if (turn.text) upsertTurn({ id, interrupted: true, speaking: false });
        else removeTurn(id);
      }
    }
    if (state.currentResponseId === id) state.currentResponseId = null;
    if (state.thinkingResponseId === id) state.thinkingResponseId = null;
    renderSpeaking();
  },

  "server-live-transcript"(payload) {
    setInterim(payload.transcript);
  },

  "server-final-transcript"(payload) {
    setInterim("");
    if (!payload.transcript) return;
    upsertTurn({ id: payload.turnId, speaker: "candidate", text: payload.transcript, source: payload.source });
    scrollToEnd(true);
  },

  "server-session-ended"(payload) {
    hooks.endReason = payload.reason || "";
    accessToken.stop(); // nothing left to renew it for
    showEnd("Interview complete", payload.reason || "The interview has ended.");
  },

  "server-error"(payload) {
    hooks.errors.push(payload.code);
    // token_expired: the close that follows renews the token and reconnects, or says why not.
    const quiet = new Set(["rate_limited", "audio_overloaded", "token_expired"]);
    if (payload.code === "session_taken_over") return; // the close that follows says it
    if (payload.code === "session_paused") {
      toast("The interview is paused. Resume it to answer.");
      return;
    }
    if (!quiet.has(payload.code)) toast(payload.error || "Something went wrong.", { tone: "error" });
  },
};

function onMessage(message) {
  hooks.messageCounts[message.type] = (hooks.messageCounts[message.type] || 0) + 1;
  const handle = handlers[message.type];
  if (handle) handle(message.payload || {});
}

function onStatus(status) {
  if (state.phase === "ended" || state.phase === "failed") return;
  if (status === "connecting") setPhase("connecting");
  if (status === "reconnecting") {
    if (state.phase !== "reconnecting") {
      // The response that was playing died with the connection; the server starts a new one.
      if (player) player.flush(state.currentResponseId);
      state.currentResponseId = null;
      state.thinkingResponseId = null;
      setInterim("");
    }
    setPhase("reconnecting");
  }
}

function onFinalClose(code, failure) {
  hooks.finalCloseCode = code;
  if (state.phase === "ended") return;
  const expired = code === 4001 && failure && failure.code === "token_expired" && hooks.authSuccesses > 0;
  if (code === 4001) accessToken.forget(); // a rejected token is not tried again after a reload
  const [title, reason] = expired
    ? TOKEN_EXPIRED_MESSAGE
    : FINAL_MESSAGES[code] || ["Disconnected", (failure && failure.error) || "The connection was closed."];
  if (code === 1000) {
    showEnd(title, reason);
  } else if (code === 4409) {
    showEnd(title, reason, { finished: false, retry: true, detail: "Continue here to take the interview back to this window." });
  } else {
    showEnd(title, reason, { finished: false, detail: code === 4005 ? null : "If you think this is a mistake, contact the person who invited you." });
  }
}

// --- user actions ---------------------------------------------------------------------

async function start() {
  ui.start.disabled = true;
  ui.start.textContent = "Starting…";
  context = new AudioContext({ latencyHint: "interactive" });
  if (context.state === "suspended") await context.resume().catch(() => {});
  player = new SpeechPlayer(context, { onActivity: renderSpeaking });
  microphone = new Microphone(context, { onChunk: onMicChunk });
  microphone.onEnded = () => {
    state.micState = "unavailable";
    renderControls();
    toast("The microphone stopped. You can keep answering by typing.", { tone: "error" });
  };
  try {
    await microphone.start();
    state.micState = "on";
  } catch (error) {
    state.micState = "unavailable";
    const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
    toast(
      denied
        ? "Microphone access was blocked. You can type your answers, or allow the microphone and reload."
        : "No microphone could be opened. You can type your answers instead.",
      { tone: "error", ms: 9000 },
    );
  }
  ui.join.hidden = true;
  ui.session.hidden = false;
  renderControls();
  // A page opened (or reloaded) late: renew a token that is about to run out before using it.
  if (accessToken.canRenew && accessToken.secondsLeft() < 5) await accessToken.renew().catch(() => {});
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  connection = new InterviewConnection({
    url: `${scheme}//${location.host}${root.dataset.socketPath}`,
    sessionId,
    token: accessToken.token,
    handlers: { onStatus, onMessage, onFinalClose },
    renewToken: () => accessToken.renew(),
  });
  connection.connect();
}

function sendText() {
  const text = ui.input.value.trim();
  if (!text) return;
  if (!connection || !connection.send("client-text-message", { text })) {
    toast("Not connected right now: your answer was not sent. It is still in the box.", { tone: "error" });
    return;
  }
  // A typed answer also ends whatever the interviewer was saying.
  if (player && player.speaking) player.flush(state.currentResponseId);
  ui.input.value = "";
}

ui.start.addEventListener("click", () => {
  start().catch((error) => {
    showEnd("Could not start", String((error && error.message) || error), { finished: false });
  });
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendText();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendText();
  }
});

ui.interrupt.addEventListener("click", () => interrupt("button"));

ui.mute.addEventListener("click", () => {
  state.muted = !state.muted;
  renderControls();
});

ui.pause.addEventListener("click", () => {
  if (!connection) return;
  const paused = state.phase === "paused";
  if (connection.send(paused ? "client-resume" : "client-pause")) ui.pause.disabled = true; // until the server confirms
});

ui.end.addEventListener("click", () => {
  if (typeof ui.endDialog.showModal === "function") ui.endDialog.showModal();
  else if (window.confirm("End the interview now?")) connection.send("client-end");
});

ui.endDialog.addEventListener("close", () => {
  if (ui.endDialog.returnValue === "end" && connection) {
    if (!connection.send("client-end")) toast("Not connected right now: try again in a moment.", { tone: "error" });
  }
  ui.endDialog.returnValue = "";
});

ui.retry.addEventListener("click", async () => {
  root.classList.remove("is-over");
  ui.endScreen.hidden = true;
  ui.session.hidden = false;
  hooks.finalCloseCode = null;
  state.phase = "idle";
  if (!microphone || !microphone.stream) {
    try {
      await microphone.start();
      state.micState = "on";
    } catch {
      state.micState = "unavailable";
    }
  }
  connection.restart();
});

// Timers sleep with a laptop and are slowed in a hidden tab: catch up on the token's renewal.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") accessToken.checkNow();
});
window.addEventListener("online", () => accessToken.checkNow());

// Browsers may suspend audio after a device change or when the tab was hidden.
document.addEventListener("pointerdown", () => {
  if (context && context.state === "suspended") context.resume().catch(() => {});
});

if (!token) {
  ui.start.hidden = true;
  ui.joinNote.textContent = "";
  showEnd(
    "No access to this interview",
    "This page needs the personal link from your invitation; the link you used is incomplete.",
    { finished: false },
  );
}

// --- hooks for tests and support ------------------------------------------------------

window.interviewPage = {
  get state() {
    return state.phase;
  },
  get sessionStatus() {
    return state.sessionStatus;
  },
  get questionIndex() {
    return state.questionIndex;
  },
  get player() {
    return player ? { ...player.stats, playedByResponse: { ...player.stats.playedByResponse }, speaking: player.speaking } : null;
  },
  get audioContextState() {
    return context ? context.state : null;
  },
  get micState() {
    return state.micState;
  },
  get currentResponseId() {
    return state.currentResponseId;
  },
  get turns() {
    return state.turns.map(({ id, speaker, text, interrupted, source }) => ({ id, speaker, text, interrupted, source }));
  },
  get token() {
    return { expiresAt: accessToken.expiresAt, canRenew: accessToken.canRenew, ...accessToken.stats };
  },
  hooks,
  interrupt: () => interrupt("api"),
};
