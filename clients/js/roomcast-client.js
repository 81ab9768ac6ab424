// roomcast-client: a JavaScript client for roomcast, built on socket.io-client 4.
//
// It hides the parts of the protocol (docs/protocol.md) that every application
// would otherwise write by hand:
//   - reconnecting, with exponential backoff and full jitter, over a list of URLs,
//     asking the application for a fresh token before every attempt;
//   - rejoining every room after a reconnect with `since` = the last position handed
//     to the application, so each room's events are handed over exactly once and in
//     order (duplicates dropped, gaps filled by a rejoin, new epochs reported);
//   - publishing with a `client_event_id` kept across retries (the server delivers once);
//   - renewing editing leases until they are released.
//
// ES module, no build step: usable from Node 18+ and from a browser bundler.
// The pure parts, `Backoff` and `RoomStream`, are exported and have no I/O.
//
// This file is the package's one entry point; each concept has its module in lib/:
//   lib/errors.js       RoomcastError
//   lib/backoff.js      Backoff (pure)
//   lib/room-stream.js  RoomStream, the ordering state machine of one room (pure)
//   lib/leases.js       LeaseKeeper, the renewal of editing leases
//   lib/wire.js         which payloads are sequenced; client_event_ids
//   lib/client.js       RoomcastClient: connections, rooms, requests

export { Backoff } from "./lib/backoff.js";
export { RoomcastClient } from "./lib/client.js";
export { RoomcastError } from "./lib/errors.js";
export { RoomStream } from "./lib/room-stream.js";
