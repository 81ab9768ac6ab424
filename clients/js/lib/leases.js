// LeaseKeeper: the editing leases one client holds, renewed at half their TTL.
//
// A lease ends on the server when its holder's connection drops, so renewal pauses
// while disconnected and resumes (taking the lease again, perhaps with a new fencing
// token) once the room is joined again. The keeper owns no socket: the client hands it
// a small host with the requests it may make and the callbacks it reports to.

import { RoomcastError } from "./errors.js";

const DEFAULT_LEASE_TTL_MS = 30000;

/** One editing lease this client holds and renews. */
class Lease {
  constructor(room, annotationId, ttlMs) {
    this.room = room;
    this.annotationId = annotationId;
    this.ttlMs = ttlMs; // null: the server's default
    this.fencingToken = null;
    this.expiresAt = null;
    this.timer = null; // the next renewal
    this.renewing = false; // a renewal awaits its ack
  }
}

function leaseKey(room, annotationId) {
  return `${room}\n${annotationId}`;
}

/**
 * @typedef {object} LeaseHost
 * @property {(event: string, payload: object, room: string) => Promise<object>} request
 *   a request retried until the client's publish timeout (resolves with the ok ack)
 * @property {(event: string, payload: object) => Promise<object>} call
 *   one emit on the current connection (resolves with any ack; rejects on timeout or loss)
 * @property {(room: string) => boolean} isReady  connected, and the room joined on it
 * @property {() => number} serverNow  the server's clock, in ms
 * @property {(room: string, annotationId: string, error: RoomcastError) => void} lost
 * @property {(room: string, annotationId: string, info: object) => void} changed
 */

export class LeaseKeeper {
  /** @param {LeaseHost} host */
  constructor(host) {
    this._host = host;
    this._leases = new Map(); // `${room}\n${annotationId}` -> Lease
  }

  /** The fencing token and expiry of a lease held, or null. */
  lease(room, annotationId) {
    const lease = this._leases.get(leaseKey(room, annotationId));
    if (!lease || lease.fencingToken === null) return null;
    return { room, annotationId, fencingToken: lease.fencingToken, expiresAt: lease.expiresAt };
  }

  /** Take (or renew) a lease; renewed at ttl/2 until unlock, leave or close. */
  async lock(room, annotationId, ttlMs) {
    const key = leaseKey(room, annotationId);
    let lease = this._leases.get(key);
    const fresh = !lease;
    if (fresh) {
      lease = new Lease(room, annotationId, ttlMs);
      lease.renewing = true; // this request is its first grant: no renewal meanwhile
      this._leases.set(key, lease);
    } else if (ttlMs) {
      lease.ttlMs = ttlMs;
    }
    let ack;
    try {
      ack = await this._host.request("lock", { room, annotation_id: annotationId, ttl_ms: ttlMs }, room);
    } catch (err) {
      if (fresh && this._leases.get(key) === lease) this._drop(lease);
      throw err;
    } finally {
      if (fresh) lease.renewing = false;
    }
    // Unless unlock(), leave() or close() came meanwhile, keep it renewed.
    if (this._leases.get(key) === lease) this._granted(lease, ack);
    return ack;
  }

  /** Release a lease and stop renewing it. */
  unlock(room, annotationId) {
    const lease = this._leases.get(leaseKey(room, annotationId));
    if (lease) this._drop(lease);
    return this._host.request("unlock", { room, annotation_id: annotationId }, room);
  }

  /** Stop renewing the room's leases (the room was left). */
  dropRoom(room) {
    for (const lease of [...this._leases.values()]) if (lease.room === room) this._drop(lease);
  }

  /** The room was refused for good: its leases are lost. */
  loseRoom(room, error) {
    for (const lease of [...this._leases.values()]) if (lease.room === room) this._lose(lease, error);
  }

  /** The connection dropped: renewals wait for the room to be joined again. */
  pause() {
    for (const lease of this._leases.values()) {
      clearTimeout(lease.timer);
      lease.timer = null;
    }
  }

  /** The room was joined (again): take its paused leases again. */
  resumeRoom(room) {
    for (const lease of this._leases.values()) {
      if (lease.room === room && lease.timer === null) this._renew(lease);
    }
  }

  /** Stop renewing everything (the client closes). */
  clear() {
    for (const lease of [...this._leases.values()]) this._drop(lease);
  }

  _granted(lease, ack) {
    const before = lease.fencingToken;
    lease.fencingToken = ack.fencing_token ?? lease.fencingToken;
    lease.expiresAt = ack.expires_at ?? lease.expiresAt;
    clearTimeout(lease.timer);
    let ttl = lease.ttlMs;
    if (!ttl && typeof lease.expiresAt === "number") ttl = lease.expiresAt - this._host.serverNow();
    if (!(ttl > 0)) ttl = DEFAULT_LEASE_TTL_MS;
    lease.timer = setTimeout(() => this._renew(lease), Math.max(50, ttl / 2));
    if (before !== null && before !== lease.fencingToken) {
      // Granted anew (the old lease ended with a connection): writes must carry the new token.
      this._host.changed(lease.room, lease.annotationId, this.lease(lease.room, lease.annotationId));
    }
  }

  /** Renew (or, after a reconnect, take again) a lease this client holds. */
  async _renew(lease) {
    const key = leaseKey(lease.room, lease.annotationId);
    // Not connected, or the room not joined again yet: the rejoin's ack renews it.
    if (this._leases.get(key) !== lease || lease.renewing || !this._host.isReady(lease.room)) return;
    clearTimeout(lease.timer);
    lease.timer = null;
    lease.renewing = true;
    let ack;
    try {
      ack = await this._host.call("lock", { room: lease.room, annotation_id: lease.annotationId, ttl_ms: lease.ttlMs });
    } catch (err) {
      lease.renewing = false;
      if (this._leases.get(key) === lease && err.code === "timeout") this._renew(lease);
      return; // disconnected: renewed once the room is joined again
    }
    lease.renewing = false;
    if (this._leases.get(key) !== lease) return;
    if (ack.ok) {
      this._granted(lease, ack);
      return;
    }
    const error = RoomcastError.fromAck(ack);
    if (error.code === "not_joined") return; // the rejoin's ack renews it
    if (error.temporary) {
      lease.timer = setTimeout(() => this._renew(lease), Number(error.details.retry_after_ms) || 200);
      return;
    }
    this._lose(lease, error);
  }

  _drop(lease) {
    clearTimeout(lease.timer);
    lease.timer = null;
    this._leases.delete(leaseKey(lease.room, lease.annotationId));
  }

  _lose(lease, error) {
    this._drop(lease);
    this._host.lost(lease.room, lease.annotationId, error);
  }
}
