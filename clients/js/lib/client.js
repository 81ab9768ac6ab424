// RoomcastClient: the connection loop, rooms kept joined across reconnects, requests
// with acks and retries. The ordering of each room is RoomStream's, the leases are
// LeaseKeeper's, the delays Backoff's; this module acts on their decisions.

import { io } from "socket.io-client";

import { Backoff } from "./backoff.js";
import { RoomcastError } from "./errors.js";
import { LeaseKeeper } from "./leases.js";
import { RoomStream } from "./room-stream.js";
import { SEQUENCE_FREE_EVENTS, isSequenced, newClientEventId } from "./wire.js";

// Refusals that a new attempt with the same token cannot fix, before any success.
const FATAL_CONNECT_CODES = new Set(["auth_missing", "auth_invalid"]);

/** One joined (or joining) room. */
class RoomEntry {
  constructor(name, token, auto) {
    this.name = name;
    this.token = token ?? null;
    this.auto = auto; // the user's own room, joined by the server on connect
    this.stream = new RoomStream(name);
    this.joinedOn = null; // the socket on which the last join was acknowledged
    this.joinInFlight = null; // the socket on which a join awaits its ack
    this.waiters = []; // join() calls waiting for an ack
  }
}

export class RoomcastClient {
  constructor(options = {}) {
    const {
      urls,
      url,
      tokenProvider,
      initialDelayMs = 500,
      maxDelayMs = 30000,
      multiplier = 2,
      stableAfterMs = 10000,
      ackTimeoutMs = 5000,
      publishTimeoutMs = 30000,
      connectTimeoutMs = 10000,
      onResync = null,
      onConnectionChange = null,
      onLeaseLost = null,
      onLeaseChange = null,
      onError = null,
      random = Math.random,
      socketOptions = {},
    } = options;
    const list = urls ?? (url ? [url] : []);
    if (!Array.isArray(list) || list.length === 0) throw new TypeError("RoomcastClient needs urls");
    if (typeof tokenProvider !== "function") throw new TypeError("RoomcastClient needs a tokenProvider");
    this.urls = [...list];
    this.tokenProvider = tokenProvider;
    this.stableAfterMs = stableAfterMs;
    this.ackTimeoutMs = ackTimeoutMs;
    this.publishTimeoutMs = publishTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.onResync = onResync;
    this.onConnectionChange = onConnectionChange;
    this.onLeaseLost = onLeaseLost;
    this.onLeaseChange = onLeaseChange;
    this.onError = onError;
    this.socketOptions = socketOptions;
    this.backoff = new Backoff({ initialDelayMs, maxDelayMs, multiplier, random });

    this.state = "disconnected";
    this.url = null; // the URL of the current (or last) connection attempt
    this.userId = null; // from connection_status "connected"
    this.instanceId = null;
    this.limits = null;
    this.connectedAt = null;

    this._handlers = new Map(); // event type -> Set of handlers
    this._rooms = new Map(); // room -> RoomEntry
    this._leases = new LeaseKeeper({
      request: (event, payload, room) => this._request(event, payload, room),
      call: (event, payload) => this._call(this._socket, event, payload, this.ackTimeoutMs),
      isReady: (room) => this._isReady(room),
      serverNow: () => Date.now() + this._clockOffsetMs,
      lost: (room, annotationId, error) => {
        if (this.onLeaseLost) this._safely(() => this.onLeaseLost(room, annotationId, error));
        else this._report(error);
      },
      changed: (room, annotationId, info) => {
        if (this.onLeaseChange) this._safely(() => this.onLeaseChange(room, annotationId, info));
      },
    });
    this._socket = null;
    this._connected = false;
    this._running = false;
    this._closed = false;
    this._everConnected = false;
    this._urlIndex = 0;
    this._tokenExpired = false;
    this._lastFailure = null;
    this._clockOffsetMs = 0; // server time - local time, from the greeting
    this._attemptTimer = null;
    this._stableTimer = null;
    this._connectWaiters = [];
    this._readyWaiters = new Set();
    this._pending = new Set(); // emits awaiting an ack
    this._sleeps = new Set();
  }

  // -- public API ---------------------------------------------------------------------

