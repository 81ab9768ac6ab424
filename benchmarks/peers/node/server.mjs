// Node peer for roomcast's benchmarks: a plain socket.io 4.8 server.
//
// The same surface as benchmarks/peers/plain_socketio.py and nothing else: no
// authentication, no room rules, no sequencing, no history, no rate limits.
//   - clients emit `join` {room} and get the ack {ok: true, room};
//   - POST /api/v1/publish {room, type, data} emits `data` under the event name
//     `type` to the room and answers {ok: true};
//   - clients emit `publish` {room, type, data}: `data` goes under the event name
//     `type` to the whole room, the sender included, and the ack is {ok: true};
//   - GET /healthz answers {ok: true}.
//
//   node server.mjs PORT [--host 127.0.0.1] [--redis redis://...]
//
// With --redis the @socket.io/redis-adapter is used (several instances form one
// service); by default the in-memory adapter.

import http from "node:http";
import process from "node:process";
import { Server } from "socket.io";

function parseArgs(argv) {
  const args = { port: NaN, host: "127.0.0.1", redis: null };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--host") {
      args.host = argv[++i];
    } else if (arg === "--redis") {
      args.redis = argv[++i];
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write("usage: node server.mjs PORT [--host HOST] [--redis URL]\n");
      process.exit(0);
    } else {
      args.port = Number.parseInt(arg, 10);
    }
  }
  if (!Number.isInteger(args.port) || args.port <= 0 || args.port > 65535) {
    process.stderr.write("usage: node server.mjs PORT [--host HOST] [--redis URL]\n");
    process.exit(2);
  }
  return args;
}

function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

const MAX_BODY = 1024 * 1024;

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (err) {
        reject(err);
      }
    });
    req.on("error", reject);
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let io = null;

  const httpServer = http.createServer(async (req, res) => {
    const path = (req.url || "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      sendJson(res, 200, { ok: true });
      return;
    }
    if (req.method === "POST" && path === "/api/v1/publish") {
      let body;
      try {
        body = await readJson(req);
      } catch {
        sendJson(res, 400, { ok: false, error: { code: "invalid_json" } });
        return;
      }
      const valid =
        body &&
        typeof body.room === "string" &&
        body.room &&
        typeof body.type === "string" &&
        body.type &&
        body.data !== null &&
        typeof body.data === "object";
      if (!valid) {
        sendJson(res, 422, { ok: false, error: { code: "invalid_body" } });
        return;
      }
      io.to(body.room).emit(body.type, body.data);
      sendJson(res, 200, { ok: true });
      return;
    }
    sendJson(res, 404, { ok: false, error: { code: "not_found" } });
  });

  const options = {};
  const redisClients = [];
  if (args.redis) {
    const { createClient } = await import("redis");
    const { createAdapter } = await import("@socket.io/redis-adapter");
    const pubClient = createClient({ url: args.redis });
    const subClient = pubClient.duplicate();
    for (const client of [pubClient, subClient]) {
      client.on("error", (err) => process.stderr.write(`redis: ${err}\n`));
    }
    await Promise.all([pubClient.connect(), subClient.connect()]);
    redisClients.push(pubClient, subClient);
    options.adapter = createAdapter(pubClient, subClient);
  }

  io = new Server(httpServer, options);
  io.on("connection", (socket) => {
    socket.on("join", (payload, ack) => {
      const room = payload && typeof payload === "object" ? payload.room : undefined;
      let answer;
      if (typeof room !== "string" || !room) {
        answer = { ok: false, error: { code: "invalid_room", message: "room required" } };
      } else {
        socket.join(room);
        answer = { ok: true, room };
      }
      if (typeof ack === "function") {
        ack(answer);
      }
    });
    socket.on("publish", (payload, ack) => {
      const valid =
        payload &&
        typeof payload.room === "string" &&
        payload.room &&
        typeof payload.type === "string" &&
        payload.type &&
        payload.data !== null &&
        typeof payload.data === "object";
      if (valid) {
        io.to(payload.room).emit(payload.type, payload.data);
      }
      if (typeof ack === "function") {
        ack(valid ? { ok: true } : { ok: false, error: { code: "invalid_payload" } });
      }
    });
  });

  const shutdown = () => {
    io.close();
    for (const client of redisClients) {
      client.quit().catch(() => {});
    }
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);

  httpServer.listen(args.port, args.host);
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
