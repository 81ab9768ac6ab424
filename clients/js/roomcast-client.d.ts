// Type declarations for roomcast-client.js (a roomcast client over socket.io-client 4).

import type { ManagerOptions, SocketOptions } from "socket.io-client";

/** A room's position: the last event handed to the application. */
export interface Position {
  epoch: string;
  seq: number;
}

/** `{user_id, name, connections}` as in presence and lease holders. */
export interface Member {
  user_id: string;
  name: string | null;
  connections: number;
}

/** The envelope every sequenced room event arrives in (protocol section "Room events"). */
export interface Envelope<D = Record<string, unknown>> {
  id: string;
  type: string;
  room: string;
  epoch: string;
  seq: number;
  ts: number;
  actor: { user_id: string; name?: string | null } | null;
  client_event_id: string | null;
  /** Set on a detection_event after the server left out `skipped` older ones. */
  skipped?: number;
  data: D;
}

export interface Lease {
  annotation_id: string;
  holder: Member;
  fencing_token: number;
  expires_at: number;
}

export interface JoinAck {
  ok: true;
  room: string;
  epoch: string;
  seq: number;
  replayed: number;
  recovered: boolean;
  presence: Member[];
  locks: Lease[];
}

export interface PublishAck {
  ok: true;
  id: string;
  epoch: string;
  seq: number;
}

export interface LockAck {
  ok: true;
  annotation_id: string;
  fencing_token: number;
  expires_at: number;
}

export interface OkAck {
  ok: true;
  [field: string]: unknown;
}

export interface ConnectionStatus {
  status: "connected" | "token_expired" | "draining" | "disconnected";
  sid?: string;
  user_id?: string;
  instance_id?: string;
  server_time?: number;
  rooms?: string[];
  limits?: ConnectionLimits;
  reason?: string;
  [field: string]: unknown;
}

export interface ConnectionLimits {
  events_per_second: number;
  burst: number;
  max_rooms: number;
  max_payload_bytes: number;
}

export interface PresenceEvent {
  room: string;
  joined: Member | null;
  left: Member | null;
  count: number;
}

export interface RateLimitedEvent {
  retry_after_ms: number;
  dropped: number;
}

/** Protocol error codes, and this client's own (`timeout`, `disconnected`, `closed`, `left`, `invalid_ack`). */
export type RoomcastErrorCode =
  | "auth_missing"
  | "auth_invalid"
  | "auth_expired"
  | "connection_limit"
  | "rate_limited"
  | "server_draining"
  | "invalid_room"
  | "invalid_type"
  | "invalid_payload"
  | "payload_too_large"
  | "forbidden"
  | "not_joined"
  | "too_many_rooms"
  | "conflict"
  | "locked"
  | "broker_unavailable"
  | "internal"
  | "timeout"
  | "disconnected"
  | "closed"
  | "left"
  | "invalid_ack"
  | "connect_error"
  | (string & {});

export interface RoomcastErrorDetails {
  /** `conflict`: the annotation's current version. */
  current_version?: number;
  /** `locked`: who holds the lease (null when none is live). */
  holder?: Member | null;
  expires_at?: number;
  retry_after_ms?: number;
  temporary?: boolean;
  [field: string]: unknown;
}

export class RoomcastError extends Error {
  constructor(code: RoomcastErrorCode, message: string, details?: RoomcastErrorDetails);
  readonly name: "RoomcastError";
  code: RoomcastErrorCode;
  details: RoomcastErrorDetails;
  /** True when trying again later may succeed. */
  readonly temporary: boolean;
  static fromAck(ack: unknown): RoomcastError;
}

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  multiplier?: number;
  /** A function returning a number in [0, 1). */
  random?: () => number;
}

/** Exponential backoff with full jitter: delay n = random() * min(max, initial * multiplier ** n). */
export class Backoff {
  constructor(options?: BackoffOptions);
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  random: () => number;
  /** How many delays were handed out since the last reset. */
  attempt: number;
  /** The largest delay of the given attempt (0-based), in ms. */
  bound(attempt: number): number;
  /** The delay before the next attempt, in ms. */
  next(): number;
  reset(): void;
}

export type StreamDecision = "deliver" | "duplicate" | "gap" | "resync" | "recovered" | "adopted";

/** What RoomStream decided; the caller acts on it. */
export interface StreamStep<E = Envelope> {
  decision: StreamDecision;
  /** Hand these to the application now, in this order. */
  deliver: E[];
  /** The application must reload the room's state (call onResync before delivering). */
  resync: Position | null;
  /** Events are missing: join again with this position as `since`. */
  rejoin: Position | null;
}

/**
 * The ordering state machine of one room. Pure: no I/O. An event that does not follow
 * the position is a "gap": dropped, with `rejoin` set (the rejoin's replay brings it
 * again, in order); nothing is held (docs/clients.md, "One gap rule").
 */