  /** Start connecting; resolves once connected (rejects if the token is refused for good). */
  connect() {
    if (this._closed) return Promise.reject(new RoomcastError("closed", "the client is closed"));
    if (this._connected) return Promise.resolve();
    const promise = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (!this._running) {
      this._running = true;
      this._attempt();
    }
    return promise;
  }

  /** True while a connection is up. */
  get connected() {
    return this._connected;
  }

  /** Add a handler for an event type; returns a function that removes it. */
  on(type, handler) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    const set = this._handlers.get(type);
    if (set) set.delete(handler);
  }

  /** The position {epoch, seq} last handed to the application in this room, or null. */
  position(room) {
    const entry = this._rooms.get(room);
    return entry ? entry.stream.position : null;
  }

  /** The rooms this client keeps joined (the user's own room included once known). */
  get rooms() {
    return [...this._rooms.keys()];
  }

  /**
   * Join a room and keep it joined across reconnects. Resolves with the join ack;
   * rejects with a RoomcastError when the server refuses (the room is then forgotten).
   * May be called before connect() completes: it is sent once connected.
   */
  join(room, { token = null } = {}) {
    if (this._closed) return Promise.reject(new RoomcastError("closed", "the client is closed"));
    let entry = this._rooms.get(room);
    if (!entry) {
      entry = new RoomEntry(room, token, false);
      this._rooms.set(room, entry);
    } else {
      entry.auto = false;
      if (token) entry.token = token;
    }
    const promise = new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== waiter);
        if (!entry.joinedOn && !entry.stream.position && this._rooms.get(room) === entry) {
          this._rooms.delete(room);
        }
        reject(new RoomcastError("timeout", `no join ack for ${room} within ${this.publishTimeoutMs} ms`));
      }, this.publishTimeoutMs);
      entry.waiters.push(waiter);
    });
    if (this._connected && !entry.joinInFlight) this._sendJoin(entry, this._socket);
    return promise;
  }

  /** Leave a room: stop rejoining it, drop its position and stop renewing its leases. */
  async leave(room) {
    const entry = this._rooms.get(room);
    if (entry) {
      this._rooms.delete(room);
      this._settleWaiters(entry, null, new RoomcastError("left", `left ${room}`));
      this._leases.dropRoom(room);
    }
    if (!this._connected) return { ok: true };
    let ack;
    try {
      ack = await this._call(this._socket, "leave", { room }, this.ackTimeoutMs);
    } catch (err) {
      if (err.code === "closed") throw err;
      return { ok: true }; // the connection is gone, and its membership with it
    }
    if (!ack.ok) {
      if (entry && RoomcastError.fromAck(ack).code === "forbidden") this._rooms.set(room, entry);
      throw RoomcastError.fromAck(ack);
    }
    return ack;
  }

  /**
   * Publish a client-publishable event (e.g. `annotation_update`) into a joined room.
   * Retries on ack timeouts and disconnects with the same `client_event_id` for up to
   * publishTimeoutMs; resolves with the ok ack, rejects with a RoomcastError.
   */
  publish(type, room, data, { clientEventId = null } = {}) {
    const payload = { room, data, client_event_id: clientEventId || newClientEventId() };
    return this._request(type, payload, room);
  }

  /** Take (or renew) an editing lease; renewed at ttl/2 until unlock, leave or close. */
  lock(room, annotationId, { ttlMs = null } = {}) {
    return this._leases.lock(room, annotationId, ttlMs);
  }

  /** Release a lease and stop renewing it. */
  unlock(room, annotationId) {
    return this._leases.unlock(room, annotationId);
  }

  /** The fencing token and expiry of a lease this client holds, or null. */
  lease(room, annotationId) {
    return this._leases.lease(room, annotationId);
  }

  /** Disconnect for good: stops reconnecting, renewing, and every pending call. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    this._running = false;
    clearTimeout(this._attemptTimer);
    clearTimeout(this._stableTimer);
    this._leases.clear();
    const closed = new RoomcastError("closed", "the client is closed");
    for (const entry of this._rooms.values()) this._settleWaiters(entry, null, closed);
    for (const w of this._connectWaiters.splice(0)) w.reject(closed);
    for (const w of [...this._readyWaiters]) w.reject(closed);
    for (const p of [...this._pending]) p.reject(closed);
    for (const s of [...this._sleeps]) s();
    const socket = this._socket;
    this._socket = null;
    this._connected = false;
    if (socket) {
      socket.removeAllListeners();
      socket.offAny();
      socket.disconnect();
    }
    this._setState("disconnected", { reason: "closed" });
  }

  // -- connection loop ----------------------------------------------------------------

  async _attempt() {
    this._attemptTimer = null;
    if (this._closed) return;
    const url = this.urls[this._urlIndex % this.urls.length];
    this.url = url;
    this._setState("connecting", { url });
    let token;
    try {
      token = await this.tokenProvider({ expired: this._tokenExpired, url });
    } catch (err) {
      this._report(err);
      this._retryLater("token_provider");
      return;
    }
    if (this._closed) return;
    this._tokenExpired = false;
    let socket;
    try {
      socket = io(url, {
        ...this.socketOptions,
        auth: { token },
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
        timeout: this.connectTimeoutMs,
      });
    } catch (err) {
      this._report(err); // a malformed URL, say: try the next one later
      this._retryLater("connect_error");
      return;
    }
    this._socket = socket;
    socket.on("connect", () => this._onConnect(socket));
    socket.on("connect_error", (err) => this._onConnectError(socket, err));
    socket.on("disconnect", (reason) => this._onDisconnect(socket, reason));
    socket.onAny((event, payload) => this._onEvent(socket, event, payload));
  }

  _retryLater(failure) {
    if (this._closed) return;
    this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    // A token found expired is fixed by the fresh one asked for next: retry at once,
    // unless the fresh one was expired too.
    const immediate = failure === "auth_expired" && this._lastFailure !== "auth_expired";
    this._lastFailure = failure;
    const delay = immediate ? 0 : this.backoff.next();
    this._attemptTimer = setTimeout(() => this._attempt(), delay);
  }

  _onConnect(socket) {
    if (socket !== this._socket) return;
    this._connected = true;
    this._everConnected = true;
    this._lastFailure = null;
    this.connectedAt = Date.now();
    clearTimeout(this._stableTimer);
    this._stableTimer = setTimeout(() => this.backoff.reset(), this.stableAfterMs);
    this._setState("connected", { url: this.url });
    for (const w of this._connectWaiters.splice(0)) w.resolve();
    for (const entry of this._rooms.values()) this._sendJoin(entry, socket);
    this._notifyReady();
  }

  _onConnectError(socket, err) {
    if (socket !== this._socket) return;
    this._socket = null;
    socket.removeAllListeners();
    socket.offAny();
    socket.disconnect();
    const code = (err && err.data && err.data.code) || "connect_error";
    if (code === "auth_expired") this._tokenExpired = true;
    if (!this._everConnected && FATAL_CONNECT_CODES.has(code)) {
      const error = new RoomcastError(code, err.message, { ...(err.data || {}), url: this.url });
      this._running = false;
      this._setState("disconnected", { url: this.url, code });
      for (const w of this._connectWaiters.splice(0)) w.reject(error);
      return;
    }
    this._retryLater(code);
  }

  _onDisconnect(socket, reason) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._connected = false;
    socket.removeAllListeners();
    socket.offAny();
    clearTimeout(this._stableTimer);
    const gone = new RoomcastError("disconnected", `disconnected: ${reason}`);
    for (const p of [...this._pending]) if (p.socket === socket) p.reject(gone);
    for (const entry of this._rooms.values()) {
      entry.joinedOn = null;
      entry.joinInFlight = null;
    }
    this._leases.pause(); // re-taken once the room is joined again
    this._setState("disconnected", { url: this.url, reason });
    this._retryLater("disconnected");
  }

  _setState(state, info = {}) {
    if (this.state === state) return;
    this.state = state;
    if (this.onConnectionChange) this._safely(() => this.onConnectionChange(state, info));
  }

  // -- incoming events ----------------------------------------------------------------

  _onEvent(socket, event, payload) {
    if (socket !== this._socket) return;
    if (event === "connection_status") this._onStatus(socket, payload || {});
    if (event === "skipped" && payload && typeof payload.seq === "number") {
      this._onSkipped(payload);
      return;
    }
    if (!SEQUENCE_FREE_EVENTS.has(event) && isSequenced(payload)) {
      this._onSequenced(socket, payload);
      return;
    }
    this._dispatch(event, payload);
  }

  _onStatus(socket, status) {
    if (status.status === "connected") {
      this.userId = status.user_id ?? null;
      this.instanceId = status.instance_id ?? null;
      this.limits = status.limits ?? null;
      if (typeof status.server_time === "number") this._clockOffsetMs = status.server_time - Date.now();
      // The server joined us to our own room: keep it, to resume it like the others.
      for (const room of status.rooms || []) {
        if (!this._rooms.has(room)) {
          const entry = new RoomEntry(room, null, true);
          this._rooms.set(room, entry);
          if (this._connected) this._sendJoin(entry, socket);
        }
      }
    } else if (status.status === "token_expired") {
      this._tokenExpired = true;
    }
  }

  _onSequenced(socket, envelope) {
    const entry = this._rooms.get(envelope.room);
    if (!entry) return; // a room we left; its last events may still be on the way
    this._apply(entry, entry.stream.offer(envelope));
  }

  /**
   * A detection stream's skip that no later event carried: the position moves past it,
   * and the notice reaches the `skipped` handlers only then (not for a room left, nor
   * for a duplicate; a notice that does not meet the position is a gap, and rejoins).
   */
  _onSkipped(notice) {
    const entry = this._rooms.get(notice.room);
    if (!entry) return;
    const result = entry.stream.skippedTo(notice);
    this._apply(entry, result);
    if (result.decision === "deliver") this._dispatch("skipped", notice);
  }

  _apply(entry, result) {
    if (result.resync && this.onResync) {
      const position = { ...result.resync };
      this._safely(() => this.onResync(entry.name, position));
    }
    for (const envelope of result.deliver) this._dispatch(envelope.type, envelope);
    if (result.rejoin && this._connected && !entry.joinInFlight && this._rooms.get(entry.name) === entry) {
      this._sendJoin(entry, this._socket);
    }
  }

  _dispatch(type, payload) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const handler of [...set]) this._safely(() => handler(payload));
  }

  _safely(fn) {
    try {
      const result = fn();
      if (result && typeof result.then === "function") result.then(undefined, (err) => this._report(err));
    } catch (err) {
      this._report(err);
    }
  }

  _report(err) {
    if (this.onError) {
      try {
        this.onError(err);
        return;
      } catch {
        // fall through to the console
      }
    }
    console.error("roomcast-client:", err);
  }

  // -- joins --------------------------------------------------------------------------

  _sendJoin(entry, socket) {
    entry.joinInFlight = socket;
    const payload = { room: entry.name, since: entry.stream.position, token: entry.token };
    this._call(socket, "join", payload, this.ackTimeoutMs).then(
      (ack) => this._onJoinAck(entry, socket, ack),
      (err) => {
        if (entry.joinInFlight === socket) entry.joinInFlight = null;
        // A timeout on a live connection: ask again. After a disconnect the reconnect rejoins.
        if (err.code === "timeout" && this._live(entry, socket)) this._sendJoin(entry, socket);
      },
    );
  }

  _live(entry, socket) {
    return !this._closed && this._connected && socket === this._socket && this._rooms.get(entry.name) === entry;
  }

  _onJoinAck(entry, socket, ack) {
    if (entry.joinInFlight === socket) entry.joinInFlight = null;
    if (!this._live(entry, socket)) return;
    if (!ack.ok) {
      const error = RoomcastError.fromAck(ack);
      if (error.temporary) {
        const wait = Number(error.details.retry_after_ms) || this.backoff.bound(0);
        entry.joinInFlight = socket; // nobody else sends it meanwhile
        this._sleep(wait).then(() => {
          if (entry.joinInFlight === socket) entry.joinInFlight = null;
          if (this._live(entry, socket) && !entry.joinInFlight) this._sendJoin(entry, socket);
        });
        return;
      }
      // Refused for good (forbidden, invalid_room, too_many_rooms, ...): forget the room.
      this._rooms.delete(entry.name);
      this._leases.loseRoom(entry.name, error);
      if (entry.waiters.length) this._settleWaiters(entry, null, error);
      else this._report(error);
      return;
    }
    const result = entry.stream.joined(ack);
    entry.joinedOn = socket;
    this._apply(entry, result);
    this._settleWaiters(entry, ack, null);
    this._notifyReady();
    this._leases.resumeRoom(entry.name);
  }

  _settleWaiters(entry, ack, error) {
    for (const w of entry.waiters.splice(0)) {
      clearTimeout(w.timer);
      if (error) w.reject(error);
      else w.resolve(ack);
    }
  }

  // -- requests with acks -------------------------------------------------------------

  /** Emit with an ack on one socket; rejects on timeout, disconnect or close. */
  _call(socket, event, payload, timeoutMs) {
    return new Promise((resolve, reject) => {
      const pending = { socket, reject: null };
      const finish = () => this._pending.delete(pending);
      pending.reject = (err) => {
        finish();
        reject(err);
      };
      this._pending.add(pending);
      socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        if (!this._pending.has(pending)) return;
        finish();
        if (err) {
          const timedOut = socket.connected && /timed? ?out/i.test(String(err.message));
          reject(
            timedOut
              ? new RoomcastError("timeout", `no ack for ${event} within ${timeoutMs} ms`)
              : new RoomcastError("disconnected", `disconnected before the ack of ${event}`),
          );
        } else if (ack === null || typeof ack !== "object") {
          resolve({ ok: false, error: { code: "invalid_ack", message: "the ack is not an object" } });
        } else {
          resolve(ack);
        }
      });
    });
  }

  /**
   * Send a request that needs the room joined, retrying on timeouts, disconnects and
   * temporary refusals until publishTimeoutMs has passed. The payload (its
   * client_event_id included) is the same on every try.
   */
  async _request(event, payload, room) {
    if (this._closed) throw new RoomcastError("closed", "the client is closed");
    const deadline = Date.now() + this.publishTimeoutMs;
    let lastError = null;
    for (let attempt = 0; ; attempt += 1) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new RoomcastError(
          "timeout",
          `${event} got no answer within ${this.publishTimeoutMs} ms` + (lastError ? ` (last: ${lastError.code})` : ""),
          payload.client_event_id ? { client_event_id: payload.client_event_id } : {},
        );
      }
      let socket;
      try {
        socket = await this._whenReady(room, deadline);
      } catch (err) {
        if (err.code === "closed") throw err;
        continue; // the deadline has passed: the loop says so
      }
      let ack;
      try {
        ack = await this._call(socket, event, payload, Math.min(this.ackTimeoutMs, remaining));
      } catch (err) {
        if (err.code === "closed") throw err;
        lastError = err;
        continue;
      }
      if (ack.ok) return ack;
      const error = RoomcastError.fromAck(ack);
      const entry = this._rooms.get(room);
      if (error.code === "not_joined" && entry) {
        // The room is being joined again (a reconnect): wait for its ack.
        if (entry.joinedOn === socket) {
          entry.joinedOn = null;
          if (!entry.joinInFlight && this._live(entry, socket)) this._sendJoin(entry, socket);
        }
        lastError = error;
        continue;
      }
      if (!error.temporary) throw error;
      lastError = error;
      const wait = Number(error.details.retry_after_ms) || this.backoff.bound(Math.min(attempt, 6));
      await this._sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
      if (this._closed) throw new RoomcastError("closed", "the client is closed");
    }
  }

  _isReady(room) {
    if (!this._connected) return false;
    const entry = room == null ? null : this._rooms.get(room);
    return !entry || entry.joinedOn === this._socket;
  }

  /** Resolves with the socket once connected and `room` (if kept) joined on it. */
  _whenReady(room, deadline) {
    if (this._closed) return Promise.reject(new RoomcastError("closed", "the client is closed"));
    if (this._isReady(room)) return Promise.resolve(this._socket);
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          if (!this._isReady(room)) return;
          done();
          resolve(this._socket);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const timer = setTimeout(
        () => waiter.reject(new RoomcastError("timeout", "not connected in time")),
        Math.max(0, deadline - Date.now()),
      );
      const done = () => {
        clearTimeout(timer);
        this._readyWaiters.delete(waiter);
      };
      this._readyWaiters.add(waiter);
    });
  }

  _notifyReady() {
    for (const w of [...this._readyWaiters]) w.check();
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this._sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this._sleeps.add(wake);
    });
  }
}
