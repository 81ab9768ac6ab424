// Test harness: real roomcast and redis-server processes on loopback, JWTs, HTTP helpers.
// Kept outside test/ so that `node --test test/` does not run it as a test file.
//
// The processes come from the Python tests' support package, through its CLI
// (`python -m tests.support.cli redis|serve`, tests/support/cli.py): it starts one on a
// free loopback port, prints {kind, pid, port, url} as a JSON line once it is ready, and
// holds it until its stdin closes (this process went away), a SIGTERM, or the process's
// own exit, which it reports as {"event": "exited", "returncode"}. So free ports, the
// readiness wait and the stop by PID live in one place for Python and JavaScript.

import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { constants } from "node:os";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const HOST = "127.0.0.1";
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const PYTHON = resolve(REPO, ".venv", "bin", "python");
export const SECRET = `js-sdk-test-secret-${randomBytes(24).toString("hex")}`; // 40+ chars
export const API_KEY = `js-sdk-key-${randomBytes(8).toString("hex")}`;
const START_TIMEOUT_MS = 30000; // the CLI's own bounds are 10 s (redis) and 15 s (serve)
const STOP_TIMEOUT_MS = 20000; // the CLI SIGKILLs after 15 s of draining

/** A free TCP port on loopback (the OS picks it), for an address nobody listens on. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
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

// -- processes, through tests/support/cli.py ----------------------------------------

const SIGNALS = Object.fromEntries(Object.entries(constants.signals).map(([name, n]) => [n, name]));

class SupportProcess {
  constructor(name, cli) {
    this.name = name;
    this.cli = cli; // the CLI, our child; `pid` is the process it holds
    this.output = "";
    this.info = null;
    cli.stderr.on("data", (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-8000);
    });
    const lines = createInterface({ input: cli.stdout });
    this.ready = new Promise((resolveReady, rejectReady) => {
      let exitedWith = null;
      lines.on("line", (line) => {
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          this.output = (this.output + line + "\n").slice(-8000);
          return;
        }
        if (record.error) rejectReady(new Error(`${name}: ${record.error}\n${this.output}`));
        else if (record.event === "exited") exitedWith = record.returncode;
        else resolveReady(record);
      });
      this.exited = new Promise((done) => {
        cli.once("exit", (code, signal) => {
          rejectReady(new Error(`${name}: the support CLI exited (${code ?? signal}) before it was ready\n${this.output}`));
          // What ended the held process: a negative status is the signal that did.
          if (typeof exitedWith === "number") {
            done(exitedWith < 0 ? { code: null, signal: SIGNALS[-exitedWith] } : { code: exitedWith, signal: null });
          } else done({ code, signal });
        });
        cli.once("error", (error) => done({ code: null, signal: null, error }));
      });
    });
    this.ready.catch(() => {}); // a start that failed is reported by startSupport
    this.running = true;
    this.exited.then(() => {
      this.running = false;
    });
  }

  get pid() {
    return this.info.pid;
  }

  /** Send a signal to the held process by its PID, if still running. */
  signal(sig) {
    if (this.running) process.kill(this.pid, sig);
  }

  /** SIGKILL the held process by its PID, and wait for its exit. */
  async kill() {
    this.signal("SIGKILL");
    return this.exited;
  }

  /** SIGTERM to the CLI, which stops the process by PID (SIGKILL after its bound). */
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.running) return this.exited;
    this.cli.kill("SIGTERM");
    let timer;
    const late = new Promise((done) => {
      timer = setTimeout(() => done("late"), timeoutMs);
    });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome !== "late") return outcome;
    this.signal("SIGKILL");
    this.cli.kill("SIGKILL");
    return this.exited;
  }
}

async function startSupport(name, args, env) {
  if (!existsSync(PYTHON)) throw new Error(`no ${PYTHON}: create the project's .venv first`);
  const cli = spawn(PYTHON, ["-m", "tests.support.cli", ...args], {
    cwd: REPO,
    env,
    stdio: ["pipe", "pipe", "pipe"], // stdin stays open: its end stops the process
  });
  const child = new SupportProcess(name, cli);
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} not ready within ${START_TIMEOUT_MS} ms\n${child.output}`)), START_TIMEOUT_MS);
  });
  try {
    child.info = await Promise.race([child.ready, late]);
  } catch (error) {
    cli.kill("SIGKILL");
    await child.exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  child.port = child.info.port;
  child.url = child.info.url;
  return child;
}

/**
 * `roomcast serve` on a free loopback port (or the given one, to restart a server where
 * it was); resolves once GET /healthz answers 200.
 */
export async function startRoomcast(extraEnv = {}, { port: wanted } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ROOMCAST_")));
  Object.assign(env, { ROOMCAST_JWT_SECRET: SECRET, ROOMCAST_API_KEYS: API_KEY, ...extraEnv });
  const args = ["serve", ...(wanted === undefined ? [] : ["--port", String(wanted)])];
  return startSupport(`roomcast${wanted === undefined ? "" : `:${wanted}`}`, args, env);
}

/** Our own redis-server on a free loopback port (never the system one on 6379). */
export async function startRedis() {
  return startSupport("redis", ["redis"], { ...process.env });
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