export class RoomStream<E extends { epoch: string; seq: number; skipped?: number } = Envelope> {
  constructor(room?: string | null, position?: Position | null);
  room: string | null;
  epoch: string | null;
  seq: number;
  /** The last position handed over, or null before the first event or join ack. */
  readonly position: Position | null;
  offer(envelope: E): StreamStep<E>;
  /**
   * A `skipped` notice: events up to `seq` were skipped on purpose (detection streams).
   * "deliver" (with nothing in `deliver`) when the position moved to `seq`.
   */
  skippedTo(notice: { room: string; skipped: number; seq: number }): StreamStep<E>;
  joined(ack: { epoch: string; seq: number; recovered?: boolean }): StreamStep<E>;
  reset(): void;
}

/** A lease this client holds (and renews). */
export interface LeaseInfo {
  room: string;
  annotationId: string;
  fencingToken: number;
  expiresAt: number;
}

export type ConnectionState = "connecting" | "connected" | "disconnected";

export interface ConnectionChangeInfo {
  url?: string | null;
  /** Socket.IO's disconnect reason, or "closed". */
  reason?: string;
  /** A refused connection's `data.code`. */
  code?: string;
}

export interface TokenRequest {
  /** True after the server said the last token expired (auth_expired or token_expired). */
  expired: boolean;
  /** The URL about to be tried. */
  url: string;
}

export interface RoomcastClientOptions {
  /** Tried in turn, one per connection attempt. */
  urls: string[];
  /** Called before every connection attempt. */
  tokenProvider: (request: TokenRequest) => string | Promise<string>;
  initialDelayMs?: number;
  maxDelayMs?: number;
  multiplier?: number;
  /** The backoff's attempt counter resets once a connection stayed up this long. */
  stableAfterMs?: number;
  /** Per emit-with-ack. */
  ackTimeoutMs?: number;
  /** How long publish(), lock(), unlock() keep retrying, and join() waits. */
  publishTimeoutMs?: number;
  /** Socket.IO's connection timeout of one attempt. */
  connectTimeoutMs?: number;
  /** A room's history was lost (a join acked `recovered: false`, or a new epoch): reload its state. */
  onResync?: (room: string, position: Position) => void | Promise<void>;
  onConnectionChange?: (state: ConnectionState, info: ConnectionChangeInfo) => void;
  /** A lease could not be renewed or taken again after a reconnect. */
  onLeaseLost?: (room: string, annotationId: string, error: RoomcastError) => void;
  /** A lease was granted anew with another fencing token (taken again after a reconnect). */
  onLeaseChange?: (room: string, annotationId: string, lease: LeaseInfo) => void;
  /** Errors thrown by handlers and callbacks, and refusals nobody awaits (default: console.error). */
  onError?: (error: unknown) => void;
  random?: () => number;
  /** Extra socket.io-client options (auth, transports, reconnection and forceNew are the client's). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

/**
 * A detection stream's notice that `skipped` events up to `seq` were left out while this
 * client was behind; handed to `skipped` handlers once it moved the room's position.
 */
export interface SkippedNotice {
  room: string;
  skipped: number;
  seq: number;
}

export interface RoomEventMap {
  annotation_update: Envelope;
  annotation_validated: Envelope;
  annotation_lock: Envelope;
  detection_event: Envelope;
  project_progress_update: Envelope;
  notification: Envelope;
  presence: PresenceEvent;
  connection_status: ConnectionStatus;
  rate_limited: RateLimitedEvent;
  skipped: SkippedNotice;
}

export class RoomcastClient {
  constructor(options: RoomcastClientOptions);
  readonly urls: string[];
  readonly backoff: Backoff;
  readonly state: ConnectionState;
  readonly connected: boolean;
  /** The URL of the current (or last) connection attempt. */
  readonly url: string | null;
  /** From the server's greeting. */
  readonly userId: string | null;
  readonly instanceId: string | null;
  readonly limits: ConnectionLimits | null;
  /** The rooms kept joined, the user's own room included once known. */
  readonly rooms: string[];

  connect(): Promise<void>;
  on<K extends keyof RoomEventMap>(type: K, handler: (event: RoomEventMap[K]) => unknown): () => void;
  on(type: string, handler: (event: any) => unknown): () => void;
  off(type: string, handler: (event: any) => unknown): void;
  join(room: string, options?: { token?: string | null }): Promise<JoinAck>;
  leave(room: string): Promise<OkAck>;
  publish(
    type: string,
    room: string,
    data: Record<string, unknown>,
    options?: { clientEventId?: string | null },
  ): Promise<PublishAck>;
  lock(room: string, annotationId: string, options?: { ttlMs?: number | null }): Promise<LockAck>;
  unlock(room: string, annotationId: string): Promise<OkAck>;
  /** The fencing token and expiry of a lease this client holds, or null. */
  lease(room: string, annotationId: string): LeaseInfo | null;
  position(room: string): Position | null;
  close(): Promise<void>;
}
