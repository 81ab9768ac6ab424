// What the client needs to know of the wire (docs/protocol.md) besides the events'
// names: which payloads are sequenced room events, and fresh client_event_ids.

/** Events that carry no room position even when they name a room. */
export const SEQUENCE_FREE_EVENTS = new Set(["presence", "connection_status", "rate_limited"]);

/** A UUID v4 for `client_event_id` (crypto.randomUUID where there is one). */
export function newClientEventId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True for a sequenced room event ({room, epoch, seq, ...}). */
export function isSequenced(payload) {
  return (
    payload !== null &&
    typeof payload === "object" &&
    typeof payload.seq === "number" &&
    typeof payload.epoch === "string" &&
    typeof payload.room === "string"
  );
}
