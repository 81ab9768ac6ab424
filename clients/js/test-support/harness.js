// Test harness: real roomcast and redis-server processes on loopback, JWTs, HTTP helpers.
// Kept outside test/ so that `node --test test/` does not run it as a test file.
//
// Every process is started as a child and stopped by its PID; waiting for a process
// to become ready is a bounded poll (a process start has no event to wait for).

import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const HOST = "127.0.0.1";
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const ROOMCAST_BIN = resolve(REPO, ".venv", "bin", "roomcast");
export const REDIS_BIN = "/usr/bin/redis-server";
export const SECRET = `js-sdk-test-secret-${randomBytes(24).toString("hex")}`; // 40+ chars
export const API_KEY = `js-sdk-key-${randomBytes(8).toString("hex")}`;
const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 10000;
const SYSTEM_REDIS_PORT = 6379; // a system Redis: never ours, never touched

/** A free TCP port on loopback (the OS picks it). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => (port === SYSTEM_REDIS_PORT ? freePort().then(resolvePort, reject) : resolvePort(port)));
    });
  });
}

// -- JWTs (HS256, minted with node:crypto) ------------------------------------------

function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

export function signJwt(claims, secret = SECRET) {
  const head = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url(claims)}`;
  const signature = createHmac("sha256", secret).update(head).digest("base64url");
  return `${head}.${signature}`;
}

/** An access token: {sub, exp, projects?, rooms?, name?}; ttlSeconds from now. */
export function accessToken(sub, { ttlSeconds = 3600, projects, rooms, name, secret } = {}) {
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds };
  if (projects) claims.projects = projects;
  if (rooms) claims.rooms = rooms;
  if (name) claims.name = name;
  return signJwt(claims, secret);
}

/** A room token: lets `sub` join `room`. */
export function roomToken(sub, room, { ttlSeconds = 3600, secret } = {}) {
  return signJwt({ sub, room, exp: Math.floor(Date.now() / 1000) + ttlSeconds }, secret);
}

// -- child processes ----------------------------------------------------------------

class Child {
  constructor(name, command, args, env) {
    this.name = name;
    this.output = "";
    this.proc = spawn(command, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    this.pid = this.proc.pid;
    this.exited = new Promise((done) => {
      this.proc.once("exit", (code, signal) => done({ code, signal }));
      this.proc.once("error", (error) => done({ code: null, signal: null, error }));
    });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-8000);
    };
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
  }

  get running() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Send a signal by PID, if still running. */
  signal(sig) {
    if (this.running) process.kill(this.pid, sig);
  }

  /** SIGKILL by PID, and wait for the exit. */
  async kill() {
    this.signal("SIGKILL");
    return this.exited;
  }

  /** SIGTERM by PID, wait for the exit; SIGKILL if it is not gone in time. */
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.running) return this.exited;
    this.signal("SIGTERM");
    let timer;
    const late = new Promise((done) => {
      timer = setTimeout(() => done("late"), timeoutMs);
    });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === "late") return this.kill();
    return outcome;
  }
}

async function pollUntil(what, child, check, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${what} exited before it was ready:\n${child.output}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms:\n${child.output}`);
}

/**
 * `roomcast serve` on a free loopback port (or the given one, to restart a server where
 * it was); resolves once GET /healthz answers 200.
 */
export async function startRoomcast(extraEnv = {}, { port: wanted } = {}) {
  if (!existsSync(ROOMCAST_BIN)) throw new Error(`no ${ROOMCAST_BIN}: create the project's .venv first`);
  const port = wanted ?? (await freePort());
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ROOMCAST_")));
  Object.assign(env, {
    PYTHONUNBUFFERED: "1",
    ROOMCAST_PORT: String(port),
    ROOMCAST_HOST: HOST,
    ROOMCAST_JWT_SECRET: SECRET,
    ROOMCAST_API_KEYS: API_KEY,
    ROOMCAST_LOG_LEVEL: "warning",
    ROOMCAST_CONNECT_RATE_PER_ADDRESS: "0",
    ...extraEnv,
  });
  const child = new Child(`roomcast:${port}`, ROOMCAST_BIN, ["serve"], env);
  child.port = port;
  child.url = `http://${HOST}:${port}`;
  try {
    await pollUntil(child.name, child, async () => (await fetch(`${child.url}/healthz`)).status === 200);
  } catch (error) {
    await child.kill();
    throw error;
  }
  return child;
}

function redisPing(port) {
  return new Promise((done) => {
    const socket = net.connect({ host: HOST, port });
    let answer = "";
    const finish = (ok) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.on("error", () => finish(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      if (answer.includes("\r\n")) finish(answer.startsWith("+PONG"));
    });
  });
}

/** Our own redis-server on a free loopback port (never the system one on 6379). */
export async function startRedis() {
  const port = await freePort();
  if (port === SYSTEM_REDIS_PORT) throw new Error("refusing port 6379");
  const args = ["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--daemonize", "no"];
  const child = new Child(`redis:${port}`, REDIS_BIN, args, { ...process.env });
  child.port = port;
  child.url = `redis://${HOST}:${port}/0`;
  try {
    await pollUntil(child.name, child, () => redisPing(port));
  } catch (error) {
    await child.kill();
    throw error;
  }
  return child;
}

// -- HTTP API -----------------------------------------------------------------------

export async function api(baseUrl, method, path, body) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return json;
}

/** POST /api/v1/publish; resolves with {id, epoch, seq}. */
export function httpPublish(baseUrl, room, type, data, extra = {}) {
  return api(baseUrl, "POST", "/api/v1/publish", { room, type, data, ...extra });
}

export function disconnectUser(baseUrl, userId, reason) {
  return api(baseUrl, "POST", `/api/v1/users/${encodeURIComponent(userId)}/disconnect`, reason ? { reason } : {});
}

// -- waiting on events --------------------------------------------------------------

/** A promise with its resolve/reject, rejected after timeoutMs (an upper bound, not a sleep). */
export function deferred(timeoutMs, what = "event") {
  let resolveIt;
  let rejectIt;
  const promise = new Promise((res, rej) => {
    resolveIt = res;
    rejectIt = rej;
  });
  const timer = setTimeout(() => rejectIt(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  promise.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  return { promise, resolve: resolveIt, reject: rejectIt };
}

/** Resolves with the first value that `predicate` accepts among those fed to `push`. */
export function waiter(predicate, timeoutMs, what) {
  const d = deferred(timeoutMs, what);
  return {
    promise: d.promise,
    push(value) {
      if (predicate(value)) d.resolve(value);
    },
  };
}

export function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Compare the seqs a handler saw with those that were published. */
export function audit(published, received) {
  const want = new Set(published);
  const seen = new Set();
  let duplicated = 0;
  let reordered = 0;
  let unexpected = 0;
  for (let i = 0; i < received.length; i += 1) {
    const seq = received[i];
    if (seen.has(seq)) duplicated += 1;
    seen.add(seq);
    if (!want.has(seq)) unexpected += 1;
    if (i > 0 && seq < received[i - 1]) reordered += 1;
  }
  const lost = published.filter((seq) => !seen.has(seq)).length;
  return { lost, duplicated, reordered, unexpected };
}
