// RoomcastClient against a real roomcast server (one process, in memory), no mocks:
// connect and join, publish with conflicts and idempotent retries, leases, resume after
// server-side disconnects, token refresh, refused tokens, URL failover.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { RoomcastClient, RoomcastError } from "../roomcast-client.js";
import {
  accessToken,
  audit,
  deferred,
  disconnectUser,
  freePort,
  httpPublish,
  roomToken,
  startRoomcast,
  waiter,
} from "../test-support/harness.js";

const BBOX = { label: "car", shape: { type: "bbox", x: 1, y: 2, w: 3, h: 4 }, attributes: {} };
// A server's SIGTERM drain (the harness SIGKILLs it after 10 s) plus a cold start of
// `roomcast serve` (up to 20 s on a loaded machine) plus the client's reconnect.
const RESTART_MS = 45000;

/**
 * What a handler saw, and waits on it. A wait is installed before the action it waits
 * for and looks at what was already seen first, so an event that arrives before the
 * action's own answer (an HTTP publish's response, say) is never missed.
 */
function record() {
  const items = [];
  const waits = new Set();
  return {
    items,
    push(item) {
      items.push(item);
      for (const check of [...waits]) check();
    },
    /** Resolves once `done(items)` holds; rejects after timeoutMs. */
    until(done, timeoutMs, what) {
      const d = deferred(timeoutMs, what);
      const check = () => {
        if (!done(items)) return;
        waits.delete(check);
        d.resolve(items);
      };
      d.promise.catch(() => waits.delete(check));
      waits.add(check);
      check();
      return d.promise;
    },
  };
}

