// Two roomcast instances over our own redis-server; instance A is SIGKILLed while a
// publisher sends a steady stream over HTTP to B. Twenty clients (ten with A first in
// their URL list, ten with B first) in two rooms must all end up on B, each handler
// having seen every event of its room exactly once, in order.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { performance } from "node:perf_hooks";

import { RoomcastClient } from "../roomcast-client.js";
import { accessToken, audit, deferred, httpPublish, percentile, startRedis, startRoomcast } from "../test-support/harness.js";

const CLIENTS = 20;
const ROOMS = ["project_kill1", "project_kill2"];
const EVENTS = 200; // in all, alternating between the two rooms
const RATE_PER_SECOND = 50;
const KILL_AFTER = 50; // events published before A is killed

describe("SIGKILL of one of two instances over Redis", () => {
  let redis;
  let a;
  let b;
  const clients = [];

  before(async () => {
    redis = await startRedis();
    const env = { ROOMCAST_REDIS_URL: redis.url, ROOMCAST_KEY_PREFIX: `jssdk${randomBytes(4).toString("hex")}` };
    const started = await Promise.allSettled([
      startRoomcast({ ...env, ROOMCAST_INSTANCE_ID: "js-a" }),
      startRoomcast({ ...env, ROOMCAST_INSTANCE_ID: "js-b" }),
    ]);
    [a, b] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.client.close()));
    await Promise.all([a, b].filter(Boolean).map((p) => p.stop()));
    if (redis) await redis.stop();
  });

  test("every client resumes on B with nothing lost, duplicated or reordered", async (t) => {
    for (let i = 0; i < CLIENTS; i += 1) {
      const user = `k${i}`;
      const entry = {
        user,
        room: ROOMS[i % 2],
        first: i < CLIENTS / 2 ? "js-a" : "js-b",
        seen: [],
        transitions: [],
        onSeen: () => {},
      };
      entry.client = new RoomcastClient({
        urls: i < CLIENTS / 2 ? [a.url, b.url] : [b.url, a.url],
        tokenProvider: () => accessToken(user, { projects: ["kill1", "kill2"] }),
        initialDelayMs: 50,
        maxDelayMs: 1000,
        ackTimeoutMs: 3000,
        onConnectionChange: (state, info) => entry.transitions.push({ state, at: performance.now(), url: info.url }),
        onError: (err) => console.error(user, err),
      });
      entry.client.on("project_progress_update", (e) => {
        entry.seen.push(e.seq);
        entry.onSeen();
      });
      clients.push(entry);
    }
    await Promise.all(clients.map((c) => c.client.connect()));
    await Promise.all(clients.map((c) => c.client.join(c.room)));
    for (const c of clients) assert.equal(c.client.instanceId, c.first, `${c.user} starts on ${c.first}`);

    // The publisher: HTTP to the surviving instance, at a steady rate, a bounded count.
    const published = Object.fromEntries(ROOMS.map((room) => [room, []]));
    let killedAt = null;
    let killed = null;
    const began = performance.now();
    for (let i = 0; i < EVENTS; i += 1) {
      const room = ROOMS[i % 2];
      const body = { total: EVENTS, completed: i + 1, percent: (100 * (i + 1)) / EVENTS };
      published[room].push((await httpPublish(b.url, room, "project_progress_update", body)).seq);
      if (i + 1 === KILL_AFTER) {
        killedAt = performance.now();
        killed = a.kill(); // SIGKILL by PID
      }
      const due = began + ((i + 1) * 1000) / RATE_PER_SECOND;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the publisher's pacing
    }
    const publishSeconds = (performance.now() - began) / 1000;
    const exit = await killed;
    assert.equal(exit.signal, "SIGKILL");

    // Every client's handler reaches the last event of its room (bounded wait).
    await Promise.all(
      clients.map((c) => {
        const target = published[c.room].length;
        const done = deferred(20000, `${c.user} to see ${target} events (saw ${c.seen.length})`);
        c.onSeen = () => c.seen.length >= target && done.resolve();
        c.onSeen();
        return done.promise;
      }),
    );

    const reconnectMs = [];
    const totals = { lost: 0, duplicated: 0, reordered: 0, unexpected: 0 };
    for (const c of clients) {
      const figures = audit(published[c.room], c.seen);
      assert.deepEqual(figures, { lost: 0, duplicated: 0, reordered: 0, unexpected: 0 }, c.user);
      assert.deepEqual(c.seen, published[c.room], c.user);
      for (const key of Object.keys(totals)) totals[key] += figures[key];
      assert.equal(c.client.connected, true);
      assert.equal(c.client.instanceId, "js-b", `${c.user} ends up on B`);
      assert.equal(c.client.url, b.url);
      if (c.first === "js-a") {
        const back = c.transitions.find((x) => x.state === "connected" && x.at > killedAt);
        assert.ok(back, `${c.user} reconnected`);
        reconnectMs.push(back.at - killedAt);
      } else {
        assert.equal(c.transitions.filter((x) => x.state === "disconnected").length, 0, `${c.user} stayed up`);
      }
    }
    const summary = {
      clients: CLIENTS,
      moved: reconnectMs.length,
      events: EVENTS,
      publishSeconds: Number(publishSeconds.toFixed(2)),
      deliveries: clients.reduce((n, c) => n + c.seen.length, 0),
      reconnectMs: {
        p50: Math.round(percentile(reconnectMs, 50)),
        p99: Math.round(percentile(reconnectMs, 99)),
        max: Math.round(Math.max(...reconnectMs)),
      },
      ...totals,
    };
    t.diagnostic(`sigkill figures ${JSON.stringify(summary)}`);
  });
});
