// Connect to roomcast with the stock socket.io-client, join a room, print events.
//   npm install socket.io-client@4
//   node examples/listen.mjs http://127.0.0.1:8000 <token> project_demo
import { io } from "socket.io-client";

const [url, token, room] = process.argv.slice(2);
if (!url || !token || !room) {
  console.error("usage: node examples/listen.mjs URL TOKEN ROOM");
  process.exit(2);
}
const socket = io(url, { auth: { token }, transports: ["websocket"] });
socket.on("connect_error", (err) => console.error("connect_error", err.message, err.data));
socket.on("connection_status", (status) => {
  console.log("connection_status", JSON.stringify(status));
  socket.emit("join", { room }, (ack) => console.log("join", JSON.stringify(ack)));
});
socket.onAny((event, payload) => {
  if (event !== "connection_status") console.log(event, JSON.stringify(payload));
});