describe("RoomcastClient against a roomcast server", () => {
  let server;
  let restartable; // a second server, for the restart test
  const extraServers = [];
  const clients = [];

  before(async () => {
    const started = await Promise.allSettled([startRoomcast(), startRoomcast()]);
    [server, restartable] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
    extraServers.push(restartable);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([server, ...extraServers].filter(Boolean).map((s) => s.stop()));
  });

  function client(options) {
    const c = new RoomcastClient({
      urls: [server.url],
      initialDelayMs: 20,
      maxDelayMs: 200,
      ackTimeoutMs: 3000,
      publishTimeoutMs: 10000,
      onError: (err) => console.error("client error:", err),
      ...options,
    });
    clients.push(c);
    return c;
  }

  test("connect, join with a room token, receive an HTTP-published event as its envelope", async () => {
    const user = "u_recv";
    const room = "annotation_recv";
    const states = [];
    const c = client({
      tokenProvider: () => accessToken(user, { name: "Ann" }),
      onConnectionChange: (state) => states.push(state),
    });
    await c.connect();
    assert.equal(c.connected, true);
    assert.deepEqual(states, ["connecting", "connected"]);

    const ack = await c.join(room, { token: roomToken(user, room) });
    assert.equal(ack.ok, true);
    assert.equal(ack.room, room);
    assert.equal(ack.seq, 0);
    assert.equal(ack.recovered, true);
    assert.equal(typeof ack.epoch, "string");
    assert.deepEqual(ack.presence.map((m) => m.user_id), [user]);
    assert.deepEqual(c.position(room), { epoch: ack.epoch, seq: 0 });
    assert.equal(c.userId, user);
    assert.ok(c.rooms.includes(`user_${user}`), "the user's own room is kept too");

    const got = deferred(10000, "annotation_update");
    c.on("annotation_update", (event) => got.resolve(event));
    const data = { action: "create", annotation_id: "a1", annotation: BBOX };
    const published = await httpPublish(server.url, room, "annotation_update", data, {
      actor: { user_id: "backend", name: "Platform" },
    });
    const event = await got.promise;
    assert.equal(event.id, published.id);
    assert.equal(event.type, "annotation_update");
    assert.equal(event.room, room);
    assert.equal(event.epoch, published.epoch);
    assert.equal(event.seq, published.seq);
    assert.equal(event.seq, 1);
    assert.equal(typeof event.ts, "number");
    assert.deepEqual(event.actor, { user_id: "backend", name: "Platform" });
    assert.equal(event.client_event_id, null);
    assert.equal(event.data.version, 1);
    assert.equal(event.data.annotation.label, "car");
    assert.deepEqual(c.position(room), { epoch: published.epoch, seq: 1 });

    // The user's own room is sequenced and tracked like a joined one.
    const note = deferred(10000, "notification");
    c.on("notification", (e) => note.resolve(e));
    const sent = await httpPublish(server.url, `user_${user}`, "notification", { title: "hi", level: "info" });
    assert.equal((await note.promise).seq, sent.seq);
    assert.deepEqual(c.position(`user_${user}`), { epoch: sent.epoch, seq: sent.seq });
  });

  test("publish: idempotent retry with the same clientEventId; a second create is a conflict", async () => {
    const user = "u_conf";
    const room = "annotation_conf";
    const c = client({ tokenProvider: () => accessToken(user, { rooms: [room] }) });
    await c.connect();
    await c.join(room);
    const received = [];
    const second = waiter((e) => e.seq === 2, 5000, "seq 2");
    c.on("annotation_update", (e) => {
      received.push(e);
      second.push(e);
    });

    const create = { action: "create", annotation_id: "a1", annotation: BBOX };
    const ok = await c.publish("annotation_update", room, create, { clientEventId: "c-create-1" });
    assert.equal(ok.ok, true);
    assert.equal(ok.seq, 1);
    const retried = await c.publish("annotation_update", room, create, { clientEventId: "c-create-1" });
    assert.equal(retried.id, ok.id, "a retry with the same client_event_id repeats the first ack");

    await assert.rejects(c.publish("annotation_update", room, create), (err) => {
      assert.ok(err instanceof RoomcastError);
      assert.equal(err.code, "conflict");
      assert.equal(err.details.current_version, 1);
      return true;
    });

    const update = { action: "update", annotation_id: "a1", base_version: 1, annotation: { ...BBOX, label: "bus" } };
    const updated = await c.publish("annotation_update", room, update);
    assert.equal(updated.seq, 2);
    await second.promise;
    assert.deepEqual(
      received.map((e) => [e.seq, e.data.version, e.client_event_id, e.actor.user_id]),
      [
        [1, 1, "c-create-1", user],
        [2, 2, received[1].client_event_id, user],
      ],
    );
    assert.match(received[1].client_event_id, /^[0-9a-f-]{36}$/);
  });

  test("lock is renewed at ttl/2 past its first expiry, then unlocked", async () => {
    const room = "annotation_lease";
    const lost = [];
    const holder = client({
      tokenProvider: () => accessToken("u_holder", { name: "Holder", rooms: [room] }),
      onLeaseLost: (...args) => lost.push(args),
    });
    const other = client({ tokenProvider: () => accessToken("u_other", { rooms: [room] }) });
    await Promise.all([holder.connect(), other.connect()]);
    await holder.join(room);
    await other.join(room);

    const locks = [];
    const renewedThrice = waiter(
      () => locks.filter((e) => e.data.state === "locked").length >= 4,
      5000,
      "three renewals",
    );
    const released = waiter((e) => e.data.state === "released", 5000, "release");
    other.on("annotation_lock", (e) => {
      locks.push(e);
      renewedThrice.push(e);
      released.push(e);
    });

    const ttlMs = 600;
    const lease = await holder.lock(room, "a1", { ttlMs });
    assert.equal(lease.ok, true);
    assert.equal(lease.annotation_id, "a1");
    assert.equal(typeof lease.fencing_token, "number");
    const firstExpiry = lease.expires_at;

    await renewedThrice.promise; // grant + 3 renewals, 300 ms apart: past the first expiry
    const renewals = locks.filter((e) => e.data.state === "locked");
    for (const e of renewals) {
      assert.equal(e.data.fencing_token, lease.fencing_token, "a renewal keeps the fencing token");
      assert.equal(e.data.holder.user_id, "u_holder");
    }
    assert.ok(renewals.at(-1).data.expires_at > firstExpiry + ttlMs, "the lease was extended");
    assert.deepEqual(holder.lease(room, "a1").fencingToken, lease.fencing_token);

    await assert.rejects(other.lock(room, "a1"), (err) => {
      assert.equal(err.code, "locked");
      assert.equal(err.details.holder.user_id, "u_holder");
      return true;
    });

    const unlocked = await holder.unlock(room, "a1");
    assert.equal(unlocked.ok, true);
    await released.promise;
    assert.equal(holder.lease(room, "a1"), null);

    const taken = await other.lock(room, "a1", { ttlMs: 5000 });
    assert.ok(taken.fencing_token > lease.fencing_token, "a new grant takes a larger fencing token");
    await other.unlock(room, "a1");
    assert.deepEqual(lost, [], "the holder never lost its lease");
  });

  test("a lease is taken again after a reconnect", async () => {
    const room = "annotation_relock";
    const user = "u_relock";
    const lost = [];
    const changes = record();
    const c = client({
      tokenProvider: () => accessToken(user, { rooms: [room] }),
      onLeaseLost: (...args) => lost.push(args),
      onLeaseChange: (...args) => changes.push(args),
    });
    const watcher = client({ tokenProvider: () => accessToken("u_watch", { rooms: [room] }) });
    await Promise.all([c.connect(), watcher.connect()]);
    await c.join(room);
    await watcher.join(room);
    const states = [];
    const retaken = waiter(() => states.join(",") === "locked,released,locked", 10000, "release and re-grant");
    watcher.on("annotation_lock", (e) => {
      states.push(e.data.state);
      retaken.push(e);
    });
    const granted = await c.lock(room, "a1", { ttlMs: 20000 });
    const changed = changes.until((list) => list.length >= 1, 10000, "onLeaseChange");
    await disconnectUser(server.url, user); // the server releases the lease of a gone holder
    const regrant = await retaken.promise;
    assert.equal(regrant.data.holder.user_id, user);
    assert.ok(regrant.data.fencing_token > granted.fencing_token);
    const [[r, id, info]] = await changed;
    assert.deepEqual([r, id, info.fencingToken], [room, "a1", regrant.data.fencing_token]);
    assert.deepEqual(c.lease(room, "a1"), info);
    assert.deepEqual(lost, []);
    await c.unlock(room, "a1");
  });

  test("resume: server-side disconnects while events are published; each seen once, in order", async () => {
    const user = "u_resume";
    const room = "project_resume";
    const transitions = [];
    let onTransition = () => {};
    const c = client({
      tokenProvider: () => accessToken(user, { projects: ["resume"] }),
      onConnectionChange: (state) => {
        transitions.push(state);
        onTransition(state);
      },
    });
    await c.connect();
    await c.join(room);

    const seen = [];
    let onSeen = () => {};
    c.on("project_progress_update", (e) => {
      seen.push(e.seq);
      onSeen(e);
    });
    const statuses = [];
    c.on("connection_status", (s) => statuses.push(s.status));
    const seenAtLeast = (n) => {
      const d = deferred(10000, `${n} events`);
      onSeen = () => seen.length >= n && d.resolve();
      onSeen();
      return d.promise;
    };
    const cycle = () => {
      const d = deferred(10000, "a disconnect and a reconnect");
      let down = false;
      onTransition = (state) => {
        if (state === "disconnected") down = true;
        if (state === "connected" && down) d.resolve();
      };
      return d.promise;
    };

    // The user's own room resumes too: the server puts a reconnecting client in it at
    // once, so live notifications may overtake the replay (dropped as a gap, then
    // brought again by the rejoin's replay, in order).
    const notes = [];
    let onNote = () => {};
    c.on("notification", (e) => {
      notes.push(e.seq);
      onNote();
    });
    const notesPublished = [];

    // The publisher: steady HTTP publishes, until told to stop (at most 1000).
    const published = [];
    let stop = false;
    const publisher = (async () => {
      for (let i = 1; i <= 1000 && !stop; i += 1) {
        const body = { total: 1000, completed: i, percent: i / 10 };
        published.push((await httpPublish(server.url, room, "project_progress_update", body)).seq);
        if (i % 3 === 0) {
          const note = { title: `note ${i}`, level: "info" };
          notesPublished.push((await httpPublish(server.url, `user_${user}`, "notification", note)).seq);
        }
        await new Promise((r) => setTimeout(r, 4)); // pacing of the publisher, not a wait
      }
    })();
    const publishedDuring = [];
    for (let round = 1; round <= 2; round += 1) {
      await seenAtLeast(seen.length + 30);
      const reconnected = cycle();
      await disconnectUser(server.url, user, "test");
      await reconnected;
      publishedDuring.push(published.length);
    }
    await seenAtLeast(seen.length + 30);
    stop = true;
    await publisher;
    await seenAtLeast(published.length);

    const figures = audit(published, seen);
    assert.deepEqual(figures, { lost: 0, duplicated: 0, reordered: 0, unexpected: 0 });
    assert.deepEqual(seen, published);
    assert.deepEqual(transitions.filter((s) => s === "connected").length, 3, "reconnected by itself, twice");
    assert.equal(statuses.filter((s) => s === "disconnected").length, 2);
    assert.ok(publishedDuring[1] < published.length, "the publisher was still running");
    assert.equal(c.position(room).seq, published.at(-1));
    const allNotes = deferred(10000, "every notification");
    onNote = () => notes.length >= notesPublished.length && allNotes.resolve();
    onNote();
    await allNotes.promise;
    assert.deepEqual(audit(notesPublished, notes), { lost: 0, duplicated: 0, reordered: 0, unexpected: 0 });
    assert.deepEqual(notes, notesPublished);
  });

  test("publish keeps its clientEventId across a disconnect: every publish lands exactly once", async () => {
    const user = "u_retry";
    const room = "annotation_retry";
    let phase = "up"; // up -> down (the server dropped us) -> back
    const phases = record();
    const c = client({
      tokenProvider: () => accessToken(user, { rooms: [room] }),
      onConnectionChange: (state) => {
        if (state === "disconnected" && phase === "up") phase = "down";
        if (state === "connected" && phase === "down") phase = "back";
        phases.push(phase);
      },
    });
    await c.connect();
    await c.join(room);
    const seen = [];
    let onSeen = () => {};
    c.on("annotation_update", (e) => {
      seen.push(e);
      onSeen();
    });

    // Four publishers in parallel, each publish awaited; the server drops the
    // connection after 10 acks; they go on until 20 more acks came after the reconnect.
    const acks = [];
    const spanning = []; // publishes sent before the drop and acknowledged after it
    let afterReconnect = 0;
    const kicked = deferred(10000, "10 acks");
    const publisher = async (w) => {
      for (let i = 0; i < 200 && afterReconnect < 20; i += 1) {
        const data = { action: "create", annotation_id: `w${w}-${i}`, annotation: BBOX };
        const sentIn = phase;
        const ack = await c.publish("annotation_update", room, data);
        acks.push(ack);
        if (sentIn === "up" && phase === "back") spanning.push(ack.seq);
        if (phase === "back") afterReconnect += 1;
        if (acks.length === 10) kicked.resolve();
      }
    };
    const all = Promise.all([0, 1, 2, 3].map(publisher));
    await kicked.promise;
    // One publish's ack is lost on its way (the client drops it), so that publish is
    // still in flight when the server drops the connection, however fast the server
    // answers the others: the client must send it again, with its clientEventId.
    const socket = c._socket;
    const onack = socket.onack;
    const lost = deferred(10000, "an ack to lose");
    let dropped = false;
    socket.onack = function (packet) {
      if (dropped) return onack.call(this, packet);
      dropped = true;
      lost.resolve();
    };
    await lost.promise;
    const reconnected = phases.until((list) => list.includes("back"), 15000, "the reconnect");
    await disconnectUser(server.url, user);
    await reconnected;
    await all;
    const done = deferred(10000, `${acks.length} events`);
    onSeen = () => seen.length >= acks.length && done.resolve();
    onSeen();
    await done.promise;

    assert.ok(spanning.length >= 1, "some publishes were in flight across the disconnect");
    const ackSeqs = acks.map((x) => x.seq).sort((x, y) => x - y);
    assert.deepEqual(ackSeqs, Array.from({ length: acks.length }, (_, i) => i + 1), "each publish sequenced once");
    assert.deepEqual(
      seen.map((e) => e.seq),
      ackSeqs,
      "each delivered once, in order",
    );
    assert.equal(new Set(seen.map((e) => e.client_event_id)).size, acks.length);
  });

  test("a restarted server (new epoch): onResync with the ack's position, then events go on", async () => {
    const first = restartable;
    const room = "project_restart";
    const resyncs = record();
    const c = client({
      urls: [first.url],
      tokenProvider: () => accessToken("u_restart", { projects: ["restart"] }),
      onResync: (r, position) => resyncs.push([r, position]),
    });
    const statuses = [];
    c.on("connection_status", (s) => statuses.push(s.status));
    const seen = record();
    c.on("project_progress_update", (e) => seen.push([e.epoch, e.seq]));
    await c.connect();
    const joined = await c.join(room);
    const body = { total: 2, completed: 1, percent: 50 };
    // Installed before the publish: the event may arrive before the HTTP answer is read.
    const beforeSeen = seen.until((list) => list.length >= 1, 10000, "the first event");
    const before = await httpPublish(first.url, room, "project_progress_update", body);
    await beforeSeen;
    assert.deepEqual(seen.items, [[joined.epoch, before.seq]]);

    // The deadline starts with the stop and covers the drain and a cold restart.
    const ofRoom = (list) => list.filter(([r]) => r === room);
    const resynced = resyncs.until((list) => ofRoom(list).length >= 1, RESTART_MS, "onResync after the restart");
    await first.stop(); // SIGTERM: the server drains, the client retries meanwhile
    const second = await startRoomcast({}, { port: first.port });
    extraServers.push(second);
    await resynced;
    const [[, position]] = ofRoom(resyncs.items);
    assert.notEqual(position.epoch, joined.epoch, "the in-memory server restarted with a new epoch");
    assert.equal(position.seq, 0);
    assert.deepEqual(c.position(room), position);
    assert.ok(statuses.includes("draining"), "told the server was draining");

    const afterSeen = seen.until(
      (list) => list.some(([epoch]) => epoch === position.epoch),
      10000,
      "the event after the restart",
    );
    const next = await httpPublish(second.url, room, "project_progress_update", { ...body, completed: 2 });
    await afterSeen;
    assert.deepEqual(seen.items, [
      [joined.epoch, before.seq],
      [next.epoch, next.seq],
    ]);
    assert.deepEqual(ofRoom(resyncs.items), [[room, position]]);
  });

  test("token refresh: token_expired, a fresh token from tokenProvider, and events keep coming", async () => {
    const user = "u_token";
    const room = "project_token";
    const requests = [];
    const connects = record();
    const c = client({
      tokenProvider: (request) => {
        requests.push(request);
        const ttlSeconds = requests.length === 1 ? 2 : 3600;
        return accessToken(user, { projects: ["token"], ttlSeconds });
      },
      onConnectionChange: (state) => state === "connected" && connects.push(state),
    });
    const statuses = record();
    c.on("connection_status", (s) => statuses.push(s.status));
    const events = record();
    c.on("project_progress_update", (e) => events.push(e.seq));
    const seen = events.items;
    // The token lasts 2 s from the connect: the deadline covers the connect and the expiry.
    const expired = statuses.until((list) => list.includes("token_expired"), 15000, "token_expired");
    await c.connect();
    await c.join(room);
    const body = { total: 3, completed: 1, percent: 33 };
    const firstSeen = events.until((list) => list.length >= 1, 10000, "the first event");
    const first = await httpPublish(server.url, room, "project_progress_update", body);
    await firstSeen;
    assert.deepEqual(seen, [first.seq]);

    await expired;
    const reconnected = connects.until((list) => list.length >= 2, 15000, "the reconnect");
    // Published while the client is (about to be) disconnected: replayed after the rejoin.
    const gapless = await httpPublish(server.url, room, "project_progress_update", { ...body, completed: 2 });
    await reconnected;
    const thirdSeen = events.until((list) => list.length >= 3, 10000, "the event after the reconnect");
    const third = await httpPublish(server.url, room, "project_progress_update", { ...body, completed: 3 });
    await thirdSeen;
    assert.deepEqual(seen, [first.seq, gapless.seq, third.seq]);
    assert.ok(requests.length >= 2);
    assert.equal(requests[0].expired, false);
    assert.equal(requests[1].expired, true, "asked again for a token after token_expired");
  });

  test("a refused token rejects connect() with the server's code", async () => {
    const c = client({ tokenProvider: () => accessToken("u_bad", { secret: "not-the-server-secret".repeat(3) }) });
    await assert.rejects(c.connect(), (err) => {
      assert.ok(err instanceof RoomcastError);
      assert.equal(err.code, "auth_invalid");
      return true;
    });
    assert.equal(c.state, "disconnected");
  });

  test("the next URL is tried when the first refuses connections", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client({ urls: [dead, server.url], tokenProvider: () => accessToken("u_urls") });
    await c.connect();
    assert.equal(c.url, server.url);
  });
});
