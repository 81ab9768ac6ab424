// A stock socket.io-client for tests/deploy/test_deploy.py: it connects (through
// nginx there) with one transport, joins a room, and prints one JSON line per thing
// that happens, so the test can wait for each. It ends when its stdin closes.
//   NODE_PATH=clients/js/node_modules node nginx_client.cjs URL TOKEN ROOM TRANSPORT
// CommonJS, so that NODE_PATH finds the package (ES module imports ignore it).
"use strict";
const { io } = require("socket.io-client");

const [url, token, room, transport] = process.argv.slice(2);
const out = (kind, data) => process.stdout.write(JSON.stringify({ kind, data }) + "\n");
const transportName = () => socket.io.engine?.transport?.name ?? null;

const socket = io(url, {
  auth: { token },
  transports: [transport],
  upgrade: false,
  reconnection: false,
});
socket.on("connect_error", (err) => out("connect_error", String(err.message)));
socket.on("disconnect", (reason) => out("disconnect", reason));
socket.on("connection_status", (status) => {
  out("connection_status", { ...status, transport: transportName() });
  socket.emit("join", { room }, (ack) => out("join", ack));
});
socket.onAny((event, payload) => {
  if (event !== "connection_status") out("event", { event, payload, transport: transportName() });
});

process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
process.stdin.resume();
