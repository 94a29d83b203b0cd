// The interview socket: authenticate, deliver messages, reconnect after a drop.
//
// Close codes that mean "trying again will not help" end the connection for good;
// anything else (a dropped network, a restarted server, 1006) is retried with
// exponential backoff: 0.5 s, 1 s, 2 s, 4 s, 8 s, then every 10 s, each with a little
// jitter so a fleet of clients does not come back in lockstep.
//
// The access token can change while the socket is open: `updateToken` hands a renewed one
// to the server (`client-token-refresh`) and keeps it for later reconnects. A token that
// expired anyway (4001, `token_expired`) is renewed once through `renewToken`, if given,
// and the connection comes back with it; otherwise 4001 is final.

export const FINAL_CLOSE_CODES = new Set([
  1000, // the interview ended
  4001, // token rejected: a new link is needed
  4003, // the session belongs to someone else
  4004, // no such session
  4005, // the session is finished
  4409, // another window took the session over
]);

// The worker is restarting (a rolling deploy): another one resumes the session at once.
export const RECONNECT_NOW_CLOSE_CODE = 4012;

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10000;
const CONNECT_TIMEOUT_MS = 10000;
// Browsers hide WebSocket pings, so a half-open socket (a network switch, a sleeping
// laptop) looks open forever. An application heartbeat notices it.
const HEARTBEAT_INTERVAL_MS = 10000;
const HEARTBEAT_TIMEOUT_MS = 8000;

export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** attempt);
  return Math.round(base * (0.85 + 0.3 * random()));
}

export class InterviewConnection {
  /**
   * handlers: onStatus(status, detail) with status in connecting | authenticating |
   * open | reconnecting | closed; onMessage(message); onFinalClose(code, detail).
   */
  constructor({ url, sessionId, token, handlers, renewToken = null }) {
    this.url = url;
    this.sessionId = sessionId;
    this.token = token;
    this.handlers = handlers;
    this.renewToken = renewToken; // async () => a new access token, or a rejection
    this.tokenExpired = false;
    this.renewedAfterExpiry = false;
    this.socket = null;
    this.authenticated = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
    this.pingCount = 0;
    this.stopped = false;
    this.takenOver = false;
    this.lastAuthFailure = null;
    this.connections = 0;
    this.onOnline = () => {
      if (this.retryTimer !== null) this.retryNow();
    };
    window.addEventListener("online", this.onOnline);
  }

  connect() {
    if (this.stopped) return;
    this.clearTimers();
    this.authenticated = false;
    this.takenOver = false;
    this.lastAuthFailure = null;
    this.tokenExpired = false;
    this.handlers.onStatus(this.connections === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this.scheduleRetry(0, String(error));
      return;
    }
    this.socket = socket;
    this.connectTimer = setTimeout(() => {
      if (this.socket === socket && !this.authenticated) socket.close(); // -> onclose -> retry
    }, CONNECT_TIMEOUT_MS);
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.handlers.onStatus("authenticating", {});
      socket.send(JSON.stringify({ type: "client-auth", payload: { token: this.token, sessionId: this.sessionId } }));
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message.type !== "string") return;
      const payload = message.payload || {};
      if (message.type === "server-auth-success") {
        clearTimeout(this.connectTimer);
        this.authenticated = true;
        this.attempt = 0;
        this.renewedAfterExpiry = false;
        this.connections++;
        this.startHeartbeat(socket);
        this.handlers.onStatus("open", { resumed: payload.resumed });
      } else if (message.type === "server-auth-failure") {
        this.lastAuthFailure = payload;
        if (payload.code === "token_expired") this.tokenExpired = true;
      } else if (message.type === "server-error" && payload.code === "session_taken_over") {
        this.takenOver = true;
      } else if (message.type === "server-error" && payload.code === "token_expired") {
        this.tokenExpired = true;
      } else if (message.type === "server-pong") {
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
        return;
      }
      this.handlers.onMessage({ type: message.type, payload });
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.authenticated = false;
      this.clearTimers();
      const code = event.code;
      if (this.stopped) return;
      if (code === 4001 && this.tokenExpired && this.renewToken && !this.renewedAfterExpiry && !this.takenOver) {
        this.renewAfterExpiry(code);
        return;
      }
      if (FINAL_CLOSE_CODES.has(code) || this.takenOver) {
        this.stop();
        this.handlers.onFinalClose(this.takenOver ? 4409 : code, this.lastAuthFailure);
        return;
      }
      this.scheduleRetry(code, event.reason);
    };
    socket.onerror = () => {
      // Always followed by close, which decides what to do.
    };
  }

  renewAfterExpiry(code) {
    // Once per authenticated connection: a renewed token that is refused again is final.
    this.renewedAfterExpiry = true;
    const failure = this.lastAuthFailure;
    this.handlers.onStatus("reconnecting", { code, reason: "token expired", delay: 0, attempt: this.attempt });
    this.renewToken().then(
      (token) => {
        if (this.stopped) return;
        this.token = token;
        this.connect();
      },
      () => {
        if (this.stopped) return;
        this.stop();
        this.handlers.onFinalClose(code, failure || { code: "token_expired" });
      },
    );
  }

  /** A renewed access token: used for every later connection, and handed to the server now if the socket is open. */
  updateToken(token) {
    this.token = token;
    return this.send("client-token-refresh", { token });
  }

  startHeartbeat(socket) {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (this.socket !== socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: "client-ping", payload: { id: ++this.pingCount } }));
      if (this.pongTimer === null) {
        // No answer in time: treat the socket as dead; onclose schedules the reconnect.
        this.pongTimer = setTimeout(() => socket.close(4000, "heartbeat timeout"), HEARTBEAT_TIMEOUT_MS);
      }
    }, HEARTBEAT_INTERVAL_MS);
  }

  scheduleRetry(code, reason) {
    // At once the first time only: a worker that keeps restarting still gets the backoff.
    const delay = code === RECONNECT_NOW_CLOSE_CODE && this.attempt === 0 ? 0 : backoffDelay(this.attempt);
    this.attempt++;
    this.handlers.onStatus("reconnecting", { code, reason, delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  retryNow() {
    this.clearTimers();
    this.connect();
  }

  /** Send a message; false unless the socket is open and authenticated. */
  send(type, payload) {
    if (!this.authenticated || !this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(payload === undefined ? { type } : { type, payload }));
    return true;
  }

  /** Bytes queued in the socket but not yet sent: a sign the network is behind. */
  get buffered() {
    return this.socket ? this.socket.bufferedAmount : 0;
  }

  clearTimers() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    this.retryTimer = null;
    this.connectTimer = null;
    this.heartbeatTimer = null;
    this.pongTimer = null;
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    window.removeEventListener("online", this.onOnline);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
  }

  /** Start again after a final close (the candidate chose to take the session back). */
  restart() {
    this.stopped = false;
    this.attempt = 0;
    window.addEventListener("online", this.onOnline);
    this.connect();
  }
}
