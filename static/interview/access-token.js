// The candidate's access token: taken from the link, kept for this tab, renewed before it
// expires.
//
// A link carries the tokens in its fragment (never sent to a server), either as
// `#token=<access token>` or in the shape Supabase's auth server puts in a sign-in
// redirect: `#access_token=...&expires_at=...&expires_in=...&refresh_token=...&token_type=bearer`.
// They leave the address bar at once and live in sessionStorage (this tab only), so a
// reload or a reconnect finds them.
//
// With a refresh token the page renews the access token before it expires (60 s before,
// or at half its remaining life when it is short) with Supabase's documented call:
//   POST {authUrl}/auth/v1/token?grant_type=refresh_token
//   apikey: <anon key>, Content-Type: application/json, body {"refresh_token": "..."}
//   -> {access_token, refresh_token, expires_in, expires_at, token_type, user}
// The refresh token rotates: each answer carries the next one. Without Supabase this
// server answers the same call (realtime/token_refresh.py). A renewal that fails for a
// passing reason (network, 5xx, 429) is retried with backoff until the token expires; a
// refused refresh token (400/401/403) is not retried.

const FRAGMENT_KEYS = [
  "token", "access_token", "refresh_token", "expires_at", "expires_in", "token_type", "type",
  "provider_token", "provider_refresh_token",
];
const MARGIN_SECONDS = 60;
const RETRY_START_MS = 1000;
const RETRY_MAX_MS = 30000;
const REQUEST_TIMEOUT_MS = 10000;

function storageGet(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null; // storage unavailable: tokens live in memory for this page only
  }
}

function storageSet(key, value) {
  try {
    if (value === null || value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, String(value));
  } catch {
    // as above
  }
}

/** The `exp` claim of a JWT (Unix seconds), or null; read, not verified (the server verifies). */
export function jwtExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return Number.isFinite(claims.exp) ? claims.exp : null;
  } catch {
    return null;
  }
}

/** Seconds to wait before renewing a token that has `remaining` seconds left. */
export function renewalDelaySeconds(remaining) {
  if (remaining <= 0) return 0;
  return remaining > 2 * MARGIN_SECONDS ? remaining - MARGIN_SECONDS : remaining / 2;
}

export class RefreshRefused extends Error {}

export class AccessToken {
  /**
   * authUrl: where the auth server is ("" for this server); apiKey: Supabase's anon key
   * (sent as `apikey` when set); onRenewed(token, expiresAt): a new access token;
   * onRetrying(detail): a renewal failed and will be retried; onGaveUp(detail): no more
   * renewals (a refused refresh token, or the token expired).
   */
  constructor({ sessionId, authUrl = "", apiKey = "", onRenewed = () => {}, onRetrying = () => {}, onGaveUp = () => {} }) {
    this.keys = {
      access: `interview-token:${sessionId}`,
      refresh: `interview-refresh-token:${sessionId}`,
      expires: `interview-token-expires:${sessionId}`,
    };
    this.authUrl = (authUrl || "").replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.handlers = { onRenewed, onRetrying, onGaveUp };
    this.token = null;
    this.refreshToken = null;
    this.expiresAt = null;
    this.timer = null;
    this.inFlight = null;
    this.failures = 0;
    this.stopped = false;
    this.stats = { renewals: 0, failures: 0, lastError: null };
  }

  /** Read the tokens from the address bar's fragment (and take them out of it), else from storage. */
  load() {
    const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
    const access = fragment.get("access_token") || fragment.get("token");
    if (access) {
      const refresh = fragment.get("refresh_token");
      const expiresAt = Number(fragment.get("expires_at")) || jwtExpiry(access);
      for (const key of FRAGMENT_KEYS) fragment.delete(key);
      const rest = fragment.toString();
      history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
      this.set({ token: access, refreshToken: refresh || null, expiresAt });
    } else {
      this.token = storageGet(this.keys.access);
      this.refreshToken = storageGet(this.keys.refresh);
      this.expiresAt = Number(storageGet(this.keys.expires)) || (this.token ? jwtExpiry(this.token) : null);
    }
    return this.token;
  }

