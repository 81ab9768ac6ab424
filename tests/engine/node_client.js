// socket.io-client 4.x against the native engine: connect (refused, then admitted),
// an ack, 100 events in order while the transport upgrades, a server disconnect.
// Prints one JSON line of what it saw; argv: url, transports ("polling,websocket").
const { io } = require("socket.io-client");

const [url, transports] = process.argv.slice(2);
const options = { transports: transports.split(","), reconnection: false, forceNew: true };

function refused() {
  return new Promise((resolve) => {
    const socket = io(url, { ...options, auth: { token: "bad" } });
    socket.on("connect_error", (err) => {
      socket.close();
      resolve({ message: err.message, data: err.data });
    });
  });
}

function admitted() {
  return new Promise((resolve, reject) => {
    const socket = io(url, { ...options, auth: { token: "ok" } });
    const seen = { numbers: [], transports: [] };
    socket.on("connect_error", reject);
    socket.on("welcome", async (data) => {
      seen.welcome = data.sid === socket.id;
      seen.ack = await socket.emitWithAck("echo", { hello: "wörld" });
      socket.emit("publish", 100);
    });
    socket.on("n", (n) => {
      seen.numbers.push(n);
      if (n === 99) {
        seen.transports.push(socket.io.engine.transport.name);
        socket.emit("close_me");
      }
    });
    socket.on("disconnect", (reason) => {
      seen.disconnect = reason;
      resolve(seen);
    });
  });
}

(async () => {
  const result = { refused: await refused(), admitted: await admitted() };
  console.log(JSON.stringify(result));
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