  set({ token, refreshToken, expiresAt }) {
    this.token = token;
    if (refreshToken !== undefined) this.refreshToken = refreshToken;
    this.expiresAt = expiresAt || jwtExpiry(token);
    storageSet(this.keys.access, this.token);
    storageSet(this.keys.refresh, this.refreshToken);
    storageSet(this.keys.expires, this.expiresAt);
  }

  /** Forget the tokens (a rejected token is not tried again after a reload). */
  forget() {
    this.stop();
    this.token = null;
    this.refreshToken = null;
    this.expiresAt = null;
    for (const key of Object.values(this.keys)) storageSet(key, null);
  }

  get canRenew() {
    return Boolean(this.refreshToken) && !this.stopped;
  }

  secondsLeft(now = Date.now() / 1000) {
    return this.expiresAt ? this.expiresAt - now : Infinity;
  }

  /** The server's word on when the token it holds expires (`expiresAt` in Unix seconds). */
  expiresAtIs(expiresAt) {
    if (Number.isFinite(expiresAt) && expiresAt > 0) this.expiresAt = expiresAt;
    this.schedule();
  }

  /** Plan the next renewal from the current expiry (replaces any plan). */
  schedule(delayMs = null) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.canRenew || !this.expiresAt) return;
    const wait = delayMs ?? renewalDelaySeconds(this.secondsLeft()) * 1000;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.renew().catch(() => {});
    }, Math.max(0, wait));
  }

  /** A timer may have slept with the laptop: renew now if the token is near its end. */
  checkNow() {
    if (this.canRenew && this.inFlight === null && this.secondsLeft() <= MARGIN_SECONDS) this.renew().catch(() => {});
  }

  /** Renew the access token now (one request at a time); resolves to the new token. */
  renew() {
    if (!this.canRenew) return Promise.reject(new RefreshRefused("no refresh token"));
    if (this.inFlight) return this.inFlight;
    clearTimeout(this.timer);
    this.timer = null;
    this.inFlight = this.request()
      .then((answer) => {
        this.failures = 0;
        this.stats.renewals++;
        this.set({ token: answer.access_token, refreshToken: answer.refresh_token || this.refreshToken, expiresAt: answer.expires_at });
        this.handlers.onRenewed(this.token, this.expiresAt);
        this.schedule();
        return this.token;
      })
      .catch((error) => {
        this.failures++;
        this.stats.failures++;
        this.stats.lastError = String(error.message || error);
        if (error instanceof RefreshRefused) {
          this.refreshToken = null;
          storageSet(this.keys.refresh, null);
          this.handlers.onGaveUp({ refused: true, error: this.stats.lastError });
        } else if (this.secondsLeft() > 0) {
          const delay = Math.min(RETRY_MAX_MS, RETRY_START_MS * 2 ** (this.failures - 1), this.secondsLeft() * 1000);
          this.handlers.onRetrying({ error: this.stats.lastError, delay, secondsLeft: this.secondsLeft() });
          this.schedule(delay);
        } else {
          this.handlers.onGaveUp({ refused: false, error: this.stats.lastError });
        }
        throw error;
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  async request() {
    const headers = { "Content-Type": "application/json" };
    if (this.apiKey) headers.apikey = this.apiKey;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(`${this.authUrl}/auth/v1/token?grant_type=refresh_token`, {
        method: "POST",
        headers,
        body: JSON.stringify({ refresh_token: this.refreshToken }),
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
    } finally {
      clearTimeout(timeout);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const why = (body && (body.error_description || body.msg || body.error)) || `HTTP ${response.status}`;
      // The auth server refused this refresh token: asking again will not change its mind.
      if ([400, 401, 403].includes(response.status)) throw new RefreshRefused(why);
      throw new Error(why);
    }
    if (!body || typeof body.access_token !== "string" || !body.access_token) throw new Error("no access_token in the answer");
    return body;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
